#!/usr/bin/env python3
"""The ReLU units of a latent model that never fire.

For each nn.ReLU of the model in a model.safetensors (loaded into the
notebook's class, strict=True), the units that are not above zero for any
image of an MNIST split: a Linear layer's features, or a convolution's
channels (a channel fires where any of its places is above zero). A unit that
never fires passes no gradient back: it is capacity the model does not use.
The README's recipe search reports these counts.

  /usr/bin/python3 bench/dead_units.py runs/conv
  /usr/bin/python3 bench/dead_units.py runs/conv --split test --limit 1000 --json

The text lists one line a ReLU (its module name, as in the state dict:
encoder.8 follows encoder.7); --json prints one JSON object, each ReLU's
name mapped to {"units", "dead" (their indices), "active_share" (the mean
share of images a unit fires on)}.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
from torch import nn  # noqa: E402

import notebook  # noqa: E402


def fired(model, images, batch=1000):
    """For each nn.ReLU of model, a bool tensor [N, units]: whether each unit
    is above zero for each image (for a convolution's channel: anywhere)."""
    out = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ReLU):
            def hook(mod, inputs, y, name=name):
                on = y > 0
                if on.dim() > 2:
                    on = on.flatten(2).any(2)
                out.setdefault(name, []).append(on)
            hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for i in range(0, len(images), batch):
                model(images[i:i + batch])
    finally:
        for h in hooks:
            h.remove()
    return {name: torch.cat(v) for name, v in out.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a model.safetensors, or a run folder holding one")
    p.add_argument("--data", default=None, help="MNIST folder (default: $LATENT_DATA or <repo>/../shared/datasets/mnist)")
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--limit", type=int, default=0, help="the first N images only (0: all)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    try:
        model, _ = notebook.load_model(a.model)
        images, _ = notebook.load_mnist(a.data, a.split)
    except (OSError, ValueError, notebook.ModelLoadError) as e:
        sys.exit("dead_units.py: %s" % e)
    if a.limit > 0:
        images = images[:a.limit]
    acts = fired(model, torch.from_numpy(images))
    report = {}
    for name, on in acts.items():
        ever = on.any(0)
        report[name] = {
            "units": int(ever.numel()),
            "dead": [int(i) for i in torch.nonzero(~ever).flatten()],
            "active_share": float(on.float().mean()),
        }
    if a.json:
        print(json.dumps(report))
        return
    print("%s, %s split, %d images" % (a.model, a.split, len(images)))
    for name, r in report.items():
        print("  %-10s %4d of %4d units never fire; a unit fires on %.1f%% of the images on average"
              % (name, len(r["dead"]), r["units"], 100 * r["active_share"]))


if __name__ == "__main__":
    main()
