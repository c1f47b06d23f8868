#!/usr/bin/python3
"""Run the PyTorch reference measurements one after another and write
bench/reference.json (see REFERENCE.md).

  /usr/bin/python3 bench/make_reference.py [--phase all|train|steps]
      [--models classic,conv] [--threads 2] [--steps 200] [--repeats 3]

train: a full training run per model (torch_train.py --json: 5 epochs on all
60k images, test MSE on the 10k test images). steps: --repeats runs of
torch_train.py --steps N --json per model (median reported). Runs are
sequential so that they do not compete for the cores; each is its own
process, so peak RSS is per run. Results are merged into --out, so the phases
can be run at different times (e.g. the short --steps runs when the machine
is quiet).
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


def machine(threads):
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
        "python": platform.python_version(), "torch": torch.__version__, "threads": threads,
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
    out["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(json.dumps({k: v for k, v in out.items() if k != "log"}), file=sys.stderr, flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phase", choices=["all", "train", "steps"], default="all")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", default="classic,conv")
    p.add_argument("--out", default=os.path.join(HERE, "reference.json"))
    a = p.parse_args()
    ref = {}
    if os.path.exists(a.out):
        with open(a.out) as f:
            ref = json.load(f)
    for model in a.models.split(","):
        e = ref.setdefault(model, {})
        e["machine"] = machine(a.threads)
        if a.phase in ("all", "train"):
            t = run(["--model", model, "--threads", str(a.threads)])
            for k in ("model", "bottleneck", "epochs", "batch", "lr", "seed", "threads", "train_samples",
                      "test_samples", "epoch_loss", "epoch_seconds", "test_mse", "train_seconds",
                      "samples_per_sec", "cpu_seconds", "samples_per_cpu_sec", "peak_rss_mib"):
                e[k] = t[k]
            e["train_loadavg"] = [t["loadavg_start"], t["loadavg_end"]]
            e["train_finished"] = t["finished"]
            e["train_log"] = t["log"]
        if a.phase in ("all", "steps"):
            steps = [run(["--model", model, "--threads", str(a.threads), "--steps", str(a.steps)])
                     for _ in range(a.repeats)]
            sps = [s["samples_per_sec"] for s in steps]
            e["steps"] = a.steps
            e["steps_warmup"] = steps[0]["warmup"]
            e["steps_samples_per_sec"] = statistics.median(sps)
            e["steps_samples_per_sec_runs"] = sps
            e["steps_samples_per_cpu_sec_runs"] = [s["samples_per_cpu_sec"] for s in steps]
            e["steps_peak_rss_mib"] = max(s["peak_rss_mib"] for s in steps)
            e["steps_loadavg"] = [[s["loadavg_start"], s["loadavg_end"]] for s in steps]
            e["steps_finished"] = steps[-1]["finished"]
        with open(a.out, "w") as f:  # write as we go
            json.dump(ref, f, indent=2)
            f.write("\n")
    print(json.dumps(ref, indent=2))


if __name__ == "__main__":
    main()
