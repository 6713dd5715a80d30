"""Several LeNet-300-100s that share a schedule trained as one batched computation (measured, not the default).

A ticket and its controls at one level see the same batches in the same order (train.Batches is seeded by
`data_seed` only), so N of them can be trained as one network whose weights are stacked along a leading
axis: every layer is one batched product (N x out x in), the loss is the sum of the N mean cross-entropies
(the parameters are disjoint, so each network gets exactly its own gradient), and Adam or SGD, being
element-wise, updates the stacked tensors as N separate optimizers would. Results equal N separate runs up
to summation order (tests/test_batched.py).

Why it is not the engine's path: on this 2-core CPU a batch-60 LeNet step is bound by arithmetic and
memory traffic once the per-step overhead is shared, and `python -m lt_core bench --cases batched` measures
what stacking N networks buys against N separate engine runs. On a GPU, where one LeNet step is far below
the device's capacity and kernel launches dominate, stacking is the natural way to fill it; that is left
to measure on such hardware.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nets.models import LeNet300100
from ..sparsity.masks import Mask
from ..training.loop import Batches, DeviceData, lr_at, make_optimizer

NAMES = ("fc1", "fc2", "fc3")


class StackedLeNet:
    """N LeNet-300-100s as stacked tensors: weights (N, out, in), biases (N, 1, out), masks likewise."""

    def __init__(self, models: list[LeNet300100], masks: list[Mask], device: torch.device):
        if len(models) != len(masks) or not models:
            raise ValueError(f"need one mask per model; got {len(models)} models and {len(masks)} masks")
        if any(type(m) is not LeNet300100 or m.drop.p != 0.0 for m in models):
            raise ValueError("StackedLeNet trains LeNet-300-100 without dropout only")
        self.weights, self.biases, self.masks = [], [], []
        with torch.no_grad():
            for name in NAMES:
                m = torch.stack([mask[f"{name}.weight"] for mask in masks]).to(device)
                w = torch.stack([model.get_parameter(f"{name}.weight") for model in models]).to(device)
                self.masks.append(None if bool(m.all()) else m.float())
                self.weights.append((w * m).requires_grad_(True))
                b = torch.stack([model.get_parameter(f"{name}.bias") for model in models]).to(device)
                self.biases.append(b[:, None, :].clone().requires_grad_(True))
        self.n = len(models)

    def params(self) -> list[torch.Tensor]:
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, batch, classes) for one shared batch of inputs."""
        h = x.flatten(1)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h.expand(self.n, -1, -1) if h.dim() == 2 else h, w.transpose(1, 2))
            if i < len(self.weights) - 1:
                h = h.relu()
        return h

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, chunk: int) -> list[tuple[float, float]]:
        loss = torch.zeros(self.n, device=x.device)
        correct = torch.zeros(self.n, device=x.device, dtype=torch.long)
        for start in range(0, len(y), chunk):
            logits, target = self.logits(x[start:start + chunk]), y[start:start + chunk]
            loss += F.cross_entropy(logits.transpose(1, 2), target.expand(self.n, -1), reduction="none").sum(1)
            correct += (logits.argmax(2) == target).sum(1)
        return [(l / len(y), c / len(y)) for l, c in zip(loss.tolist(), correct.tolist())]

    def state(self, k: int) -> dict[str, torch.Tensor]:
        """Network k's state_dict, as LeNet300100 names it."""
        out = {}
        for name, w, b in zip(NAMES, self.weights, self.biases):
            out[f"{name}.weight"] = w[k].detach().to("cpu", copy=True)
            out[f"{name}.bias"] = b[k, 0].detach().to("cpu", copy=True)
        return out


def train_stacked(models: list[LeNet300100], masks: list[Mask], data: DeviceData, cfg, *, data_seed: int,
                  eval_chunk: int = 2000):
    """Train N networks together; returns, per network, (rows, final state) as train.train would."""
    device = data.x_train.device
    net = StackedLeNet(models, masks, device)
    optimizer = make_optimizer(net.params(), cfg)
    batches = Batches(len(data.y_train), cfg.batch_size, data_seed, device)
    rows: list[list[tuple[int, str, float, float]]] = [[] for _ in range(net.n)]

    def log(step: int) -> None:
        for split, x, y in (("val", data.x_val, data.y_val), ("test", data.x_test, data.y_test)):
            if len(y):
                for k, (loss, acc) in enumerate(net.evaluate(x, y, eval_chunk)):
                    rows[k].append((step, split, loss, acc))

    log(0)
    for step in range(cfg.iterations):
        optimizer.param_groups[0]["lr"] = lr_at(cfg, step)
        idx = batches.next()
        x, y = data.x_train.index_select(0, idx), data.y_train.index_select(0, idx)
        logits = net.logits(x)
        # the sum of the N mean losses: each network's gradient is its own mean loss's gradient
        loss = F.cross_entropy(logits.transpose(1, 2), y.expand(net.n, -1), reduction="none").mean(1).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for w, m in zip(net.weights, net.masks):
                if m is not None:
                    w.grad.mul_(m)
            optimizer.step()
            for w, m in zip(net.weights, net.masks):
                if m is not None:
                    w.mul_(m)  # weight decay must not revive pruned weights
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.iterations:
            log(done)
    return [(rows[k], net.state(k)) for k in range(net.n)]
