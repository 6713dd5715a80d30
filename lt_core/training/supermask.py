"""Edge-popup (Ramanujan et al. 2020): learn which weights of a randomly initialised network to keep, never
the weights themselves.

Every prunable weight tensor w gets a score tensor s of its shape. The forward pass uses w * m, where m keeps
the top-k fraction of the layer's weights by |s| (exactly round(k x n) of them, first and last layers
included, as the paper's main experiments do); the backward pass sends the gradient of w * m straight
through the top-k to |s|: dL/ds = dL/d(w * m) * w * sign(s) (`TopK.backward`, then abs). The weights and biases stay
at their initialisation bit for bit; only the scores are optimised, by SGD with momentum and weight decay
under a cosine schedule as the official configurations do.

The top-k is a selection per layer (the threshold by partition, `topk` only on ties), not a sort.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..sparsity.masks import Mask
from .loop import Batches, DeviceData, augment, cosine_lr, evaluate, uses_channels_last


def kept(n: int, keep: float) -> int:
    """How many of a layer's n weights a fraction `keep` keeps (at least one)."""
    return max(1, min(n, int(round(keep * n))))


def top_k_mask(scores: torch.Tensor, keep: float) -> torch.Tensor:
    """A 0/1 tensor of the scores' shape, 1 at the kept(n, keep) entries of largest |score|.

    By selection, not sorting: the (n - k)-th smallest |score| is the threshold (numpy's partition on a CPU,
    kthvalue elsewhere), and the entries above it are kept; only when ties at the threshold would keep another count does it fall back to topk."""
    flat = scores.detach().abs().flatten()
    n, k = flat.numel(), kept(flat.numel(), keep)
    if k == n:
        return torch.ones_like(scores)
    if flat.device.type == "cpu":  # numpy's introselect: 0.3 ms for LeNet's 235,200 scores, torch's 3.4 ms
        threshold = float(np.partition(flat.numpy(), n - k - 1)[n - k - 1])
    else:
        threshold = flat.kthvalue(n - k).values
    mask = (flat > threshold).to(flat.dtype)
    if int(mask.sum()) != k:  # ties at the threshold
        mask = torch.zeros_like(flat)
        mask[torch.topk(flat, k, sorted=False).indices] = 1.0
    return mask.view_as(scores)


class TopK(torch.autograd.Function):
    """The mask of the top-k |scores| forward; the identity backward (the straight-through estimator)."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, keep: float) -> torch.Tensor:
        return top_k_mask(scores, keep)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class Supermask(nn.Module):
    """`model` seen through the masks of its scores: forward uses weight * TopK(score) for every prunable
    weight; the model's own parameters are frozen (requires_grad off) and never written."""

    def __init__(self, model: nn.Module, keep: float, generator: torch.Generator):
        super().__init__()
        self.model, self.keep = model, keep
        for p in model.parameters():
            p.requires_grad_(False)
        self.names = list(model.prunable)
        # the official code draws scores with kaiming_uniform(a=sqrt(5)): bound 1/sqrt(fan_in)
        self.scores = nn.ParameterList()
        for name in self.names:
            w = model.get_parameter(name)
            bound = 1.0 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(w)[0])
            self.scores.append(nn.Parameter(torch.empty_like(w).uniform_(-bound, bound, generator=generator)))

    def masked_weights(self) -> dict[str, torch.Tensor]:
        # top-k of |s| as the official code ranks them: the gradient reaches s through abs, times sign(s)
        # (without it, a negative score's update would move its magnitude the wrong way)
        return {name: self.model.get_parameter(name) * TopK.apply(s.abs(), self.keep)
                for name, s in zip(self.names, self.scores)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, self.masked_weights(), (x,), strict=False)

    def mask(self) -> Mask:
        return Mask({name: top_k_mask(s, self.keep).bool().cpu() for name, s in zip(self.names, self.scores)})


@dataclass
class SupermaskResult:
    rows: list[tuple[int, str, float, float]]
    mask: Mask
    seconds: float


def train(model: nn.Module, keep: float, data: DeviceData, cfg, *, data_seed: int, score_seed: int,
          on_step=None, cosine: bool = True) -> SupermaskResult:
    """Learn the scores of `model` (initialised, never changed) for cfg.iterations steps at batch
    cfg.batch_size: SGD (momentum, weight decay on the scores) at cfg.lr, cosine-annealed if `cosine`.
    CIFAR inputs are augmented (crop, flip) when cfg.augment. Evaluates the validation split every
    cfg.eval_every steps, and the test split with it, or (cfg.test_curves False) only at the end and at the
    validation minimum, from the scores kept there: the same numbers, for a conv net at a third of the
    evaluation cost. Returns the rows, the final mask, seconds."""
    device = data.x_train.device
    net = Supermask(model.to(device), keep, torch.Generator().manual_seed(score_seed)).to(device)
    if device.type == "cpu" and uses_channels_last(model):
        # oneDNN's layout: Conv-2 steps 1.34x faster (1.8 -> 2.4 a second, one thread); converted after the
        # scores are drawn, so they are the same numbers on every device, only laid out differently
        net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.scores.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    batches = Batches(len(data.y_train), cfg.batch_size, data_seed, device)
    aug_generator = torch.Generator().manual_seed(data_seed + 1)  # as the engine's loop: the same crops and flips
    torch.manual_seed(data_seed)  # dropout draws from the global generator
    rows: list[tuple[int, str, float, float]] = []
    best = {"loss": math.inf, "iteration": None, "scores": None}  # the validation minimum (test_curves off)

    def evaluated(split: str, step: int) -> None:
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if len(y):
            rows.append((step, split, *evaluate(net, x, y)))  # the engine's evaluation, through the masks

    def log(step: int) -> None:
        evaluated("val", step)
        if cfg.test_curves or not len(data.y_val):
            evaluated("test", step)
        elif rows[-1][2] < best["loss"]:
            best.update(loss=rows[-1][2], iteration=step, scores=[s.detach().clone() for s in net.scores])

    started = time.perf_counter()
    log(0)
    net.train()
    for step in range(cfg.iterations):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(cfg.lr, step, cfg.iterations) if cosine else cfg.lr
        idx = batches.next()
        x, y = data.x_train.index_select(0, idx), data.y_train.index_select(0, idx)
        if cfg.augment:  # the paper's CIFAR-10 recipe: random crop (padding 4) and horizontal flip
            x = augment(x, data.black, aug_generator)
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.iterations:
            log(done)
        if on_step is not None:
            on_step(done)
    final = net.mask()
    if not cfg.test_curves and len(data.y_val):
        evaluated("test", cfg.iterations)
        if best["iteration"] != cfg.iterations:  # the validation minimum's mask, from its kept scores
            with torch.no_grad():
                for s, kept_scores in zip(net.scores, best["scores"]):
                    s.copy_(kept_scores)
            evaluated("test", best["iteration"])
        rows.sort(key=lambda row: (row[0], row[1] != "val"))  # in iteration order, val before test
    return SupermaskResult(rows, final, time.perf_counter() - started)
