"""One training run of a masked network: the inner loop every figure is made of.

- Data lives on the device as normalised float tensors (prepared once per run); a batch is an index into
  them, drawn by a generator seeded with `data_seed` only, so a ticket and its controls see the same
  batches in the same order. Each epoch is a fresh permutation; the last partial batch of an epoch is
  dropped. CIFAR augmentation (random crop with 4 pixels of black padding, horizontal flip) is done on the
  whole batch with tensor ops.
- Pruned weights stay exactly zero: gradients are masked before each optimizer step (so Adam's moments and
  SGD's momentum for pruned weights stay zero, and so does their update, weight decay included). The
  autograd path also masks the weights again after the step, as popular implementations do; LeNet's fast
  path (sparse.py) skips that redundant pass.
- L1 regularisation (cfg.l1_penalty) adds l1_penalty * sign(w) to the prunable weights' gradients before
  they are masked; sign(0) = 0, so on the fast path, which does not mask after the step, pruned weights
  stay zero too. `scale_l1` adds the same to the batch-norm scales (network slimming's penalty, which
  Early-Bird ranks channels by; the channel search's bn_l1, lt_core/procedures/channel_search.py).
- Evaluation on validation and test happens at iteration 0, every `eval_every` iterations and at the end,
  in large batches with no gradient. Rows are (iteration, split, loss, accuracy).
- `keep_iterations=(k, ...)` returns a copy of the full state after each k steps, by k: theta_k for
  rewinding, and the starts of the dense network's twins (imp.py).
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..data import datasets
from ..nets import products
from ..sparsity.masks import Mask
from . import optim
from .fast import sparse, sparse_input

EVAL_CHUNK = 2000  # examples per evaluation batch of LeNet's fast path: large for its sparse products
# ...and of a conv net: small enough that a chunk's activations stay in cache. On one thread 10,000 CIFAR
# images evaluate about twice as fast in chunks of 128 as of 2,000 for Conv-2 and ResNet-20 (issue 15's
# finding; `python -m lt_core bench --cases conv2,resnet20` measures the two side by side:
# eval_ratio_chunk_vs_2000)
CONV_EVAL_CHUNK = 128


def uses_channels_last(model: nn.Module) -> bool:
    """Conv nets train in channels_last on the CPU (oneDNN's preferred layout; see lt_core/speed/bench.py)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def eval_chunk(model: nn.Module) -> int:
    """Examples per evaluation batch of a model on the autograd path (CONV_EVAL_CHUNK for conv nets)."""
    return CONV_EVAL_CHUNK if uses_channels_last(model) else EVAL_CHUNK


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda, but torch sees no CUDA device on this machine (no GPU, or no driver "
                          "for it); use device=cpu or device=auto")
    return torch.device(name)


def check_batches(cfg) -> None:
    """batch_size against the training examples the split leaves, from the data set's declared size (before
    any data are loaded: Batches says the same once they are)."""
    if cfg.dataset in datasets.DATASETS:
        n = datasets.DATASETS[cfg.dataset].n_train
        if cfg.val_size >= n:
            raise ConfigError(f"'val_size' is {cfg.val_size}; it must be below the {n} training images of "
                              f"{cfg.dataset}, which it splits into validation and training examples")
        _check_batch(cfg.batch_size, n - cfg.val_size)


def _check_batch(batch_size: int, n: int) -> None:
    if batch_size > n:
        raise ConfigError(f"'batch_size' is {batch_size}; it must be at most the {n} training examples "
                          "(the data set less val_size): an epoch holds no whole batch")


@dataclass
class DeviceData:
    """The three splits, normalised with the training split's statistics, on one device."""
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    black: torch.Tensor  # the normalised value of a 0 pixel, per channel: the padding of random crops
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # derived copies, made once per data

    @classmethod
    def prepare(cls, splits, device: torch.device) -> "DeviceData":
        mean = splits.mean.view(1, -1, 1, 1).to(device)
        std = splits.std.view(1, -1, 1, 1).to(device)
        norm = lambda x: ((x.to(device).float() / 255.0) - mean) / std
        return cls(norm(splits.x_train), splits.y_train.to(device), norm(splits.x_val), splits.y_val.to(device),
                   norm(splits.x_test), splits.y_test.to(device), (-mean / std).view(-1))

    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def feature_major(self, split: str, chunk: int) -> list[torch.Tensor]:
        """A split's inputs as contiguous (features x examples) chunks (sparse.FastMLP's evaluation layout),
        made on first use and kept: every unit of a run evaluates the same split thousands of times."""
        key = ("feature_major", split, chunk)
        if key not in self.cache:
            x = getattr(self, f"x_{split}")
            self.cache[key] = [x[s:s + chunk].flatten(1).t().contiguous() for s in range(0, len(x), chunk)]
        return self.cache[key]

    def feature_black(self) -> torch.Tensor:
        """The black value of every input feature (channel-major, as inputs are flattened)."""
        c, h, w = self.in_shape()
        return self.black.repeat_interleave(h * w)

    def input_density(self) -> float:
        """The fraction of training-input entries that are not black (MNIST: 0.19), computed once."""
        if "input_density" not in self.cache:
            x = self.x_train.flatten(1)
            self.cache["input_density"] = (x != self.feature_black()).sum().item() / x.numel() if len(x) else 1.0
        return self.cache["input_density"]

    def ragged(self, split: str, chunk: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """A split's inputs minus black as ragged (pixel, value, offset) chunks (sparse_input's evaluation
        layout), made on first use and kept."""
        key = ("ragged", split, chunk)
        if key not in self.cache:
            z = getattr(self, f"x_{split}").flatten(1) - self.feature_black()
            self.cache[key] = [sparse_input.ragged(z[s:s + chunk]) for s in range(0, len(z), chunk)]
        return self.cache[key]


class ExperimentData:
    """The DeviceData of each experiment a process trains, loaded once: experiments that agree on the data
    set, its split and the device share one copy (the in-process executor and each pool worker hold one)."""

    def __init__(self):
        self._loaded: dict[tuple, DeviceData] = {}

    def __call__(self, cfg) -> DeviceData:
        key = (cfg.dataset, cfg.val_size, cfg.split_seed, cfg.train_fraction, cfg.device)
        if key not in self._loaded:
            splits = datasets.load(cfg.dataset, val_size=cfg.val_size, split_seed=cfg.split_seed,
                                   train_fraction=cfg.train_fraction)
            self._loaded[key] = DeviceData.prepare(splits, resolve_device(cfg.device))
        return self._loaded[key]


class Batches:
    """An endless stream of batch indices: epoch permutations from one seeded generator."""

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device):
        _check_batch(batch_size, n)
        self.n, self.batch_size, self.device = n, batch_size, device
        self.generator = torch.Generator().manual_seed(seed)
        self.perm, self.pos = None, n

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size > self.n:
            self.perm = torch.randperm(self.n, generator=self.generator).to(self.device)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx


def augment(x: torch.Tensor, black: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 32x32 crop of the 4-pixel padded batch and a random horizontal flip, per example."""
    b, c, h, w = x.shape
    padded = black.view(1, c, 1, 1).expand(b, c, h + 8, w + 8).clone()
    padded[:, :, 4:4 + h, 4:4 + w] = x
    dy, dx, flip = (t.to(x.device) for t in augment_draws(b, generator))
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    return padded[torch.arange(b, device=x.device)[:, None, None, None], torch.arange(c, device=x.device)[None, :, None, None], rows, cols]


def augment_draws(b: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random numbers one augmented batch of b examples draws (offsets and flips): in one place, so that
    a run started at step k can draw the first k batches' numbers without making the batches."""
    dy = torch.randint(0, 9, (b,), generator=generator)
    dx = torch.randint(0, 9, (b,), generator=generator)
    return dy, dx, torch.rand(b, generator=generator) < 0.5


def cosine_lr(lr: float, step: int, iterations: int) -> float:
    """The learning rate of step `step` (0-based) of `iterations` under a cosine schedule from lr to 0."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * step / iterations))


def lr_at(cfg, step: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then step drops, or (lr_schedule
    cosine) a cosine from lr to 0 over the steps after the warmup."""
    lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup_iterations) if cfg.warmup_iterations else cfg.lr
    if cfg.lr_schedule == "cosine":
        return cosine_lr(lr, max(0, step - cfg.warmup_iterations), max(1, cfg.iterations - cfg.warmup_iterations))
    return lr * cfg.lr_drop_factor ** sum(step >= d for d in cfg.lr_drops)


def make_optimizer(params: list[torch.Tensor], cfg, *, lean: bool = True):
    """Adam or SGD with momentum as fused kernels (one pass over all parameters: 3x faster than torch's
    per-tensor loop on a CPU), called without torch.optim's per-step bookkeeping if lean (lt_core/training/optim.py)."""
    return optim.make(params, cfg.optimizer, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                      lean=lean)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int | None = None) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over a whole split, in batches of `chunk` (default: eval_chunk)."""
    if len(y) == 0:
        return float("nan"), float("nan")
    was_training = model.training
    model.eval()
    loss, correct = torch.zeros((), device=x.device), torch.zeros((), device=x.device, dtype=torch.long)
    chunk = chunk or eval_chunk(model)
    for start in range(0, len(y), chunk):
        logits = model(x[start:start + chunk])
        target = y[start:start + chunk]
        loss += F.cross_entropy(logits, target, reduction="sum")
        correct += (logits.argmax(1) == target).sum()
    model.train(was_training)
    return loss.item() / len(y), correct.item() / len(y)


def placed(model: nn.Module, mask: Mask, data: DeviceData, *, plain: bool = False):
    """Put `model` on the data's device under `mask`, in the form train() computes with: LeNet's fast sparse
    path (the FastMLP returned), or the autograd path with the CPU's fast linears and, for conv nets,
    channels_last (None returned). An evaluation that must give train()'s numbers bit for bit (the
    interpolation's ends, lt_core/training/interpolation.py) places its model the same way."""
    device = data.x_train.device
    mask.check_fits(model)
    model.to(device)
    mask.apply(model)
    fast = sparse.FastMLP(model, mask, device, data) if (not plain and sparse.wanted(model, device)) else None
    products.use_fast_linears(model, not plain and device.type == "cpu")  # the plain path: torch's own
    if fast is None and not plain and device.type == "cpu" and uses_channels_last(model):
        model.to(memory_format=torch.channels_last)
    return fast


