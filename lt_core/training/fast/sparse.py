"""The fast path for fully connected ReLU networks (LeNet-300-100): hand-written backward, packed sparse layers.

Why: a LeNet step is 67 MFLOP, small enough that autograd's bookkeeping is a visible share of it, and at
the low densities of late IMP levels almost all of the dense work multiplies zeros. Here activations are
kept feature-major (features x batch) so that every layer is one matrix product with the weight on the
left, which is the orientation the packed (CSR-ordered) products want.

Rule (documented, deterministic, the engine's only path for this case): a layer is *packed* when it is on
the CPU, holds at least PACK_MIN_SIZE weights and its mask density is at most PACK_DENSITY; otherwise it
is *dense* (its gradient times the mask, as the plain path, with its large products through oneDNN:
products.py). Unlike the plain path it does not multiply the weights by the mask after each step: from a
zero gradient, zero moments (or momentum) and a zero weight, Adam's and SGD's updates are exactly zero,
weight decay included, so pruned weights stay exactly zero without it (tests/test_engine.py checks). The
engine takes this path for LeNet-300-100 on the CPU at every density (`wanted`): even with no packed layer
the hand-written step, with fewer kernels than autograd's, trains a level 6-8% faster (measured side by
side). On a GPU, where it is not measured, the engine keeps the plain autograd path. For evaluation a
packed layer whose density exceeds EVAL_PACK_DENSITY is scattered back into a dense matrix once per
evaluation: packed products with 2,000 columns only beat oneDNN's dense product below about that density.
When the inputs are mostly black (MNIST) and layer 1 is denser than EVAL_INPUT_MIN_DENSITY, evaluation
computes layer 1 from the inputs' nonzeros (sparse_input.py): a dense level's evaluation of validation and
test took 21 ms instead of 47 ms (before the oneDNN products), and the route beats packed weights down to
that density. All three thresholds are crossovers measured side by side on this CPU (README, Speed).

A packed layer stores only its surviving weights in CSR order (row-major). Its forward pass is a CSR x
dense product computed as one embedding_bag (`products.ragged_mm`: 1.7-3x faster here than torch's
CSR product), its weight gradient a sampled product (SDDMM: only the surviving entries of gradient^T x input
are computed), its input gradient the same kind of bag product with the CSR of the transpose, and Adam's
moments exist only for survivors. Pruned weights are not stored at all, so they are exactly zero by
construction. Results match the plain autograd path up to summation order (tests/test_speed_paths.py
bounds the difference).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from ...nets import products
from ...nets.models import LeNet300100
from .sparse_input import INPUT_DENSITY, first_layer

PACK_DENSITY = 0.3       # at or below this mask density a layer is packed (training steps: crossover ~0.29)
EVAL_PACK_DENSITY = 0.17  # evaluation (2,000-example chunks) uses the packed weights at or below this density
EVAL_INPUT_MIN_DENSITY = 0.17  # evaluation on sparse inputs: layer 1 above this density uses them
PACK_MIN_SIZE = 16_384  # smaller layers stay dense: sparse-kernel overheads exceed their dense cost
INDEX = torch.int32      # CSR index type (MKL sparse BLAS uses 32-bit indices)

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")


def supports(model) -> bool:
    """The fast path covers LeNet-300-100 without dropout (its forward is exactly Linear-ReLU-Linear-ReLU-Linear)."""
    return type(model) is LeNet300100 and model.drop.p == 0.0


def wanted(model, device: torch.device) -> bool:
    """Whether the engine trains this model on the fast path: supported, on the CPU (see above)."""
    return supports(model) and device.type == "cpu"


def packs(weight: torch.Tensor, mask: torch.Tensor, device: torch.device) -> bool:
    """Whether a layer with this weight and mask is trained packed (the rule in the module docstring)."""
    return device.type == "cpu" and weight.numel() >= PACK_MIN_SIZE and float(mask.float().mean()) <= PACK_DENSITY


def _csr(crow, col, values, shape):
    return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


class Layer:
    """One linear layer y^T = W x^T + b, dense-masked or packed."""

    def __init__(self, linear: torch.nn.Linear, mask: torch.Tensor, name: str, device: torch.device):
        self.linear, self.name, self.bias = linear, name, linear.bias
        w = linear.weight.detach()
        self.shape = tuple(w.shape)
        mask = mask.to(w.device)
        self.density = float(mask.float().mean())
        self.packed = packs(w, mask, device)
        if not self.packed:
            self.weight = linear.weight
            self.maskf = None if bool(mask.all()) else mask.float()  # all-ones: skip the multiply (exact)
            return
        out_f, in_f = self.shape
        rows, cols = mask.nonzero(as_tuple=True)                  # row-major: the CSR order
        self.rows, self.cols = rows, cols.to(INDEX)
        self.crow = torch.cat([rows.new_zeros(1), torch.bincount(rows, minlength=out_f).cumsum(0)]).to(INDEX)
        self.weight = w[rows, cols].clone().requires_grad_(True)  # the survivors: the optimizer's tensor
        self.pattern = _csr(self.crow, self.cols, torch.zeros_like(self.weight), self.shape)  # for the SDDMM
        self.offsets = self.crow[:-1]  # where each output row's run starts (products.ragged_mm)
        # the transpose in CSR order (for input gradients): survivors reordered column-major
        self.perm = torch.argsort(cols * out_f + rows)
        self.col_t = rows[self.perm].to(INDEX)
        per_column = torch.bincount(cols, minlength=in_f)
        self.offsets_t = (per_column.cumsum(0) - per_column).to(INDEX)

    def params(self) -> list[torch.Tensor]:
        return [self.weight, self.bias]

    def forward(self, h_t: torch.Tensor, dense: torch.Tensor | None = None) -> torch.Tensor:
        if dense is not None:
            return products.mm(dense, h_t).add_(self.bias[:, None])
        if self.packed:
            return products.ragged_mm(self.cols, self.offsets, self.weight.detach(), h_t).add_(self.bias[:, None])
        return products.mm(self.weight.detach(), h_t).add_(self.bias[:, None])

    def backward(self, g_t: torch.Tensor, h_t: torch.Tensor, need_input: bool):
        """Set this layer's gradients from the output gradient g^T; return the input gradient if needed."""
        self.bias.grad = g_t.sum(1)
        if self.packed:
            self.weight.grad = torch.sparse.sampled_addmm(self.pattern, g_t, h_t.t(), beta=0.0).values()
            if need_input:
                return products.ragged_mm(self.col_t, self.offsets_t, self.weight.detach()[self.perm], g_t)
            return None
        grad = products.mm(g_t, h_t.t())
        self.weight.grad = grad.mul_(self.maskf) if self.maskf is not None else grad
        return products.mm(self.weight.detach().t(), g_t) if need_input else None

    @torch.no_grad()
    def dense(self) -> torch.Tensor:
        """The weight as a dense matrix (pruned entries exactly zero)."""
        if not self.packed:
            return self.weight.detach()
        dense = torch.zeros(self.shape, dtype=self.weight.dtype, device=self.weight.device)
        dense[self.rows, self.cols] = self.weight.detach()
        return dense

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy packed survivors into the module's dense weight."""
        if self.packed:
            self.linear.weight.copy_(self.dense())


