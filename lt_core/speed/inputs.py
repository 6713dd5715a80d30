"""The benches' data (bench, memory, device_bench): a data set as the engine reads it, cut to a quick size on
request, or random data of its shapes, so that tests run the benches without the data sets.
"""
from __future__ import annotations

import torch

from ..data import datasets


def splits(name: str, quick: bool, synthetic: bool) -> datasets.Splits:
    if synthetic:  # random data of the right shapes: tests run the bench without the datasets
        shape = (1, 28, 28) if name == "mnist" else (3, 32, 32)
        g, n = torch.Generator().manual_seed(0), 600
        x = torch.randint(0, 256, (3 * n, *shape), generator=g, dtype=torch.uint8)
        y = torch.randint(0, 10, (3 * n,), generator=g)
        s = datasets.Splits(name, x[:n], y[:n], x[n:2 * n], y[n:2 * n], x[2 * n:], y[2 * n:],
                            torch.full((shape[0],), 0.5), torch.full((shape[0],), 0.3))
    else:
        s = datasets.load(name)
        if quick:
            s = datasets.Splits(name, s.x_train[:3000], s.y_train[:3000], s.x_val[:1000], s.y_val[:1000],
                                s.x_test[:1000], s.y_test[:1000], s.mean, s.std)
    return s
