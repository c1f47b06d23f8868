#!/usr/bin/python3
"""The notebook's training recipe in PyTorch, as latent's reference.

MSE loss (mean), Adam lr 1e-3 (default betas/eps), batch 64, 5 epochs, no
shuffling (the order of DataLoader(shuffle=False, drop_last=False): the last
training batch has 60000 % 64 = 32 images), torch.manual_seed(seed) before
the model is built.

MNIST is read once up-front into tensors and batches are slices of them, so
the timings measure training, not torchvision's per-sample pipeline (the
numbers are the same as ToTensor's: uint8/255 in float32).

  /usr/bin/python3 bench/torch_train.py --model classic --json
  /usr/bin/python3 bench/torch_train.py --model conv --steps 200
  /usr/bin/python3 bench/torch_train.py --model conv --init runs/init/model.safetensors

Per-epoch lines go to stderr; with --json, one JSON line goes to stdout.
"""

import argparse
import json
import math
import os
import platform
import resource
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import notebook  # noqa: E402


def peak_rss_mib():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds():
    """User + system CPU time of this process (all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def batches(n, batch):
    for i in range(0, n, batch):
        yield i, min(i + batch, n)


def test_mse(model, x, batch=1000):
    """Mean squared error over all test pixels, model.eval(), no_grad."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for b, e in batches(x.shape[0], batch):
            xb = x[b:e]
            total += float(((model(xb) - xb) ** 2).sum(dtype=torch.float64))
    model.train()
    return total / x.numel()


