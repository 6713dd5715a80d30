"""Pruning strategies as pure functions: (weights, mask, spec) -> new Mask. Nothing here touches a model.

Counting rule, the same everywhere: a round at rate r over n surviving weights removes
floor(r * n + 1/2) of them (r * n rounded half up), chosen among the survivors only; magnitude ties go to
the lower flat index (a stable sort), so results do not depend on the device or thread count.

- layer-wise (Frankle & Carbin's LeNet and Conv-2/4/6): every tensor loses its kind's rate of survivors.
- global (VGG-19, ResNet): survivors of all pruned kinds are ranked together; kinds with no rate, like the
  output layer and ResNet's shortcut convolutions, are left whole. All pruned kinds share one rate.
- random: a mask with the same per-tensor counts at uniformly random positions (the random sparse control).
- one-shot: the dense trained network pruned in one step to the counts that `level` rounds would leave.
- Han et al. 2015 (prune and fine-tune): each layer keeps its survivors with |w| >= quality x the std of its
  survivors (`by_quality`), or its largest survivors up to a count (`to_counts`, for comparisons at equal
  density), with the quality that count amounts to reported (`quality_of`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .masks import Mask


@dataclass(frozen=True)
class PruneSpec:
    strategy: str                      # "layerwise" | "global"
    rates: tuple[tuple[str, float], ...]
    kinds: tuple[tuple[str, str], ...]  # tensor name -> layer kind, in the model's order

    @classmethod
    def of(cls, model, cfg) -> "PruneSpec":
        unknown = sorted(set(dict(cfg.rates)) - set(model.prunable.values()))
        if unknown:
            raise ValueError(f"pruning rates name layer kinds {unknown} that model '{cfg.model}' does not have; "
                             f"its kinds are {sorted(set(model.prunable.values()))}")
        spec = cls(cfg.pruning, tuple(cfg.rates), tuple(model.prunable.items()))
        pooled = {rate for kind, rate in spec.rates if rate > 0}
        if spec.strategy == "global" and len(pooled) > 1:
            raise ValueError(f"global pruning ranks all pruned layers together and needs one rate; got {dict(spec.rates)}")
        return spec

    def rate_of(self, name: str) -> float:
        return dict(self.rates).get(dict(self.kinds)[name], 0.0)

    def pooled(self) -> list[str]:
        return [name for name, _ in self.kinds if self.rate_of(name) > 0]


def removed(n_alive: int, rate: float) -> int:
    """How many of n_alive weights one round at `rate` removes: rate * n_alive rounded half up."""
    return int(rate * n_alive + 0.5)


def _drop_smallest(scores: torch.Tensor, alive: torch.Tensor, n: int) -> torch.Tensor:
    """`alive` with the n smallest-scoring survivors switched off (flat, stable order)."""
    flat_alive = alive.flatten()
    idx = flat_alive.nonzero().squeeze(1)
    order = torch.sort(scores.flatten()[idx], stable=True).indices
    out = flat_alive.clone()
    out[idx[order[:n]]] = False
    return out.view_as(alive)


def _remove(weights: dict[str, torch.Tensor], mask: Mask, spec: PruneSpec, n: dict[str, int] | int) -> Mask:
    """`mask` with the smallest-magnitude survivors removed: n[name] per tensor, or n in total over the
    pooled tensors ranked together (global)."""
    new = Mask({name: t.clone() for name, t in mask.items()})
    names = spec.pooled()
    if not names:
        return new
    if isinstance(n, dict):
        kept = torch.cat([_drop_smallest(weights[name].detach().abs().cpu(), mask[name], n[name]).flatten()
                          for name in names])
    else:
        scores = torch.cat([weights[name].detach().abs().cpu().flatten() for name in names])
        kept = _drop_smallest(scores, torch.cat([mask[name].flatten() for name in names]), n)
    start = 0
    for name in names:
        size = mask[name].numel()
        new[name] = kept[start:start + size].view_as(mask[name])
        start += size
    return new


def _alive(mask: Mask, spec: PruneSpec) -> dict[str, int]:
    return {name: int(mask[name].sum()) for name in spec.pooled()}


def magnitude(weights: dict[str, torch.Tensor], mask: Mask, spec: PruneSpec) -> Mask:
    """One round of magnitude pruning among the survivors of `mask`."""
    alive = _alive(mask, spec)
    if spec.strategy == "layerwise":
        return _remove(weights, mask, spec, {name: removed(a, spec.rate_of(name)) for name, a in alive.items()})
    rate = spec.rate_of(spec.pooled()[0]) if alive else 0.0
    return _remove(weights, mask, spec, removed(sum(alive.values()), rate))


def level_counts(sizes: dict[str, int], spec: PruneSpec, level: int) -> dict[str, int] | int:
    """Survivor counts after `level` rounds: per tensor (layer-wise) or in total over the pooled tensors."""
    if spec.strategy == "layerwise":
        counts = dict(sizes)
        for _ in range(level):
            counts = {n: c - removed(c, spec.rate_of(n)) for n, c in counts.items()}
        return counts
    total = sum(sizes[n] for n in spec.pooled())
    for _ in range(level):
        total -= removed(total, spec.rate_of(spec.pooled()[0]) if spec.pooled() else 0.0)
    return total


def planned_densities(sizes: dict[str, int], spec: PruneSpec, levels: int) -> list[float]:
    """Overall density at each level 0..levels; raises when a level would leave a tensor with no weight."""
    out = []
    fixed = sum(s for n, s in sizes.items() if n not in spec.pooled())
    for level in range(levels + 1):
        counts = level_counts(sizes, spec, level)
        if isinstance(counts, dict):
            empty = [n for n, c in counts.items() if c == 0]
            if empty:
                raise ValueError(f"impossible sparsity: after {level} rounds {empty} would have no weights left; "
                                 f"use fewer levels (at most {level - 1}) or a lower rate")
            total = sum(counts.values())
        else:
            if counts == 0:
                raise ValueError(f"impossible sparsity: after {level} rounds no pooled weight is left; "
                                 f"use at most {level - 1} levels")
            total = counts + fixed
        out.append(total / sum(sizes.values()))
    return out


def oneshot(weights: dict[str, torch.Tensor], mask: Mask, spec: PruneSpec, level: int) -> Mask:
    """Prune the (dense, trained) weights straight to the counts `level` iterative rounds would leave."""
    target = level_counts({name: t.numel() for name, t in mask.items()}, spec, level)
    alive = _alive(mask, spec)
    if isinstance(target, dict):
        return _remove(weights, mask, spec, {name: a - target[name] for name, a in alive.items()})
    return _remove(weights, mask, spec, sum(alive.values()) - target)


def random_like(mask: Mask, generator: torch.Generator) -> Mask:
    """A mask with exactly the per-tensor counts of `mask`, at uniformly random positions."""
    out = Mask()
    for name, t in mask.items():
        keep = torch.zeros(t.numel(), dtype=torch.bool)
        keep[torch.randperm(t.numel(), generator=generator)[: int(t.sum())]] = True
        out[name] = keep.view_as(t)
    return out


# --- Han et al. 2015: prune below a threshold of quality x the layer's standard deviation ------------------

def layer_std(weights: torch.Tensor, alive: torch.Tensor) -> float:
    """The standard deviation (n - 1) of a layer's surviving weights: the scale Han et al.'s threshold is in."""
    survivors = weights.detach().cpu()[alive]
    return float(survivors.std()) if survivors.numel() > 1 else 0.0


def by_quality(weights: dict[str, torch.Tensor], mask: Mask, quality: dict[str, float]) -> Mask:
    """Han et al.'s rule: each named tensor keeps exactly its survivors with |w| >= quality x std (of its
    survivors); tensors not named in `quality` are left as they are."""
    new = Mask({name: t.clone() for name, t in mask.items()})
    for name, q in quality.items():
        w = weights[name].detach().cpu()
        new[name] = mask[name] & (w.abs() >= q * layer_std(w, mask[name]))
    return new


def to_counts(weights: dict[str, torch.Tensor], mask: Mask, counts: dict[str, int]) -> Mask:
    """Each named tensor keeps its `counts[name]` largest-magnitude survivors (ties: the lower flat index
    survives, as everywhere here): the threshold rule at the quality that reaches a given density."""
    new = Mask({name: t.clone() for name, t in mask.items()})
    for name, n in counts.items():
        alive = int(mask[name].sum())
        if not 0 <= n <= alive:
            raise ValueError(f"cannot keep {n} weights of {name}: it has {alive} survivors")
        new[name] = _drop_smallest(weights[name].detach().abs().cpu(), mask[name], alive - n)
    return new


def quality_of(weights: dict[str, torch.Tensor], before: Mask, after: Mask) -> dict[str, float]:
    """The quality parameter a pruning step used, per tensor it pruned: the smallest surviving |w| over the
    std of the survivors before it (what Han et al.'s rule would need to give the same mask, ties aside)."""
    out = {}
    for name in after:
        if bool((before[name] != after[name]).any()) and bool(after[name].any()):
            w = weights[name].detach().cpu()
            out[name] = float(w.abs()[after[name]].min()) / layer_std(w, before[name])
    return out


def retrain_dropout(dropout: float, connections_before: int, connections_now: int) -> float:
    """Han et al.'s dropout for retraining, D_r = D_o sqrt(C_ir / C_io): a sparser layer has less capacity
    to over-fit, so it drops fewer of its units."""
    if connections_before <= 0 or not 0 <= connections_now <= connections_before:
        raise ValueError(f"connections {connections_now} of {connections_before}: need 0 <= now <= before, before > 0")
    return dropout * (connections_now / connections_before) ** 0.5
