"""Train one of the notebook's own classes the notebook's way, save it with
the notebook's own save cell, and write its codes of the MNIST test set.

    /usr/bin/python3 bench/notebook_pth.py --kind classic --out DIR [--images 640] [--epochs 1]

writes DIR/model.pth (torch.save(model.state_dict(), "model.pth"), as the
notebook's save cell does) and DIR/codes.npy (float32 [10000, bottleneck]:
model.encode(x) of every test image). The test of `latent import`
(cmd/latent) imports the .pth, exports it to ONNX, encodes the test set and
compares its codes with these.

The recipe is the notebook's: MSE, Adam lr 1e-3, batch 64, the first
--images training images in order (its DataLoader does not shuffle).
"""

import argparse
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import notebook  # noqa: E402  (imports ../shared/reference/notebook_models.py)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kind", choices=sorted(notebook.MODELS), required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--images", type=int, default=640)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=notebook.default_data_dir())
    a = p.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(2)
    x, _ = notebook.load_mnist(a.data, "train")
    x = torch.from_numpy(x[: a.images])
    model = notebook.NOTEBOOK_CLASSES[a.kind]()  # the notebook's class, as it is

    # The notebook's training cells.
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(a.epochs):
        for b in range(0, len(x), 64):
            X = x[b : b + 64]
            pred = model(X)
            loss = loss_fn(pred, X)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

    os.makedirs(a.out, exist_ok=True)
    os.chdir(a.out)
    # The notebook's save cell, verbatim.
    torch.save(model.state_dict(), "model.pth")

    model.eval()
    xt, _ = notebook.load_mnist(a.data, "test")
    with torch.no_grad():
        codes = model.encode(torch.from_numpy(xt)).numpy().astype(np.float32)
    np.save("codes.npy", codes)
    print("%s: trained on %d images for %d epochs, last loss %.6f; codes %s" % (a.kind, len(x), a.epochs, loss.item(), codes.shape))


if __name__ == "__main__":
    main()
