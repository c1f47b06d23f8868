#!/usr/bin/python3
"""Run the PyTorch reference measurements one after another and write
bench/reference.json (see REFERENCE.md).

  /usr/bin/python3 bench/make_reference.py [--threads 2] [--steps 200] [--repeats 3]

For each model (classic, conv): a full training run (torch_train.py --json,
5 epochs on all 60k images, test MSE on the 10k test images), then --repeats
runs of torch_train.py --steps N --json. Runs are sequential so that timings
do not compete for the cores. Each run is a separate process, so peak RSS is
per run.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "platform": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run(args):
    cmd = [PY, os.path.join(HERE, "torch_train.py")] + args + ["--json"]
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        raise SystemExit("command failed (%d): %s" % (p.returncode, " ".join(cmd)))
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["log"] = p.stderr.strip().splitlines()
    print(json.dumps({k: v for k, v in out.items() if k != "log"}), file=sys.stderr, flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", default="classic,conv")
    p.add_argument("--out", default=os.path.join(HERE, "reference.json"))
    a = p.parse_args()
    m = machine()
    m["threads"] = a.threads
    ref = {}
    for model in a.models.split(","):
        t = run(["--model", model, "--threads", str(a.threads)])
        steps = [run(["--model", model, "--threads", str(a.threads), "--steps", str(a.steps)])
                 for _ in range(a.repeats)]
        sps = [s["samples_per_sec"] for s in steps]
        ref[model] = {
            "model": model, "bottleneck": t["bottleneck"], "epochs": t["epochs"], "batch": t["batch"],
            "lr": t["lr"], "seed": t["seed"], "threads": t["threads"],
            "train_samples": t["train_samples"], "test_samples": t["test_samples"],
            "epoch_loss": t["epoch_loss"], "epoch_seconds": t["epoch_seconds"],
            "test_mse": t["test_mse"], "train_seconds": t["train_seconds"],
            "samples_per_sec": t["samples_per_sec"], "peak_rss_mib": t["peak_rss_mib"],
            "steps": a.steps, "steps_warmup": steps[0]["warmup"],
            "steps_samples_per_sec": statistics.median(sps), "steps_samples_per_sec_runs": sps,
            "steps_peak_rss_mib": max(s["peak_rss_mib"] for s in steps),
            "machine": m, "train_log": t["log"],
        }
        with open(a.out, "w") as f:  # write as we go
            json.dump(ref, f, indent=2)
            f.write("\n")
    print(json.dumps(ref, indent=2))


if __name__ == "__main__":
    main()
