"""The PyTorch side of latent: the notebook's two autoencoders, an MNIST
reader and a minimal safetensors reader/writer (pure python + numpy).

The models are the notebook's own classes, imported from
../shared/reference/notebook_models.py: their state-dict names
("encoder.0.weight", "decoder.4.bias", ...) are the names that latent's Go
checkpoints use, with tensors in PyTorch's layout, so that
load_model(path) can load a latent model.safetensors with strict=True.
Run a model with model.encode(x) and model.decode(code), as the notebook
does: the classic model flattens and unflattens outside its Sequentials.

Use Debian's interpreter: /usr/bin/python3 (it has torch).
"""

import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
from torch import nn

DEFAULT_BOTTLENECK = 10

# Repository root = the parent of this file's folder (bench/).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_data_dir():
    """LATENT_DATA if set, else ../shared/datasets/mnist relative to the repo root."""
    env = os.environ.get("LATENT_DATA")
    if env:
        return env
    return os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "datasets", "mnist"))


# --------------------------------------------------------------------------
# The notebook's models: its own classes, imported from
# ../shared/reference/notebook_models.py (or $LATENT_REFERENCE), never
# retyped. A model of another bottleneck is a subclass that sets the class
# attribute `bottleneck`, as that folder's README says.

REFERENCE_DIR = os.environ.get("LATENT_REFERENCE") or os.path.normpath(
    os.path.join(REPO_ROOT, "..", "shared", "reference"))
if not os.path.exists(os.path.join(REFERENCE_DIR, "notebook_models.py")):
    raise ImportError("the notebook's classes are not in %s: put the shared/ folder beside the checkout, "
                      "or name its reference/ folder with $LATENT_REFERENCE" % REFERENCE_DIR)
sys.path.insert(0, REFERENCE_DIR)
from notebook_models import ClassicAutoencoderMNIST, ConvAutoencoderMNIST  # noqa: E402

NOTEBOOK_CLASSES = {"classic": ClassicAutoencoderMNIST, "conv": ConvAutoencoderMNIST}


def _notebook_model(kind):
    base = NOTEBOOK_CLASSES[kind]

    def make(bottleneck=DEFAULT_BOTTLENECK):
        cls = type("%s_%d" % (base.__name__, bottleneck), (base,), {"bottleneck": int(bottleneck), "kind": kind})
        return cls()
    return make


