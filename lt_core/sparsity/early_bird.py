"""When does a mask settle? Pure functions for Early-Bird tickets (You et al. 2020) and their unstructured
analogue: the distance between two masks, the detection rule, and the paper's structured channel masks.

- `distance(a, b, within)`: the fraction of positions (over every tensor the masks share) where they differ:
  0 for a mask and itself, 1 for a mask and its complement. `within`: count only the positions that mask
  keeps. IMP's next-round masks all lie inside the mask being trained, so the positions pruned before
  never differ; measured over all positions, two masks of a level at 7% density could differ in at most
  2.8% of them, and any threshold of 0.1 would call them settled at once. Within the trained mask the
  scale is the same at every level (two 20% rounds differ in at most 40% of the survivors).
- `distance_matrix(masks, within)`: every mask against every other; every distance the rule and the
  figures read is one of its entries.
- `settled_at(masks, threshold, window)`: the first index e >= window at which the newest mask is within
  `threshold` of each of the `window` masks before it (the paper keeps the last five masks, one an epoch,
  and draws the ticket when the newest is within 0.1 of the other four); None if it never settles.
  `settle_index(matrix, ...)` is the same rule read from a distance matrix, `window_distances(matrix, window)`
  the largest distance of each mask to the window before it (the rule fires where that is below threshold).
- `channel_masks(scales, ratio)`: the paper's structured masks: channels ranked by |batch-norm scale| over
  all layers together, the `ratio` of them with the smallest removed (the count rounded half up).
- `channel_pruning(model, channels)`: what training a channel mask takes: the weight mask that removes the
  rows (output filters) of the convolution feeding each batch-norm layer, and the masks that hold the
  removed channels' batch-norm scale and shift at zero (`loop.train(..., frozen=)`); a removed channel's
  output is then exactly zero, as if the filter were gone.
"""

from __future__ import annotations

import torch
from torch import nn

from .masks import Mask


def distance(a: Mask, b: Mask, within: Mask | None = None) -> float:
    """Fraction of positions where two masks of the same tensors differ (of the positions `within` keeps)."""
    if set(a) != set(b) or (within is not None and set(within) != set(a)):
        raise ValueError(f"masks over different tensors: {sorted(set(a) ^ set(b) ^ set(within or a))}")
    differ = sum(int((a[n] != b[n]).sum()) for n in a)
    total = sum(int(within[n].sum()) for n in a) if within is not None else sum(a[n].numel() for n in a)
    return differ / total if total else 0.0


def distance_matrix(masks: list[Mask], within: Mask | None = None) -> list[list[float]]:
    """Every mask's `distance` to every other (You et al.'s distance-matrix figure): symmetric, 0 on the
    diagonal; the count of positions is taken once."""
    if within is not None and any(set(within) != set(m) for m in masks):
        raise ValueError(f"masks over different tensors than within's: {sorted(within)}")
    names = list(masks[0]) if masks else []
    total = sum(int(within[n].sum()) for n in names) if within is not None else sum(masks[0][n].numel() for n in names)
    matrix = [[0.0] * len(masks) for _ in masks]
    for i in range(len(masks)):
        for j in range(i):
            if set(masks[i]) != set(masks[j]):
                raise ValueError(f"masks over different tensors: {sorted(set(masks[i]) ^ set(masks[j]))}")
            differ = sum(int((masks[i][n] != masks[j][n]).sum()) for n in names)
            matrix[i][j] = matrix[j][i] = differ / total if total else 0.0
    return matrix


def window_distances(matrix, window: int) -> list[float]:
    """For each mask from index `window` on, its largest distance to the `window` masks before it."""
    return [max(matrix[e][e - j] for j in range(1, window + 1)) for e in range(window, len(matrix))]


def settle_index(matrix, threshold: float = 0.1, window: int = 4) -> int | None:
    """Index of the first mask within `threshold` (strictly below) of each of the `window` before it."""
    return next((e + window for e, d in enumerate(window_distances(matrix, window)) if d < threshold), None)


def settled_at(masks: list[Mask], threshold: float = 0.1, window: int = 4, within: Mask | None = None) -> int | None:
    """Index of the first mask within `threshold` (strictly below) of each of the `window` masks before it
    (distances of the positions `within` keeps)."""
    return settle_index(distance_matrix(masks, within), threshold, window)


def rounded(matrix, digits: int = 5) -> list[list[float]]:
    """A distance matrix as a summary stores it (1e-5 is under one position of a LeNet-300-100 layer)."""
    return [[round(d, digits) for d in row] for row in matrix]


def channel_masks(scales: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Batch-norm layer name -> bool mask of its channels: the `ratio` of all channels with the smallest
    |scale| removed, ranked over all layers together (ties: the lower flat index survives)."""
    if not 0 <= ratio < 1:
        raise ValueError(f"ratio={ratio}: the fraction of channels removed must lie in [0, 1)")
    names = list(scales)
    flat = torch.cat([scales[n].detach().abs().flatten().cpu() for n in names])
    removed = int(ratio * len(flat) + 0.5)
    keep = torch.ones(len(flat), dtype=torch.bool)
    keep[torch.sort(flat, stable=True).indices[:removed]] = False
    out, start = {}, 0
    for n in names:
        size = scales[n].numel()
        out[n] = keep[start:start + size].view_as(scales[n])
        start += size
    return out


def channel_pruning(model: nn.Module, channels: dict[str, torch.Tensor]) -> tuple[Mask, dict[str, torch.Tensor]]:
    """(weight mask, frozen masks) that train `model` with the channels `channels` removes (batch-norm scale
    name, `<bn>.weight` -> bool per channel, as channel_masks gives). Each batch-norm layer's convolution is
    the one before it in the module order (conv -> bn in every batch-normalised net here, shortcuts too);
    its rows of removed channels are pruned, and the layer's scale and shift are held at zero."""
    mask, frozen, conv = Mask.ones_like(model), {}, None
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            conv = (name, module)
        elif isinstance(module, nn.BatchNorm2d) and f"{name}.weight" in channels:
            keep = channels[f"{name}.weight"].to(torch.bool).cpu()
            if conv is None or conv[1].out_channels != keep.numel() or f"{conv[0]}.weight" not in mask:
                raise ValueError(f"batch-norm layer '{name}' has no prunable convolution of {keep.numel()} "
                                 "filters before it: channel pruning needs conv -> batch norm")
            mask[f"{conv[0]}.weight"] = mask[f"{conv[0]}.weight"] & keep.view(-1, 1, 1, 1)
            frozen[f"{name}.weight"] = frozen[f"{name}.bias"] = keep
    missing = sorted(set(channels) - {n for n in frozen if n.endswith(".weight")})
    if missing:
        raise ValueError(f"channel masks name layers that are not batch-norm scales of this model: {missing}")
    return mask, frozen