def measured(model: nn.Module, fast, data: DeviceData, split: str) -> tuple[float, float]:
    """(loss, accuracy) on a split, by the path `placed` chose."""
    if fast:
        return fast.evaluate(data, split, EVAL_CHUNK)
    return evaluate(model, getattr(data, f"x_{split}"), getattr(data, f"y_{split}"))


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def streams(cfg, n: int, data_seed: int, device: torch.device, start_iteration: int = 0):
    """A network's batches and augmentation generator, advanced past the first `start_iteration` steps'
    draws: step s then gets the uninterrupted run's batch s (late resetting continues the schedule)."""
    batches, generator = Batches(n, cfg.batch_size, data_seed, device), torch.Generator().manual_seed(data_seed + 1)
    for _ in range(start_iteration):
        batches.next()
        if cfg.augment:
            augment_draws(cfg.batch_size, generator)
    return batches, generator


def measures_test(cfg, step: int, improved: bool, n_val: int) -> bool:
    """Whether an evaluation at `step` measures the test split too. The early stop is the first iteration of
    minimum validation loss (imp.early_stop), so the test split is needed only where the validation loss is
    strictly below all before it, and at the end; cfg.test_curves=False evaluates it only there (for a conv
    net, half the cost of training again)."""
    return cfg.test_curves or improved or step == cfg.iterations or not n_val