def _vae_model(kind):
    """The variational version of a notebook model: latent's "classic-vae"
    and "conv-vae". It is the notebook's class with the encoder's last
    Linear (to the bottleneck) replaced by two heads, fc_mu and fc_logvar,
    so its state dict is the notebook's names plus fc_mu.* and fc_logvar.*
    (and without the encoder's last index). encode(x) gives mu, the code;
    encode_dist(x) gives (mu, logvar); sample_forward(x) draws
    z = mu + exp(logvar/2)*eps and returns (decode(z), mu, logvar)."""
    base = NOTEBOOK_CLASSES[kind]

    def init(self):
        base.__init__(self)
        last = self.encoder[-1]
        self.encoder = nn.Sequential(*list(self.encoder)[:-1])
        self.fc_mu = nn.Linear(last.in_features, self.bottleneck)
        self.fc_logvar = nn.Linear(last.in_features, self.bottleneck)

    def encode_dist(self, x):
        h = base.encode(self, x)  # the notebook's encode, without the last Linear
        return self.fc_mu(h), self.fc_logvar(h)

    def encode(self, x):
        return self.encode_dist(x)[0]

    def sample_forward(self, x):
        mu, logvar = self.encode_dist(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.decode(z), mu, logvar

    def make(bottleneck=DEFAULT_BOTTLENECK):
        cls = type("%sVAE_%d" % (base.__name__, bottleneck), (base,), {
            "bottleneck": int(bottleneck), "kind": kind + "-vae", "__init__": init,
            "encode_dist": encode_dist, "encode": encode, "sample_forward": sample_forward})
        return cls()
    return make


def vae_loss(recon, x, mu, logvar, beta=1.0):
    """latent's VAE loss: binary cross-entropy summed over each image plus
    beta*KL(q(z|x) || N(0, I)), averaged over the batch. Returns (loss, bce,
    kl), each per image."""
    n = x.shape[0]
    bce = nn.functional.binary_cross_entropy(recon, x, reduction="sum") / n
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / n
    return bce + beta * kl, bce, kl


# MODELS makes a freshly initialised model of a kind, for a bottleneck: the
# notebook's two, and their variational versions.
MODELS = {kind: _notebook_model(kind) for kind in NOTEBOOK_CLASSES}
MODELS.update({kind + "-vae": _vae_model(kind) for kind in NOTEBOOK_CLASSES})


def build_model(kind, bottleneck=DEFAULT_BOTTLENECK):
    """A freshly initialised model of the given kind (uses torch's RNG)."""
    if kind not in MODELS:
        raise ValueError("unknown model kind %r: want one of %s" % (kind, ", ".join(sorted(MODELS))))
    b = int(bottleneck)
    if b < 1 or b > 4096:
        raise ValueError("bottleneck %d out of range: want 1 to 4096" % b)
    return MODELS[kind](b)


def arch_json(kind, bottleneck):
    """The architecture declaration as latent's Go models.Arch.JSON() writes it
    (same field order, omitempty), for the "arch" metadata key."""
    b = int(bottleneck)
    L = lambda i, o: {"op": "Linear", "in": i, "out": o}
    R = {"op": "ReLU"}
    S = {"op": "Sigmoid"}
    variational = kind.endswith("-vae")
    kind = kind[:-4] if variational else kind
    if kind == "classic":
        enc = [{"op": "Flatten", "attr": "flatten"}, L(784, 512), R, L(512, 512), R, L(512, b)]
        dec = [L(b, 512), R, L(512, 512), R, L(512, 784), S, {"op": "Unflatten", "shape": [1, 28, 28], "attr": "unflatten"}]
    elif kind == "conv":
        C = lambda i, o: {"op": "Conv2d", "in": i, "out": o, "kernel": 3, "stride": 1, "pad": 1}
        P = {"op": "MaxPool2d", "kernel": 2, "stride": 2}
        T = lambda i, o: {"op": "ConvTranspose2d", "in": i, "out": o, "kernel": 2, "stride": 2}
        enc = [C(1, 16), R, P, C(16, 32), R, P, {"op": "Flatten"}, L(1568, 128), R, L(128, b)]
        dec = [L(b, 128), R, L(128, 1568), R, {"op": "Unflatten", "shape": [32, 7, 7]}, T(32, 16), R, T(16, 1), S]
    else:
        raise ValueError("unknown model kind %r" % kind)
    a = {"kind": kind, "bottleneck": b, "input": [1, 28, 28], "encoder": enc, "decoder": dec}
    if variational:
        a["kind"] = kind + "-vae"
        a["encoder"] = enc[:-1]  # the heads replace the last Linear
        a["variational"] = True
    return json.dumps(a, separators=(",", ":"))


# --------------------------------------------------------------------------
# MNIST.

_SPLIT_PREFIX = {"train": "train", "test": "t10k", "t10k": "t10k"}


def _read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError("%s: not an IDX file" % path)
    if data[2] != 0x08:
        raise ValueError("%s: IDX type 0x%02x, want 0x08 (uint8)" % (path, data[2]))
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError("%s: %d values, want %d for shape %s" % (path, arr.size, int(np.prod(dims)), dims))
    return arr.reshape(dims)


def _find(dirpath, name):
    for cand in (name + ".gz", name):
        p = os.path.join(dirpath, cand)
        if os.path.exists(p):
            return p
    raise FileNotFoundError("MNIST file %s(.gz) not found in %s" % (name, dirpath))


def load_mnist(dirpath=None, split="train"):
    """Read MNIST in place from gzip IDX files.

    Returns (images, labels): images float32 [N,1,28,28] = uint8/255,
    labels int64 [N].
    """
    dirpath = dirpath or default_data_dir()
    if split not in _SPLIT_PREFIX:
        raise ValueError("unknown split %r: want train or test" % split)
    pre = _SPLIT_PREFIX[split]
    imgs = _read_idx(_find(dirpath, pre + "-images-idx3-ubyte"))
    labs = _read_idx(_find(dirpath, pre + "-labels-idx1-ubyte"))
    if imgs.ndim != 3 or imgs.shape[1:] != (28, 28):
        raise ValueError("MNIST %s images have shape %s, want [N,28,28]" % (split, imgs.shape))
    if labs.shape != (imgs.shape[0],):
        raise ValueError("MNIST %s: %d labels for %d images" % (split, labs.shape[0], imgs.shape[0]))
    images = (imgs.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)
    return images, labs.astype(np.int64)


# --------------------------------------------------------------------------
# safetensors, minimal: 8-byte little-endian header length, JSON header
# {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__": {str:str}},
# then the raw little-endian data (offsets relative to the end of the header).

_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

_MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    pass


def read_safetensors(path):
    """Read a safetensors file. Returns (tensors, metadata): tensors is a dict
    name -> numpy array (native byte order, in file order), metadata a dict
    str -> str (empty when absent). BF16 is widened to float32."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise SafetensorsError("%s: %d bytes, too short for a safetensors file" % (path, len(buf)))
    (n,) = struct.unpack("<Q", buf[:8])
    if n > _MAX_HEADER or 8 + n > len(buf):
        raise SafetensorsError("%s: header length %d does not fit a %d-byte file" % (path, n, len(buf)))
    try:
        header = json.loads(buf[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError("%s: bad JSON header: %s" % (path, e))
    if not isinstance(header, dict):
        raise SafetensorsError("%s: header is not a JSON object" % path)
    data = memoryview(buf)[8 + n :]
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise SafetensorsError("%s: __metadata__ must map strings to strings" % path)
    tensors = {}
    spans = []
    for name, info in header.items():
        try:
            dt, shape, (b, e) = info["dtype"], [int(s) for s in info["shape"]], info["data_offsets"]
            b, e = int(b), int(e)
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError("%s: tensor %r: want dtype, shape and data_offsets [begin,end]" % (path, name))
        if any(s < 0 for s in shape):
            raise SafetensorsError("%s: tensor %r: negative shape %s" % (path, name, shape))
        if dt == "BF16":
            itemsize = 2
        elif dt in _DTYPES:
            itemsize = _DTYPES[dt].itemsize
        else:
            raise SafetensorsError("%s: tensor %r: unsupported dtype %s" % (path, name, dt))
        count = int(np.prod(shape)) if shape else 1
        if not (0 <= b <= e <= len(data)):
            raise SafetensorsError("%s: tensor %r: data_offsets [%d,%d] outside the %d data bytes" % (path, name, b, e, len(data)))
        if e - b != count * itemsize:
            raise SafetensorsError("%s: tensor %r: %d bytes for %s %s, want %d" % (path, name, e - b, dt, shape, count * itemsize))
        raw = bytes(data[b:e])
        if dt == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=_DTYPES[dt]).astype(_DTYPES[dt].newbyteorder("="))
        tensors[name] = arr.reshape(shape)
        spans.append((b, e, name))
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise SafetensorsError("%s: tensors %r and %r overlap" % (path, n0, n1))
    return tensors, dict(meta)


def write_safetensors(path, tensors, metadata=None):
    """Write tensors (dict name -> numpy array or torch tensor, written in the
    dict's order) and string metadata to path in safetensors format."""
    header = {}
    chunks = []
    off = 0
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().numpy()
        a = np.ascontiguousarray(t)
        dt = a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
        key = None
        for k, v in _DTYPES.items():
            if v == dt:
                key = k
                break
        if key is None:
            raise SafetensorsError("tensor %r: unsupported numpy dtype %s" % (name, a.dtype))
        raw = a.astype(dt, copy=False).tobytes()
        header[name] = {"dtype": key, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((-len(h)) % 8)  # pad so the data starts 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# latent checkpoints.


class ModelLoadError(Exception):
    pass


def state_dict_numpy(model):
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}


def save_model(path, model, extra_metadata=None):
    """Write a model's state dict as a latent-style model.safetensors (F32,
    metadata kind / bottleneck / arch)."""
    meta = {"kind": model.kind, "bottleneck": str(model.bottleneck), "arch": arch_json(model.kind, model.bottleneck)}
    if extra_metadata:
        meta.update({str(k): str(v) for k, v in extra_metadata.items()})
    write_safetensors(path, state_dict_numpy(model), meta)


def load_model(path):
    """Load a latent model.safetensors (or a folder holding one) into the
    notebook class named by its "kind" metadata, with strict=True. Returns
    (model in eval mode, metadata). Raises ModelLoadError with a clear
    message on any problem."""
    if os.path.isdir(path):
        path = os.path.join(path, "model.safetensors")
    try:
        tensors, meta = read_safetensors(path)
    except (OSError, SafetensorsError) as e:
        raise ModelLoadError("cannot read %s: %s" % (path, e))
    kind = meta.get("kind")
    if kind not in MODELS:
        raise ModelLoadError("%s: metadata kind=%r, want one of %s" % (path, kind, ", ".join(sorted(MODELS))))
    b = meta.get("bottleneck")
    if b is None:
        # Infer from the encoder's last Linear, if the metadata lacks it.
        last = "encoder.4.bias" if kind == "classic" else "encoder.9.bias"
        if last not in tensors:
            raise ModelLoadError("%s: no bottleneck metadata and no %s tensor" % (path, last))
        b = tensors[last].shape[0]
    try:
        b = int(b)
        model = build_model(kind, b)
    except ValueError as e:
        raise ModelLoadError("%s: bad bottleneck %r: %s" % (path, meta.get("bottleneck"), e))
    sd = {}
    for k, v in tensors.items():
        if not np.issubdtype(v.dtype, np.floating):
            raise ModelLoadError("%s: tensor %s has dtype %s, want a float type" % (path, k, v.dtype))
        sd[k] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise ModelLoadError("%s: state dict does not match the notebook's %s model (bottleneck %d): %s" % (path, kind, b, e))
    model.eval()
    return model, meta


def lr_scale_groups(model, spec, lr):
    """Parameter groups for torch.optim of model with the learning-rate
    factors spec, latent's --lr-scale ("encoder.7.weight=0.1,decoder.2=0.3":
    a state-dict name, or a module name for all its parameters): each
    parameter learns at lr times its factor (1 where spec names none). An
    unknown name raises ValueError."""
    scales = {}
    for pair in filter(None, (p.strip() for p in spec.split(","))):
        name, _, v = pair.partition("=")
        scales[name] = float(v)
    groups = {}
    used = set()
    for pname, p in model.named_parameters():
        module = pname.rsplit(".", 1)[0]
        f = 1.0
        for key in (module, pname):  # a parameter's own factor wins
            if key in scales:
                f = scales[key]
                used.add(key)
        groups.setdefault(f, []).append(p)
    unknown = set(scales) - used
    if unknown:
        raise ValueError("no parameter or module named %s" % ", ".join(sorted(unknown)))
    return [{"params": ps, "lr": lr * f} for f, ps in sorted(groups.items())]
