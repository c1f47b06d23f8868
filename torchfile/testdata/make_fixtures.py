#!/usr/bin/python3
"""Writes the PyTorch fixtures of package torchfile's tests.

Run it once, from any directory, with Debian's interpreter (torch 1.13):

    /usr/bin/python3 torchfile/testdata/make_fixtures.py

The values are small multiples of 1/4, exact in float32, so that the Go tests
can compare them with ==. Each file is well under 10 KB.
"""
import collections
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


def model():
    """nn.Sequential(Linear(3,2), ReLU(), Linear(2,4)); the k-th parameter
    (in state dict order) holds arange(numel) * 0.25 + 10 * k."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 4))
    with torch.no_grad():
        for k, p in enumerate(m.parameters()):
            p.copy_((torch.arange(p.numel(), dtype=torch.float32) * 0.25 + 10 * k).reshape(p.shape))
    return m


def main():
    m = model()

    # A state dict of four float32 tensors: 0.weight [2,3], 0.bias [2],
    # 2.weight [4,2], 2.bias [4].
    torch.save(m.state_dict(), path("statedict.pth"))

    # The same with pickle protocol 4 (FRAME, SHORT_BINUNICODE, MEMOIZE,
    # STACK_GLOBAL), which torch.save writes when asked.
    torch.save(m.state_dict(), path("proto4.pth"), pickle_protocol=4)

    # Views that are not row-major: a transpose (strides 1, 3) and a slice
    # with a storage offset and a stride of 2, plus a 0-d tensor.
    base = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    line = torch.arange(10, dtype=torch.float32)
    torch.save(collections.OrderedDict([
        ("transposed", base.t()),        # [[0,3],[1,4],[2,5]]
        ("sliced", line[2:8:2]),         # [2,4,6]
        ("scalar", torch.tensor(7.5)),   # 7.5, shape []
    ]), path("strided.pth"))

    # Mixed dtypes: only float32 is converted, the others are reported.
    torch.save(collections.OrderedDict([
        ("w", torch.tensor([1.5, -2.0], dtype=torch.float32)),
        ("d", torch.arange(3, dtype=torch.float64)),
        ("n", torch.arange(4, dtype=torch.int64)),
        ("h", torch.ones(2, dtype=torch.float16)),
    ]), path("float64.pth"))

    # Two tensors that view one storage, saved as a plain dict.
    shared = torch.arange(8, dtype=torch.float32)
    torch.save({"all": shared.view(2, 4), "tail": shared[4:]}, path("shared.pth"))

    # The whole model pickled, not its state dict.
    torch.save(m, path("model.pth"))

    # The legacy (pre-1.6, not zip) format.
    torch.save(m.state_dict(), path("legacy.pth"), _use_new_zipfile_serialization=False)

    for name in sorted(os.listdir(HERE)):
        if name.endswith(".pth"):
            size = os.path.getsize(path(name))
            assert size < 10000, (name, size)
            print(name, size)


if __name__ == "__main__":
    main()
