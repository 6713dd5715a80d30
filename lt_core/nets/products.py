"""The engine's matrix products on a CPU: large dense ones through oneDNN where it beats torch's BLAS, and
sparse ones in CSR order through embedding_bag (`ragged_mm`).

Why: torch sends fp32 matrix products to MKL, which on this AMD CPU runs its AVX2 code, about 210 GFLOP/s
for a 2048-square product, while oneDNN (also inside torch, the library behind its CPU convolutions) uses
AVX-512 and reaches about 470 (`python -m lt_core bench` measures both). oneDNN's product is reached
through `torch.ops.mkldnn._linear_pointwise`, the op torch's own compiler emits for CPU linear layers; it
reads ordinary strided tensors. It has a fixed cost of about 10 us a call, so products of fewer than
MIN_MACS multiply-adds stay in BLAS, where LeNet's 100- and 10-unit layers are faster. On a CPU without
AVX-512 (an AVX2 AMD EPYC, measured side by side) both libraries run AVX2 code: oneDNN is 5-7% slower on
LeNet's products (a 784 x 300 layer at batch 60) and 1.2-1.4x faster on the backward products of Conv-2's
16,384 x 256 layer, so there MIN_MACS is raised to keep only products that large.

The choice depends only on the shapes, on whether torch has oneDNN on an x86-64 CPU and on the vector
instructions torch detects (torch.backends.cpu.get_cpu_capability()), never on a timing, so one kind of
machine always computes the same sums. The results equal BLAS's up to summation order; the
engine's fast paths are tested against the plain path (which keeps torch's defaults) to a tolerance.
"""

from __future__ import annotations

import platform

import torch
import torch.nn.functional as F
from torch import nn

ONEDNN = (torch.backends.mkldnn.is_available() and platform.machine().lower() in ("x86_64", "amd64")
          and hasattr(torch.ops.mkldnn, "_linear_pointwise"))
AVX512 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")
# smaller products stay in BLAS (measured: with AVX-512, LeNet's fc2/fc3 products are faster there; with
# AVX2, every LeNet product is)
MIN_MACS = 4_000_000 if AVX512 else 100_000_000


def onednn_for(m: int, k: int, n: int, like: torch.Tensor) -> bool:
    """Whether an (m x k) @ (k x n) product of `like`'s device and dtype goes to oneDNN."""
    return ONEDNN and like.device.type == "cpu" and like.dtype == torch.float32 and m * k * n >= MIN_MACS


def onednn_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b through oneDNN, whatever the size (ONEDNN must be true)."""
    return torch.ops.mkldnn._linear_pointwise(a, b.t(), None, "none", [], "")


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b (2-D, no autograd)."""
    return onednn_mm(a, b) if onednn_for(a.shape[0], a.shape[1], b.shape[1], a) else a @ b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ weight^T + bias (2-D x, no autograd)."""
    if onednn_for(x.shape[0], x.shape[1], weight.shape[0], x):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)


def ragged_mm(cols: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """R @ x for a sparse R given in CSR order (column index and value of each entry, offset of each row's
    run) and a contiguous x: row i of the result is the sum of x's rows cols[j] scaled by values[j] over
    row i's entries, which is one embedding_bag call with x as the table. On this CPU it is 1.7-3x faster
    than torch's CSR product (MKL's sparse BLAS runs AVX2 code here, embedding_bag fbgemm's AVX-512 code),
    measured side by side. Used for packed layers (sparse.py) and for sparse inputs (sparse_input.py)."""
    return F.embedding_bag(cols, x, offsets, mode="sum", per_sample_weights=values)


class _Linear(torch.autograd.Function):
    """F.linear with its forward and backward products through `mm`/`linear`."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = mm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_w = mm(grad.t(), x) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


class Linear(nn.Linear):
    """nn.Linear (same parameters and state) that the engine can switch to `_Linear` with `fast = True`.
    Off by default, so that a model built for the reference loop or the plain path is torch's own."""

    fast = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast and x.dim() == 2:
            return _Linear.apply(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


def use_fast_linears(model: nn.Module, fast: bool) -> None:
    """Switch every `Linear` of a model to the oneDNN products (the engine on a CPU) or back."""
    for module in model.modules():
        if isinstance(module, Linear):
            module.fast = fast
