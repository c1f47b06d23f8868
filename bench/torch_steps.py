#!/usr/bin/python3
"""Train a latent model for a few steps in PyTorch and compare with Go's.

  /usr/bin/python3 bench/torch_steps.py --init RUN0/model.safetensors \
      --trained RUN1/model.safetensors --data DIR --steps N [--tol 1e-5]

loads the initial weights (a run saved before its first step) into the
notebook's class, takes N steps of the notebook's recipe (MSE, Adam lr 1e-3,
batch 64, the first N·64 training images in order), and compares every
parameter with the weights that latent's trainer saved after the same N
steps. Prints one JSON line with the max abs difference; exits 1 over the
tolerance, 2 on a load error.
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import notebook  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init", required=True)
    ap.add_argument("--trained", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--weight-decay", type=float, default=0, help="AdamW's weight decay (0: Adam)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    try:
        model = notebook.load_model(args.init)[0]
        trained = notebook.load_model(args.trained)[0]
    except Exception as e:  # noqa: BLE001
        print("error: %s" % e, file=sys.stderr)
        return 2
    x, _ = notebook.load_mnist(args.data, "train")
    x = torch.as_tensor(x[: args.steps * args.batch])
    if args.weight_decay > 0:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=args.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for s in range(args.steps):
        b = x[s * args.batch : (s + 1) * args.batch]
        loss = torch.nn.functional.mse_loss(model(b), b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    want, got = model.state_dict(), trained.state_dict()
    diffs = {k: (want[k] - got[k]).abs().max().item() for k in want}
    worst = max(diffs.values())
    print(json.dumps({"steps": args.steps, "losses": losses, "max_abs_diff": worst, "per_tensor": diffs}))
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
