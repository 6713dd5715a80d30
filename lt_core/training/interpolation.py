"""The error along the straight line between two trained copies of one network (linear mode connectivity).

At each alpha the model holds (1 - alpha) W_a + alpha W_b and is evaluated on the test split exactly as
train() evaluates (lt_core/training/loop.py: placed, measured), so alpha 0 and 1 give the two copies' own
final test numbers, bit for bit. Batch-norm statistics are not weights: averaging two networks' running
means and variances is not the statistics of the averaged network, so where a model has batch norm they are
recomputed at every point (the ends included, so the barrier compares like with like) from `bn_examples`
training images, unaugmented, in whole evaluation-sized chunks. Frankle et al. 2020 do not state their convention
in what this book could check; recomputing is the conservative reading (an interpolated network with stale
statistics shows a barrier that is only the statistics').
"""

from __future__ import annotations

import torch
from torch import nn

from ..sparsity import stability
from ..sparsity.masks import Mask
from .loop import DeviceData, eval_chunk, measured, placed


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def recompute_batch_norm(model: nn.Module, data: DeviceData, examples: int) -> None:
    """Running statistics from the first `examples` training images: reset, then a cumulative average
    (momentum None) over forward passes in training mode; the model is left in evaluation mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    chunk = min(eval_chunk(model), examples)
    x = data.x_train[:max(chunk, examples // chunk * chunk)]  # whole chunks: the average weighs each alike
    for start in range(0, len(x), chunk):
        model(x[start:start + chunk])
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.eval()


def path_rows(new_model, state_a: dict, state_b: dict, mask: Mask, data: DeviceData, *, points: int,
              bn_examples: int, on_point=None) -> list[tuple[float, float, float]]:
    """(alpha, test loss, test accuracy) at `points` evenly spaced alpha from copy a (0) to copy b (1).
    new_model() builds a fresh network of the copies' architecture; bn_examples 0 keeps the interpolated
    batch-norm statistics (only then are a batch-norm net's ends its own final numbers)."""
    rows = []
    for i, alpha in enumerate(stability.alphas(points)):
        model = new_model()
        model.load_state_dict(stability.interpolate(state_a, state_b, alpha))
        fast = placed(model, mask, data)
        if bn_examples and has_batch_norm(model):
            recompute_batch_norm(model, data, bn_examples)
        rows.append((alpha, *measured(model, fast, data, "test")))
        if on_point is not None:
            on_point(i + 1)
    return rows
