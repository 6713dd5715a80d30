"""What the libraries' kernels allow: the matrix products and convolutions of one training step, timed alone.

Why: the bench's targets are ratios against a reference loop and fractions of a 2048-square product's rate.
A training step's products have other shapes (a batch of 60), at which the same libraries (MKL, oneDNN) run
slower, and any loop built on those kernels spends at least their time per step. Timed in the same run as
the loops, that time says how much of a missed target is the engine's and how much the kernels': a target
above the kernels' own bound cannot be met by removing overhead, only by doing less arithmetic or by
faster kernels.

`step_kernels` finds a model's layers and their input shapes from one forward pass (hooks, no hand-written
shape list), then times, per step: every layer's forward product or convolution, its weight gradient, and
its input gradient unless it is the first layer (whose input needs none), through the ops the engine
calls: `products.linear`/`products.mm` for linear layers, oneDNN's convolution and convolution backward
(in channels_last, the engine's CPU layout) for convolutions. Bias adds, activations, pooling, the loss
and the optimizer are left out, so the bound is generous.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from ..nets import products


def _layers(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor, torch.Size]]:
    """(layer, a copy of its input, its output's shape) for every Linear and Conv2d, in the order the
    forward pass meets them."""
    seen: list[tuple[nn.Module, torch.Tensor, torch.Size]] = []
    hooks = [m.register_forward_hook(lambda m, inputs, out: seen.append((m, inputs[0].detach().clone(), out.shape)))
             for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _linear_kernels(layer: nn.Linear, x: torch.Tensor, g: torch.Tensor, first: bool) -> list:
    w, x = layer.weight.detach(), x.flatten(1)
    calls = [lambda: products.linear(x, w), lambda: products.mm(g.t(), x)]  # forward, weight gradient
    if not first:
        calls.append(lambda: products.mm(g, w))                                # input gradient
    return calls


def _conv_kernels(layer: nn.Conv2d, x: torch.Tensor, g: torch.Tensor, first: bool) -> list:
    cl = torch.channels_last
    w, x, g = (t.contiguous(memory_format=cl) for t in (layer.weight.detach(), x, g))
    mask = [not first, True, False]  # input gradient (not for the first layer), weight gradient
    backward = lambda: torch.ops.aten.convolution_backward(
        g, x, w, None, list(layer.stride), list(layer.padding), list(layer.dilation), False, [0, 0],
        layer.groups, mask)
    return [lambda: F.conv2d(x, w, None, layer.stride, layer.padding, layer.dilation, layer.groups), backward]


def step_kernels(model: nn.Module, x: torch.Tensor) -> list:
    """The kernel calls of one training step of `model` on the batch `x` (see the module docstring)."""
    calls = []
    for i, (layer, inputs, out_shape) in enumerate(_layers(model, x)):
        make = _conv_kernels if isinstance(layer, nn.Conv2d) else _linear_kernels
        calls += make(layer, inputs, torch.randn(out_shape), first=i == 0)  # g: a gradient of the output
    return calls


def seconds(calls: list, steps: int) -> float:
    """Seconds for `steps` passes over `calls` (one step's kernels each), after one untimed pass that lets
    the libraries set up their kernels."""
    for call in calls:
        call()
    start = time.perf_counter()
    for _ in range(steps):
        for call in calls:
            call()
    return time.perf_counter() - start