@dataclass
class RunResult:
    rows: list[tuple[int, str, float, float]]
    final_state: dict[str, torch.Tensor]
    kept_states: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)  # keep_iterations'


def train(model: nn.Module, mask: Mask, data: DeviceData, cfg, *, data_seed: int,
          keep_iterations: tuple[int, ...] = (), on_step=None, plain: bool = False, watch=None,
          scale_l1: float = 0.0, frozen: dict[str, torch.Tensor] | None = None,
          start_iteration: int = 0) -> RunResult:
    """Train `model` (already initialised) under `mask` for cfg.iterations steps; see the module docstring.
    plain=True takes the plain autograd path everywhere: the reference the fast paths are tested against.
    watch=(every, fn) calls fn(iteration, state) with a CPU copy of the full state every `every` steps and
    at the end (Early-Bird mask trajectories); it reads the weights and changes nothing. scale_l1 > 0 adds
    an L1 penalty on the batch-norm scales (the channel search's bn_l1). frozen: parameter name -> bool mask
    for parameters outside `mask` (batch-norm scales and shifts: early_bird.channel_pruning), held at zero
    where False as pruned weights are. start_iteration=k trains steps k..iterations-1 only, each with the
    learning rate and the batch (augmentation draws included) the uninterrupted run has at that step: the
    papers' late resetting, which continues the schedule from k. Dropout's draws are not replayed (they
    come from the global generator): with dropout, steps from k see other dropout masks than from 0."""
    device = data.x_train.device
    if not 0 <= start_iteration <= cfg.iterations:
        raise ValueError(f"start_iteration {start_iteration} lies outside 0..iterations ({cfg.iterations})")
    if frozen and not plain and sparse.wanted(model, device):
        raise ValueError("frozen masks are for batch-normalised conv nets; this model takes the fast MLP path")
    fast = placed(model, mask, data, plain=plain)
    # all-ones masks are skipped: multiplying by 1 changes nothing, and it is two passes over the weights
    masked = [(model.get_parameter(n), m) for n, m in mask.as_floats(device).items() if not bool(mask[n].all())]
    held = [(model.get_parameter(n), m.to(device=device, dtype=torch.float32).view_as(model.get_parameter(n)))
            for n, m in (frozen or {}).items() if not bool(m.all())]
    with torch.no_grad():
        for p, m in held:  # zero from the start, as mask.apply made the pruned weights
            p.mul_(m)
    masked += held
    optimizer = make_optimizer(fast.params() if fast else list(model.parameters()), cfg, lean=not plain)
    l1 = ([layer.weight for layer in fast.layers] if fast else [model.get_parameter(n) for n in mask]) \
        if cfg.l1_penalty else []
    bn = [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)] if scale_l1 else []
    batches, aug_generator = streams(cfg, len(data.y_train), data_seed, device, start_iteration)
    torch.manual_seed(data_seed)  # dropout draws from the global generator

    rows: list[tuple[int, str, float, float]] = []

    best_val = [math.inf]

    def measure(split: str) -> tuple[float, float]:
        return measured(model, fast, data, split)

    def log(step: int) -> None:
        improved = False
        if len(data.y_val):
            loss, acc = measure("val")
            rows.append((step, "val", loss, acc))
            improved = loss < best_val[0]
            best_val[0] = min(best_val[0], loss)
            if improved and cfg.train_accuracy:  # the early stop's weights, for its train accuracy at the end
                best[:] = [step, snapshot()]
        if len(data.y_test) and measures_test(cfg, step, improved, len(data.y_val)):
            rows.append((step, "test", *measure("test")))

    def snapshot() -> dict[str, torch.Tensor]:
        if fast:
            fast.write_back()
        return state_copy(model)

    best: list = []  # [iteration, state] of the newest validation minimum (cfg.train_accuracy only)
    kept_states = {start_iteration: snapshot()} if start_iteration in keep_iterations else {}
    log(start_iteration)
    model.train()
    current_lr = None
    for step in range(start_iteration, cfg.iterations):
        lr = lr_at(cfg, step)
        if lr != current_lr:
            for group in optimizer.param_groups:
                group["lr"] = lr
            current_lr = lr
        idx = batches.next()
        x, y = data.x_train.index_select(0, idx), data.y_train.index_select(0, idx)  # 4x faster than x[idx]
        if cfg.augment:
            x = augment(x, data.black, aug_generator)
        if fast:
            fast.grads(x, y)
            if l1:  # not even a call per step when there is no L1 (LeNet's sparse steps are ~1 ms)
                _add_l1(l1, cfg.l1_penalty)
            optimizer.step()
        else:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            with torch.no_grad():
                if l1:
                    _add_l1(l1, cfg.l1_penalty)
                if bn:
                    _add_l1(bn, scale_l1)
                for p, m in masked:
                    p.grad.mul_(m)
                optimizer.step()
                for p, m in masked:
                    p.mul_(m)
        done = step + 1
        if done in keep_iterations:
            kept_states[done] = snapshot()
        if watch is not None and (done % watch[0] == 0 or done == cfg.iterations):
            watch[1](done, snapshot())
        if done % cfg.eval_every == 0 or done == cfg.iterations:
            log(done)
        if on_step is not None:
            on_step(done)
    final = snapshot()
    if cfg.train_accuracy:
        rows += train_rows(model, data, ([best] if best else []) + [[cfg.iterations, final]])
    return RunResult(rows, final, kept_states)


@torch.no_grad()
def _add_l1(weights: list[torch.Tensor], penalty: float) -> None:
    """The gradient of penalty * sum |w|, added in place (sign(0) = 0: a pruned weight gets none)."""
    for w in weights:
        w.grad.add_(w.detach().sign(), alpha=penalty)


def train_rows(model: nn.Module, data: DeviceData, states) -> list[tuple[int, str, float, float]]:
    """The training split's (iteration, "train", loss, accuracy) for each [iteration, state]; the model is
    left holding the last state. One plain evaluation per state: 45,000 CIFAR images cost a few test
    evaluations, so they are made where the figures read them, not at every evaluation."""
    out = []
    for iteration, state in states:
        model.load_state_dict(state)
        out.append((iteration, "train", *evaluate(model, data.x_train, data.y_train)))
    return out