class FastMLP:
    """LeNet-300-100 trained without autograd; see the module docstring."""

    def __init__(self, model: LeNet300100, mask, device: torch.device, data=None):
        """`data` (a train.DeviceData) lets layer 1 use sparse inputs when its inputs are mostly black."""
        sparse_inputs = data is not None and data.input_density() <= INPUT_DENSITY  # (wanted: on the CPU)
        self.black = data.feature_black() if sparse_inputs else None
        self.layers = [Layer(getattr(model, f"fc{i}"), mask[f"fc{i}.weight"], f"fc{i}", device)
                       for i in (1, 2, 3)]
        self.minus_one = torch.full((1, 1), -1.0, device=device)  # the one-hot part of the loss gradient

    def params(self) -> list[torch.Tensor]:
        return [p for layer in self.layers for p in layer.params()]

    def forward_t(self, h: torch.Tensor, dense: list, start: int = 0) -> torch.Tensor:
        """Logits^T of feature-major inputs (features x examples) to layer `start`; dense[i] overrides layer
        i's weight."""
        for i, layer in enumerate(self.layers[start:], start):
            h = layer.forward(h, dense[i])
            if i < len(self.layers) - 1:
                h = h.relu_()
        return h

    @torch.no_grad()
    def grads(self, x: torch.Tensor, y: torch.Tensor, *, with_loss: bool = False) -> torch.Tensor | None:
        """Forward and hand-written backward of mean cross-entropy; gradients land in .grad. Everything stays
        feature-major and contiguous, and the loss itself (which training never reads) is computed only
        when asked: at a low density a step is a few dozen small kernels, so each one saved counts."""
        # inputs of each layer, feature-major; contiguous where a packed product reads them (its table), while
        # a dense product reads a transposed view as fast, which saves copying the batch
        hs = [x.flatten(1).t().contiguous() if self.layers[0].packed else x.flatten(1).t()]
        for i, layer in enumerate(self.layers):
            h = layer.forward(hs[-1])
            hs.append(h.relu_() if i < len(self.layers) - 1 else h)
        logits_t = hs.pop()  # classes x examples
        loss = F.cross_entropy(logits_t.t(), y) if with_loss else None
        # d(mean cross-entropy)/d(logits) = (softmax - one_hot) / batch
        g = torch.softmax(logits_t, 0).scatter_add_(0, y.view(1, -1), self.minus_one.expand(1, len(y)))
        g = g.div_(len(y))
        for i in range(len(self.layers) - 1, -1, -1):
            g = self.layers[i].backward(g, hs[i], need_input=i > 0)
            if i > 0:  # ReLU's gradient (hs[i] is the ReLU output of layer i-1), as autograd computes it
                g = torch.ops.aten.threshold_backward(g, hs[i], 0.0)
        return loss

    def write_back(self) -> None:
        for layer in self.layers:
            layer.write_back()

    def eval_plan(self) -> tuple[list, str]:
        """How evaluation runs, chosen per evaluation from the current densities: the weights that replace
        packed layers (dense above EVAL_PACK_DENSITY), and the route of the inputs: "inputs-rows" (layer 1 on
        the sparse inputs, then examples-major through dense weights, with no transposes), "inputs-features"
        (the same, then feature-major for a packed layer) or "features" (feature-major from the start)."""
        dense = [layer.dense() if layer.packed and layer.density > EVAL_PACK_DENSITY else None
                 for layer in self.layers]
        if self.black is None or self.layers[0].density <= EVAL_INPUT_MIN_DENSITY:
            return dense, "features"
        packed_after_first = any(layer.packed and w is None for layer, w in zip(self.layers[1:], dense[1:]))
        return dense, "inputs-features" if packed_after_first else "inputs-rows"

    def logits(self, data, split: str, chunk: int):
        """The logits (examples x classes) of a split's chunks, one chunk at a time; see eval_plan."""
        dense, route = self.eval_plan()
        if route == "features":
            for x_t in data.feature_major(split, chunk):
                yield self.forward_t(x_t, dense).t().contiguous()  # argmax over a transposed view is 20x slower
            return
        first = self.layers[0]
        weight_t = (first.dense() if dense[0] is None else dense[0]).t().contiguous()  # embedding_bag's table
        for h in first_layer(weight_t, first.bias.detach(), self.black, data.ragged(split, chunk)):
            h = h.relu_()
            if route == "inputs-features":
                yield self.forward_t(h.t().contiguous(), dense, 1).t().contiguous()
                continue
            for i, layer in enumerate(self.layers[1:], 1):
                h = products.linear(h, layer.weight.detach() if dense[i] is None else dense[i], layer.bias.detach())
                h = h.relu_() if i < len(self.layers) - 1 else h
            yield h

    @torch.no_grad()
    def evaluate(self, data, split: str, chunk: int) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) over a split of a DeviceData, like train.evaluate. Layer 1 takes the
        split's sparse inputs if it is dense enough for them to pay (sparse_input.py); otherwise the inputs
        come as contiguous feature-major chunks (a packed product reads them as its embedding_bag table,
        which must be contiguous)."""
        y = getattr(data, f"y_{split}")
        if len(y) == 0:
            return float("nan"), float("nan")
        loss, correct = torch.zeros((), device=y.device), torch.zeros((), device=y.device, dtype=torch.long)
        for offset, logits in zip(range(0, len(y), chunk), self.logits(data, split, chunk)):
            target = y[offset:offset + chunk]
            loss += F.cross_entropy(logits, target, reduction="sum")
            correct += (logits.argmax(1) == target).sum()
        return loss.item() / len(y), correct.item() / len(y)
