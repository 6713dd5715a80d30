"""Several networks of one architecture and schedule trained as one computation (`run --stack N`, for a GPU).

Why: on a GPU one LeNet-300-100 step at batch 60 is microseconds of arithmetic behind dozens of kernel
launches, so the device idles. N networks whose parameters are stacked along a new leading axis take the
launches of one: `torch.func.vmap` over `functional_call` turns each linear layer into one batched product
and each convolution into one grouped convolution. On a 2-core CPU the engine's own paths are faster
(`bench --cases batched`: 0.47x for LeNet-300-100), so stacking is an option of the run, never its default.

What a stacked network keeps of `loop.train`, so that each stores what it would have stored alone:
- its own batches and augmentation draws (its `data_seed`), and its start iteration's place in them;
- the learning rate of every step; gradients masked before the step and weights after it, so pruned weights
  stay exactly zero; Adam and SGD are elementwise, so the stacked optimizer is N optimizers (one step
  counter: all start together); cfg.l1_penalty on the prunable weights;
- its rows: validation at every evaluation, the test split where its own validation loss is a new minimum,
  at the end, or always with test_curves (the test split is evaluated for all N when any one wants it and
  kept only where train() would have kept it); `keep_iterations` states.
Batch norm stacks too: its running statistics are stacked buffers that each training step updates network by
network, and evaluation reads them. What cannot be stacked trains alone (`refusal` says why): dropout (its
draws come from one global stream), cfg.train_accuracy, and anything of train()'s keywords beyond these.
The numbers equal separate runs of the plain path up to summation order (tests/test_stacked.py).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ..sparsity.masks import Mask
from . import loop
from .loop import DeviceData, RunResult, augment, eval_chunk, lr_at, make_optimizer


def refusal(model: nn.Module, cfg) -> str | None:
    """Why `model` under `cfg` cannot be trained in a stack (None: it can)."""
    if cfg.dropout or any(isinstance(m, nn.Dropout) and m.p for m in model.modules()):
        return "dropout draws from one global random stream"
    if cfg.train_accuracy:
        return "train_accuracy keeps the early stop's weights"
    return None


class _Stack:
    """N models' parameters stacked (name -> (N, ...)), their masks, and the batched forward pass."""

    def __init__(self, models: list[nn.Module], masks: list[Mask], device: torch.device):
        if len(models) != len(masks) or not models:
            raise ValueError(f"need one mask per model; got {len(models)} models and {len(masks)} masks")
        for model, mask in zip(models, masks):
            mask.check_fits(model)
            model.to(device)
            mask.apply(model)
        self.n, self.names = len(models), list(models[0].state_dict())
        # parameters: leaves that require grad; buffers (batch norm's running statistics), which a training
        # forward pass updates in place, network by network, as it would each network's own
        self.params, self.buffers = stack_module_state(models)
        self.masks = {}  # name -> float (N, ...) where some network prunes the tensor
        for name in masks[0]:
            m = torch.stack([mask[name] for mask in masks]).to(device)
            if not bool(m.all()):
                self.masks[name] = m.float()
        self.prunable = list(masks[0])
        training, evaluating = copy.deepcopy(models[0]).to("meta").train(), copy.deepcopy(models[0]).to("meta").eval()
        self._train = vmap(lambda p, b, x: functional_call(training, (p, b), (x,)), in_dims=(0, 0, 0))
        self._eval = vmap(lambda p, b, x: functional_call(evaluating, (p, b), (x,)), in_dims=(0, 0, None))
        self.chunk = eval_chunk(models[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, batch, classes): network i on its own batch x[i], in training mode."""
        return self._train(self.params, self.buffers, x)

    def state(self, k: int) -> dict[str, torch.Tensor]:
        state = {**self.params, **self.buffers}
        return {name: state[name][k].detach().to("cpu", copy=True) for name in self.names}

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> list[tuple[float, float]]:
        """Per network (mean cross-entropy, accuracy) over a split, as loop.evaluate computes it."""
        if len(y) == 0:
            return [(float("nan"), float("nan"))] * self.n
        loss = torch.zeros(self.n, device=x.device)
        correct = torch.zeros(self.n, device=x.device, dtype=torch.long)
        for start in range(0, len(y), self.chunk):
            logits, target = self._eval(self.params, self.buffers, x[start:start + self.chunk]), y[start:start + self.chunk]
            loss += F.cross_entropy(logits.transpose(1, 2), target.expand(self.n, -1), reduction="none").sum(1)
            correct += (logits.argmax(2) == target).sum(1)
        return [(l / len(y), c / len(y)) for l, c in zip(loss.tolist(), correct.tolist())]


def train_stacked(models: list[nn.Module], masks: list[Mask], data: DeviceData, cfg, *, data_seeds: list[int],
                  start_iteration: int = 0, keep_iterations: tuple[int, ...] = (), on_step=None) -> list[RunResult]:
    """Train N initialised models under their masks together, network i on the batches of data_seeds[i],
    steps start_iteration..cfg.iterations-1; one RunResult per network, as loop.train returns it."""
    for model in models:
        why = refusal(model, cfg)
        if why:
            raise ValueError(f"this network cannot be trained in a stack: {why}; train it alone (stack 1)")
    if len(data_seeds) != len(models):
        raise ValueError(f"need one data seed per model; got {len(data_seeds)} for {len(models)} models")
    if not 0 <= start_iteration <= cfg.iterations:
        raise ValueError(f"start_iteration {start_iteration} lies outside 0..iterations ({cfg.iterations})")
    device = data.x_train.device
    net = _Stack(models, masks, device)
    optimizer = make_optimizer(list(net.params.values()), cfg)
    l1 = [net.params[name] for name in net.prunable] if cfg.l1_penalty else []
    # per network: its batches and augmentation draws, advanced to the start as train() advances them
    streams = [loop.streams(cfg, len(data.y_train), seed, device, start_iteration) for seed in data_seeds]
    rows: list[list[tuple[int, str, float, float]]] = [[] for _ in models]
    best_val = [math.inf] * net.n

    def log(step: int) -> None:
        improved = [False] * net.n
        if len(data.y_val):
            for k, (loss, acc) in enumerate(net.evaluate(data.x_val, data.y_val)):
                rows[k].append((step, "val", loss, acc))
                improved[k], best_val[k] = loss < best_val[k], min(best_val[k], loss)
        wanted = [loop.measures_test(cfg, step, better, len(data.y_val)) for better in improved]
        if len(data.y_test) and any(wanted):
            for k, (loss, acc) in enumerate(net.evaluate(data.x_test, data.y_test)):
                if wanted[k]:
                    rows[k].append((step, "test", loss, acc))

    kept: list[dict] = [{} for _ in models]

    def keep(step: int) -> None:
        for k in range(net.n):
            kept[k][step] = net.state(k)

    if start_iteration in keep_iterations:
        keep(start_iteration)
    log(start_iteration)
    current_lr = None
    for step in range(start_iteration, cfg.iterations):
        lr = lr_at(cfg, step)
        if lr != current_lr:
            optimizer.param_groups[0]["lr"] = current_lr = lr
        idx = torch.cat([batches.next() for batches, _ in streams])  # one gather for all N batches
        x = data.x_train.index_select(0, idx).view(net.n, cfg.batch_size, *data.x_train.shape[1:])
        y = data.y_train.index_select(0, idx).view(net.n, cfg.batch_size)
        if cfg.augment:
            x = torch.stack([augment(x[k], data.black, generator) for k, (_, generator) in enumerate(streams)])
        logits = net.forward(x)
        # the sum of the N mean losses: the parameters are disjoint, so each network gets its own gradient
        loss = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for w in l1:
                w.grad.add_(w.detach().sign(), alpha=cfg.l1_penalty)
            for name, m in net.masks.items():
                net.params[name].grad.mul_(m)
            optimizer.step()
            for name, m in net.masks.items():
                net.params[name].mul_(m)  # weight decay must not revive pruned weights
        done = step + 1
        if done in keep_iterations:
            keep(done)
        if done % cfg.eval_every == 0 or done == cfg.iterations:
            log(done)
        if on_step is not None:
            for _ in range(net.n):  # the progress bar counts each network's steps
                on_step(done)
    return [RunResult(rows[k], net.state(k), kept[k]) for k in range(net.n)]
