#!/usr/bin/python3
"""Check a latent model against PyTorch, or write PyTorch-made weights for latent.

Compare mode (the default):

  /usr/bin/python3 bench/torch_roundtrip.py --model OUT/model.safetensors \
      --images X.npy --codes C.npy --recons R.npy [--code-tol 1e-4 --recon-tol 1e-5]

loads the model into the notebook's class (strict state-dict load), encodes
the images ([N,1,28,28] or [N,784] float32) and compares those codes with
C.npy ([N,b]); decodes C.npy's codes (so the decoder is checked on the same
input the Go side used) and compares with R.npy ([N,1,28,28] or [N,784]).
It also reports, for information only, the full forward pass decoder(encoder(x))
against R.npy. Prints one JSON line with the max abs diffs. Exit status:
0 within tolerance, 1 over tolerance, 2 on a load or shape error.

Write mode:

  /usr/bin/python3 bench/torch_roundtrip.py --write-state-dict OUT.safetensors \
      --kind classic|conv [--bottleneck 10] [--seed 0] \
      [--images X.npy --codes C_OUT.npy --recons R_OUT.npy]

initialises a fresh notebook model with torch.manual_seed(seed) and writes its
state dict (F32, PyTorch layout and names, metadata kind/bottleneck/arch) so
that the Go side can test loading PyTorch-made weights. If --images is given
too, the model's codes and reconstructions (decoder(encoder(x))) of those
images are written to the --codes / --recons paths as float32 .npy files.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import notebook  # noqa: E402


def fail_load(msg):
    print("error: " + msg, file=sys.stderr, flush=True)
    return 2


def load_npy(path, what):
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError("cannot read %s %s: %s" % (what, path, e))
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError("%s %s has dtype %s, want float32" % (what, path, a.dtype))
    return np.ascontiguousarray(a, dtype=np.float32)


def as_images(a, what):
    if a.ndim == 2 and a.shape[1] == 784:
        return a.reshape(-1, 1, 28, 28)
    if a.ndim == 3 and a.shape[1:] == (28, 28):
        return a.reshape(-1, 1, 28, 28)
    if a.ndim == 4 and a.shape[1:] == (1, 28, 28):
        return a
    raise ValueError("%s has shape %s, want [N,1,28,28] or [N,784]" % (what, a.shape))


def compare(a):
    try:
        model, meta = notebook.load_model(a.model)
    except notebook.ModelLoadError as e:
        return fail_load(str(e))
    try:
        x = as_images(load_npy(a.images, "images"), "images")
        c = load_npy(a.codes, "codes")
        r = as_images(load_npy(a.recons, "recons"), "recons")
        n = x.shape[0]
        if c.ndim != 2 or c.shape != (n, model.bottleneck):
            raise ValueError("codes have shape %s, want [%d,%d]" % (c.shape, n, model.bottleneck))
        if r.shape[0] != n:
            raise ValueError("recons have %d images, want %d" % (r.shape[0], n))
    except ValueError as e:
        return fail_load(str(e))
    with torch.no_grad():
        xt = torch.from_numpy(x)
        codes = model.encode(xt).numpy()
        recon = model.decode(torch.from_numpy(c)).numpy()
        fwd = model.decode(model.encode(xt)).numpy()
    dc = float(np.max(np.abs(codes - c))) if n else 0.0
    dr = float(np.max(np.abs(recon - r))) if n else 0.0
    df = float(np.max(np.abs(fwd - r))) if n else 0.0
    ok = bool(dc <= a.code_tol and dr <= a.recon_tol and np.isfinite(dc) and np.isfinite(dr))
    out = {
        "model": a.model, "kind": model.kind, "bottleneck": model.bottleneck, "n": n,
        "code_max_abs_diff": dc, "recon_max_abs_diff": dr, "forward_max_abs_diff": df,
        "code_tol": a.code_tol, "recon_tol": a.recon_tol, "ok": ok,
    }
    print(json.dumps(out), flush=True)
    if not ok:
        print("error: over tolerance: codes %.3g (tol %.3g), recons %.3g (tol %.3g)"
              % (dc, a.code_tol, dr, a.recon_tol), file=sys.stderr, flush=True)
        return 1
    return 0


def write(a):
    torch.manual_seed(a.seed)
    try:
        model = notebook.build_model(a.kind, a.bottleneck)
    except ValueError as e:
        return fail_load(str(e))
    model.eval()
    notebook.save_model(a.write_state_dict, model, {"producer": "bench/torch_roundtrip.py", "seed": a.seed})
    out = {"wrote": a.write_state_dict, "kind": a.kind, "bottleneck": a.bottleneck, "seed": a.seed,
           "tensors": {k: list(v.shape) for k, v in model.state_dict().items()}}
    if a.images:
        if not (a.codes and a.recons):
            return fail_load("--images in write mode needs --codes and --recons output paths")
        try:
            x = as_images(load_npy(a.images, "images"), "images")
        except ValueError as e:
            return fail_load(str(e))
        with torch.no_grad():
            c = model.encode(torch.from_numpy(x))
            r = model.decode(c)
        np.save(a.codes, c.numpy().astype(np.float32))
        np.save(a.recons, r.numpy().astype(np.float32))
        out.update(codes=a.codes, recons=a.recons, n=int(x.shape[0]))
    print(json.dumps(out), flush=True)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="latent model.safetensors (or its folder) to check")
    p.add_argument("--images", help="images .npy, float32 [N,1,28,28] or [N,784]")
    p.add_argument("--codes", help="codes .npy [N,b] (input in compare mode, output in write mode)")
    p.add_argument("--recons", help="reconstructions .npy (input in compare mode, output in write mode)")
    p.add_argument("--code-tol", type=float, default=1e-4)
    p.add_argument("--recon-tol", type=float, default=1e-5)
    p.add_argument("--write-state-dict", metavar="OUT.safetensors", help="write mode: write a fresh model's state dict")
    p.add_argument("--kind", choices=sorted(notebook.MODELS), default="classic")
    p.add_argument("--bottleneck", type=int, default=notebook.DEFAULT_BOTTLENECK)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.write_state_dict:
        return write(a)
    if not (a.model and a.images and a.codes and a.recons):
        p.error("compare mode needs --model, --images, --codes and --recons")
    return compare(a)


if __name__ == "__main__":
    sys.exit(main())