def test_neg_elbo(model, x, batch=1000, seed=0):
    """A VAE's negative ELBO per test image and its KL term (nats): one z per
    image, drawn from a generator seeded with seed."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    total, kls = 0.0, 0.0
    with torch.no_grad():
        for b, e in batches(x.shape[0], batch):
            xb = x[b:e]
            mu, logvar = model.encode_dist(xb)
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g)
            _, bce, kl = notebook.vae_loss(model.decode(z), xb, mu, logvar)
            total += float(bce + kl) * (e - b)
            kls += float(kl) * (e - b)
    model.train()
    return total / x.shape[0], kls / x.shape[0]


def lr_at(a, t, steps_per_epoch):
    """latent's trainer.LRAt: the learning rate of step t (from 1)."""
    if a.schedule == "constant" or t < 1:
        return a.lr
    if t <= a.warmup:
        return a.lr * t / a.warmup
    total = a.epochs * steps_per_epoch
    span = total - a.warmup
    if span < 1:
        return a.lr
    k = min(t - a.warmup - 1, span - 1)
    return a.lr * 0.5 * (1 + math.cos(math.pi * k / span))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(notebook.MODELS), default="classic")
    p.add_argument("--bottleneck", type=int, default=notebook.DEFAULT_BOTTLENECK)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", default=notebook.default_data_dir(),
                   help="MNIST folder (default: $LATENT_DATA or <repo>/../shared/datasets/mnist)")
    p.add_argument("--steps", type=int, default=0,
                   help="benchmark mode: time N training steps after 5 warm-up steps, print samples/s only")
    p.add_argument("--warmup", type=int, default=5, help="warm-up steps for --steps")
    p.add_argument("--limit", type=int, default=0,
                   help="use only the first N training images and the first N test images (quick checks)")
    p.add_argument("--init", default="",
                   help="start from these weights (a latent model.safetensors, e.g. from latent train --epochs 0) "
                        "instead of PyTorch's seeded initialisation")
    p.add_argument("--save", default="", help="write the trained model here as a latent-style model.safetensors")
    p.add_argument("--json", action="store_true", help="print one JSON line of results to stdout")
    p.add_argument("--beta", type=float, default=1.0, help="VAEs: the weight of the KL term")
    p.add_argument("--shuffle", action="store_true", help="shuffle the training set every epoch (torch.randperm, seeded)")
    p.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                   help="cosine: linear warm-up over --warmup-steps, then half a cosine to 0, stepped every batch (latent's)")
    p.add_argument("--warmup-steps", type=int, default=0, dest="warmup_lr")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW's decoupled weight decay (0: Adam)")
    p.add_argument("--lr-scale", default="",
                   help="learning-rate factors, as latent train --lr-scale (encoder.7.weight=0.1): parameter groups")
    a = p.parse_args(argv)
    variational = a.model.endswith("-vae")

    torch.set_num_threads(a.threads)
    try:
        xtr, _ = notebook.load_mnist(a.data, "train")
        xte, _ = (None, None) if a.steps else notebook.load_mnist(a.data, "test")
    except (OSError, ValueError) as e:
        log("error: reading MNIST from %s: %s" % (a.data, e))
        return 2
    if a.limit > 0:
        xtr = xtr[: a.limit]
        if xte is not None:
            xte = xte[: a.limit]
    xtr = torch.from_numpy(np.ascontiguousarray(xtr))
    if xte is not None:
        xte = torch.from_numpy(np.ascontiguousarray(xte))
    n = xtr.shape[0]

    torch.manual_seed(a.seed)
    model = notebook.build_model(a.model, a.bottleneck)
    if a.init:
        try:
            init, _ = notebook.load_model(a.init)
        except notebook.ModelLoadError as e:
            log("error: --init: %s" % e)
            return 2
        if type(init) is not type(model):
            log("error: --init %s holds a %s, not a %s model" % (a.init, type(init).__name__, a.model))
            return 2
        model = init
    model.train()
    loss_fn = nn.MSELoss()
    try:
        groups = notebook.lr_scale_groups(model, a.lr_scale, a.lr)
    except ValueError as e:
        log("error: --lr-scale: %s" % e)
        return 2
    for g in groups:
        g["factor"] = g["lr"] / a.lr
    if a.weight_decay > 0:
        opt = torch.optim.AdamW(groups, lr=a.lr, weight_decay=a.weight_decay)
    else:
        opt = torch.optim.Adam(groups, lr=a.lr)
    steps_per_epoch = (n + a.batch - 1) // a.batch
    sched = argparse.Namespace(schedule=a.schedule, lr=a.lr, warmup=a.warmup_lr, epochs=a.epochs)
    taken = 0

    def step(xb):
        nonlocal taken
        taken += 1
        for group in opt.param_groups:
            group["lr"] = lr_at(sched, taken, steps_per_epoch) * group["factor"]
        opt.zero_grad()
        if variational:
            recon, mu, logvar = model.sample_forward(xb)
            loss, _, _ = notebook.vae_loss(recon, xb, mu, logvar, a.beta)
        else:
            loss = loss_fn(model(xb), xb)
        loss.backward()
        opt.step()
        return loss

    base = {
        "model": a.model, "bottleneck": a.bottleneck, "batch": a.batch, "lr": a.lr, "seed": a.seed,
        "threads": a.threads, "init": a.init or "torch", "torch": torch.__version__, "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                          "OMP_WAIT_POLICY") if k in os.environ},
        "loadavg_start": loadavg(),
    }

    if a.steps > 0:
        # Benchmark mode: batches in data order, wrapping round at the end.
        spans = list(batches(n, a.batch))
        k = 0

        def next_batch():
            nonlocal k
            b, e = spans[k % len(spans)]
            k += 1
            return xtr[b:e]

        for _ in range(a.warmup):
            step(next_batch())
        samples = 0
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            xb = next_batch()
            step(xb)
            samples += xb.shape[0]
        dt = time.perf_counter() - t0
        cpu = cpu_seconds() - c0
        sps = samples / dt
        if a.json:
            out = dict(base, mode="steps", steps=a.steps, warmup=a.warmup, samples=samples,
                       seconds=dt, samples_per_sec=sps, cpu_seconds=cpu, samples_per_cpu_sec=samples / cpu,
                       loadavg_end=loadavg(), peak_rss_mib=peak_rss_mib())
            print(json.dumps(out), flush=True)
        else:
            print("%.1f" % sps, flush=True)
        return 0

    epoch_loss, epoch_sec = [], []
    samples = 0
    train_sec = 0.0
    c0 = cpu_seconds()
    gen = torch.Generator().manual_seed(a.seed)
    for ep in range(a.epochs):
        t0 = time.perf_counter()
        total, nb = 0.0, 0
        order = torch.randperm(n, generator=gen) if a.shuffle else None
        for b, e in batches(n, a.batch):
            loss = step(xtr[b:e] if order is None else xtr[order[b:e]])
            total += loss.item()
            nb += 1
            samples += e - b
        dt = time.perf_counter() - t0
        train_sec += dt
        epoch_loss.append(total / nb)
        epoch_sec.append(dt)
        log("epoch %d/%d  train loss %.6f  %.1fs  %.0f samples/s" % (ep + 1, a.epochs, total / nb, dt, (n / dt)))
    cpu = cpu_seconds() - c0
    mse = test_mse(model, xte)
    log("test MSE %.6f" % mse)
    extra = {}
    if variational:
        nelbo, kl = test_neg_elbo(model, xte, seed=a.seed)
        log("test negative ELBO %.4f nats (KL %.4f)" % (nelbo, kl))
        extra = {"test_neg_elbo": nelbo, "test_kl": kl, "beta": a.beta}
    recipe = {"shuffle": a.shuffle, "schedule": a.schedule, "warmup_steps": a.warmup_lr, "weight_decay": a.weight_decay,
              "lr_scale": a.lr_scale}
    if a.save:
        notebook.save_model(a.save, model, {"producer": "bench/torch_train.py", "epochs": a.epochs, "seed": a.seed})
        log("saved %s" % a.save)
    out = dict(base, mode="train", epochs=a.epochs, train_samples=n, test_samples=int(xte.shape[0]),
               epoch_loss=epoch_loss, epoch_seconds=epoch_sec, test_mse=mse,
               train_seconds=train_sec, samples_per_sec=samples / train_sec if train_sec > 0 else 0.0,
               cpu_seconds=cpu, samples_per_cpu_sec=samples / cpu if cpu > 0 else 0.0,
               loadavg_end=loadavg(), peak_rss_mib=peak_rss_mib(), recipe=recipe, **extra)
    if a.json:
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
