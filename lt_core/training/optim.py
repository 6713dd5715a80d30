"""Adam and SGD with momentum as one fused kernel call per step, without torch.optim's per-step bookkeeping.

Why: `torch.optim.Adam(fused=True)` wraps each kernel call in Python bookkeeping (grouping tensors by
device and dtype, hooks, state lookups). Timed side by side, skipping it makes a sparse LeNet level 2-4%
faster and a dense one no faster (the profiler, which adds its own cost to every Python frame, had put
it at a fifth of a sparse step). These classes keep their state in flat lists made once and call the same
kernels torch.optim calls (`torch._fused_adam_`, `torch._fused_sgd_`) with the same arguments, so the
numbers are bit for bit torch.optim's (tests/test_speed_paths.py compares them). `make` falls back to
torch.optim where the kernels are missing or the tensors do not qualify.

Interface: the part of torch.optim.Optimizer the engine uses: `param_groups[0]["lr"]`, `step()`,
`zero_grad(set_to_none=True)`. Every parameter must have a gradient at every step (true for the engine).
"""

from __future__ import annotations

import torch


class _Lean:
    def __init__(self, params: list[torch.Tensor], lr: float):
        self.params = list(params)
        self.param_groups = [{"params": self.params, "lr": lr}]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def grads(self) -> list[torch.Tensor]:
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            raise RuntimeError("a parameter has no gradient: the lean optimizers need one for every parameter")
        return grads


class FusedAdam(_Lean):
    """torch.optim.Adam(fused=True, amsgrad=False, maximize=False), L2 weight decay (not decoupled)."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        with torch.no_grad():
            self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
            self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        # torch.optim keeps the step count as a float32 tensor per parameter; every parameter steps together
        # here, so one tensor (the kernel only reads it) stands for all: one increment a step instead of one
        # per parameter (measured on an AVX2 EPYC: 3 us against 14-20, 2-3% of the sparsest LeNet step)
        self.step_count = torch.zeros((), dtype=torch.float32, device=self.params[0].device)
        self.steps = [self.step_count] * len(self.params)

    @torch.no_grad()
    def step(self) -> None:
        grads = self.grads()
        self.step_count.add_(1)
        torch._fused_adam_(self.params, grads, self.exp_avgs, self.exp_avg_sqs, [], self.steps,
                           amsgrad=False, lr=self.param_groups[0]["lr"], beta1=self.betas[0], beta2=self.betas[1],
                           weight_decay=self.weight_decay, eps=self.eps, maximize=False,
                           grad_scale=None, found_inf=None)


class FusedSGD(_Lean):
    """torch.optim.SGD(fused=True, momentum > 0, dampening=0, nesterov=False, maximize=False)."""

    def __init__(self, params, lr: float, momentum: float, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.momentum, self.weight_decay = momentum, weight_decay
        with torch.no_grad():
            self.buffers = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.first = True  # the kernel sets buffer = gradient on the first step, as torch.optim does

    @torch.no_grad()
    def step(self) -> None:
        torch._fused_sgd_(self.params, self.grads(), self.buffers, weight_decay=self.weight_decay,
                          momentum=self.momentum, lr=self.param_groups[0]["lr"], dampening=0.0, nesterov=False,
                          maximize=False, is_first_step=self.first, grad_scale=None, found_inf=None)
        self.first = False


def make(params: list[torch.Tensor], optimizer: str, *, lr: float, momentum: float = 0.0,
         weight_decay: float = 0.0, lean: bool = True):
    """The optimizer the engine trains with: lean fused where possible, else torch.optim (fused if it can)."""
    params = list(params)
    fusable = all(p.dtype == torch.float32 for p in params) and params[0].device.type in ("cpu", "cuda")
    if optimizer == "adam":
        if lean and fusable and hasattr(torch, "_fused_adam_"):
            return FusedAdam(params, lr, weight_decay=weight_decay)
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fusable)
    if lean and fusable and momentum > 0 and hasattr(torch, "_fused_sgd_"):
        return FusedSGD(params, lr, momentum, weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fusable)
