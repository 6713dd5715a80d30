"""LeNet's first layer evaluated on sparse inputs: MNIST digits are 81% black pixels, so most of an
evaluation's work multiplies the same constant.

Why: a LeNet-300-100 level evaluates 15,000 examples (validation and test) every 100 steps, as much
arithmetic as the 100 training steps themselves, and 88% of it is the first layer (784 x 300). Write an
input as x = z + black, where black is the normalised value of a 0 pixel and z is zero wherever the pixel is
black (19% of MNIST's entries are not). Then, exactly in real arithmetic,

    W x + b  =  W z + (b + W black)

and W z only touches the nonzeros of z: per example, a sum of the weight columns of its lit pixels, scaled
by their values. That is one `embedding_bag` call (the weight transposed is the table, each example a bag),
on a 2,000-example chunk here 1.9x faster than oneDNN's dense product (products.py) and 4.3x faster
than MKL's, at any weight density. The nonzeros of
each split are found once per dataset (train.DeviceData.ragged) and reused by every evaluation.

Measured and not kept: the same decomposition for the training step (forward as a bag sum, weight
gradient as bag sums over pixels). Finding a 60-example batch's nonzeros in both orders costs about as
much as it saves, so training steps were no faster (lt_core/speed/bench.py; the history is in the README).
Results match the dense product up to summation order (tests/test_speed_paths.py).
"""

from __future__ import annotations

import torch

from ...nets import products

INPUT_DENSITY = 0.3  # data whose inputs are at most this fraction non-black takes this path (MNIST: 0.19)


def ragged(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The nonzeros of an (examples x features) matrix as embedding_bag's (feature indices, values, offsets
    of each example's run); 32-bit indices, which embedding_bag reads 8% faster than 64-bit here."""
    rows, cols = (z != 0).nonzero(as_tuple=True)
    offsets = torch.searchsorted(rows, torch.arange(z.shape[0], device=z.device))
    return cols.to(torch.int32), z[rows, cols], offsets.to(torch.int32)


def first_layer(weight_t: torch.Tensor, bias: torch.Tensor, black: torch.Tensor, chunks):
    """W x + b (examples x outputs), chunk by chunk, for a first layer given as its (inputs x outputs)
    weight, on inputs given as the ragged nonzeros of x - black (DeviceData.ragged)."""
    shift = torch.addmv(bias, weight_t.t(), black)  # what the black part of every input adds: once
    for cols, values, offsets in chunks:
        yield products.ragged_mm(cols, offsets, values, weight_t).add_(shift)
