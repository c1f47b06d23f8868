#!/usr/bin/python3
"""Time PyTorch inference (encoding) of a latent model, for comparison with
ONNX Runtime and latent's Go inference.

  /usr/bin/python3 bench/torch_infer.py --model OUT/model.safetensors \
      [--split test|train] [--batch 1000] [--threads 2] [--single 1000]

Measures, with model.eval() and torch.no_grad():
  * batch encoding of the whole split in batches of --batch (images/s),
    after one warm-up batch;
  * single-image encode latency ([1,1,28,28]) over --single calls
    (after 20 warm-up calls): p50, p99, mean in milliseconds.
Prints one JSON line. Use --kind/--seed instead of --model to time a freshly
initialised model.
"""

import argparse
import json
import os
import platform
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import notebook  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="latent model.safetensors (or its folder)")
    p.add_argument("--kind", choices=sorted(notebook.MODELS), help="time a fresh model of this kind instead of --model")
    p.add_argument("--bottleneck", type=int, default=notebook.DEFAULT_BOTTLENECK)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=["test", "train"], default="test")
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--single", type=int, default=1000, help="single-image encode calls to time")
    p.add_argument("--data", default=notebook.default_data_dir())
    a = p.parse_args(argv)
    if not a.model and not a.kind:
        p.error("need --model or --kind")
    torch.set_num_threads(a.threads)

    if a.model:
        try:
            model, _ = notebook.load_model(a.model)
        except notebook.ModelLoadError as e:
            print("error: " + str(e), file=sys.stderr)
            return 2
    else:
        torch.manual_seed(a.seed)
        model = notebook.build_model(a.kind, a.bottleneck)
    model.eval()
    try:
        x, _ = notebook.load_mnist(a.data, a.split)
    except (OSError, ValueError) as e:
        print("error: reading MNIST from %s: %s" % (a.data, e), file=sys.stderr)
        return 2
    x = torch.from_numpy(np.ascontiguousarray(x))
    n = x.shape[0]

    with torch.no_grad():
        model.encode(x[: a.batch])  # warm-up
        t0 = time.perf_counter()
        for b in range(0, n, a.batch):
            model.encode(x[b : b + a.batch])
        batch_sec = time.perf_counter() - t0

        for i in range(20):
            model.encode(x[i : i + 1])
        lat = np.empty(a.single, dtype=np.float64)
        for i in range(a.single):
            xi = x[i % n : i % n + 1]
            t = time.perf_counter()
            model.encode(xi)
            lat[i] = time.perf_counter() - t
    out = {
        "engine": "pytorch", "torch": torch.__version__, "python": platform.python_version(),
        "model": a.model or ("fresh:%s:seed%d" % (a.kind, a.seed)), "kind": model.kind,
        "bottleneck": model.bottleneck, "split": a.split, "n": n, "batch": a.batch, "threads": a.threads,
        "batch_seconds": batch_sec, "images_per_sec": n / batch_sec,
        "single_calls": a.single,
        "single_p50_ms": float(np.percentile(lat, 50) * 1e3) if a.single else None,
        "single_p99_ms": float(np.percentile(lat, 99) * 1e3) if a.single else None,
        "single_mean_ms": float(lat.mean() * 1e3) if a.single else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
