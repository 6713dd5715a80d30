"""Stability of training, as pure functions of trained weights (Frankle et al. 2019 and 2020).

- Stability to pruning (Stabilizing the LTH): how far a subnetwork trained alone ends from the weights the
  same coordinates reach inside the trained full network: the L2 distance over the mask's survivors.
- Stability to SGD noise (Linear Mode Connectivity): two copies trained from the same W_k with other data
  orders; the error along the straight line between their final weights, at evenly spaced alpha; the
  barrier is the highest error on that line less the mean of the two ends' errors (near 0: one linearly
  connected minimum; the paper calls a network stable below 2 points).
"""

from __future__ import annotations

import torch

from .masks import Mask


def alphas(points: int) -> list[float]:
    """`points` evenly spaced interpolation weights from 0 (the first copy) to 1 (the second), ends included."""
    if points < 2:
        raise ValueError(f"an interpolation path needs at least its two ends; got {points} points")
    return [i / (points - 1) for i in range(points)]


def interpolate(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """(1 - alpha) a + alpha b for every floating tensor of two state dicts of one architecture; integer
    buffers (batch norm's step counts) are a's. alpha 0 and 1 give a and b themselves, bit for bit."""
    if a.keys() != b.keys():
        raise ValueError(f"the two states differ in their tensors: {sorted(set(a) ^ set(b))[:4]}")
    out = {}
    for name, x in a.items():
        y = b[name]
        if not x.is_floating_point() or alpha == 0:
            out[name] = x.clone()
        elif alpha == 1:
            out[name] = y.clone()
        else:
            out[name] = torch.lerp(x, y.to(x.dtype), alpha)
    return out


def barrier(errors: list[float]) -> float:
    """The error barrier of a path's errors (ends first and last): max minus the mean of the two ends."""
    return max(errors) - (errors[0] + errors[-1]) / 2


def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], mask: Mask) -> float:
    """The L2 distance between two sets of weights over the mask's surviving coordinates (the tensors the
    mask names; 0 for identical weights)."""
    total = torch.zeros((), dtype=torch.float64)
    for name, keep in mask.items():
        diff = (a[name].double() - b[name].double())[keep]
        total += diff.pow(2).sum()
    return total.sqrt().item()


def norm(a: dict[str, torch.Tensor], mask: Mask) -> float:
    """The L2 norm of the weights over the mask's survivors: the scale a distance is read against."""
    return distance(a, {n: torch.zeros_like(a[n]) for n in mask}, mask)
