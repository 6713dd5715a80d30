"""Ticket transfer (Morcos et al. 2019) on the procedure contract: an IMP experiment's tickets (the *source*)
trained on another experiment's data or optimizer (the *target*, this one).

The target states the source as one flat mapping of its parameters (`source: {dataset: mnist, ...}`, an
`imp` experiment; `experiment` in it names its store folder; its trials, unstated, are the target's), so
that a changed source parameter changes the target's run name, and two targets with the same source share its
store: running a target trains the source units it needs first (in their own store, lt_core/runs/executor.py),
and never twice.

Per trial t (t < the source's trials) and source level l (0..source levels), with the source's ticket mask
m_l and its trial's rewound weights theta_k (theta_0 when it does not rewind):
  transfer        m_l on theta_k, trained on the target's data with the target's optimizer and schedule;
                  level 0 is the dense network from theta_k (only the initialisation transfers).
  transfer_reinit m_l on fresh weights from the target's init (which part transfers: the mask or the weights).
  random          a random mask with m_l's per-layer counts on fresh weights (the paper's random ticket).
Layer rule: every tensor whose shape is the same in both networks is transferred, weights and mask; a
tensor whose shape differs (the output layer, when the numbers of classes differ) keeps the target's fresh
weights and is not pruned. `output_layer: fresh` treats the output layer (weights and bias) so even when its
shape fits: for classes of other meaning, as Morcos et al. replace it. The source's architecture must be the target's (one error before training otherwise).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch

from ..checks import one_of, raise_first
from ..config import EXTENT, ConfigError, Experiment, Imp, make, section
from ..provenance import start_weights_sha256
from ..sparsity import pruning
from ..sparsity.masks import Mask
from ..training import stacked
from ..training.loop import train
from .base import Procedure, Unit, register, store_name
from .imp import derive_seed, new_model, unit_summary

CONTROLS = ("transfer", "transfer_reinit", "random")


@section("transfer")
@dataclasses.dataclass(frozen=True)
class Transfer:
    """The source experiment and which controls to train at each of its levels."""
    source: tuple[tuple[str, Any], ...] = ()   # the source (imp) experiment's parameters, one flat mapping
    output_layer: str = "transfer"             # transfer (when its shape fits) | fresh: re-initialised, unpruned
    # extent
    controls: tuple[str, ...] = CONTROLS
    control_levels: tuple[int, ...] = ()       # source levels at which the controls run; () = every level

    EXTENT = ("controls", "control_levels")
    RULES = {"controls": one_of(CONTROLS), "output_layer": one_of(("transfer", "fresh"))}

    def __post_init__(self):  # nested lists and mappings as tuples: the configuration stays frozen and hashable
        object.__setattr__(self, "source", _frozen(dict(self.source) if isinstance(self.source, dict)
                                                   else dict(self.source or ())))

    def check(self, cfg: Experiment) -> None:
        raise_first([
            (not self.source, "'source' is empty: state the source experiment's parameters, e.g. "
                              "{experiment: lenet_mnist, dataset: mnist, levels: 18, rewind_iteration: 1000}"),
            ("transfer" not in self.controls,
             f"'controls' is {list(self.controls)}; it must include transfer: the others are its controls"),
        ])


    def identity(self, changed: dict) -> dict:
        """What names the target (Experiment.digest): the source's own extent (its trials, levels, controls)
        left out, as the target's is, so that more source trials or levels extend the target's run too."""
        if "source" in changed:
            extent = set(EXTENT) | set(Imp.EXTENT)  # the source is an imp experiment (source_config)
            changed = {**changed, "source": {k: v for k, v in changed["source"].items() if k not in extent}}
        return changed


def _frozen(value):
    """Mappings as sorted (key, value) pairs and lists as tuples, all the way down."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def source_config(cfg: Experiment) -> Experiment:
    """The source experiment (an imp one), from the target's `source` mapping; its errors name `source`."""
    # unstated trials: the target's (a target of 1 trial trains 1 source trial, not the source's default)
    values = {"experiment": f"{cfg.experiment}_source", "trials": cfg.trials, **dict(cfg.source)}
    try:
        source = make(values)
    except ConfigError as error:
        raise ConfigError(f"source: {error}") from None
    if source.procedure != "imp":
        raise ConfigError(f"source: procedure is {source.procedure!r}; a transferred ticket comes from an imp run")
    return source


@register
class TransferProcedure(Procedure):
    name = "transfer"

    def __init__(self, cfg: Experiment):
        super().__init__(cfg)
        self.source = source_config(cfg)
        self.source_name = store_name(self.source)
        self._unstackable: str | None = None  # stacked.refusal's reason, "" if the network stacks

    def check(self) -> None:
        source, target = new_model(self.source, 0), new_model(self.cfg, 0)
        shapes = lambda m: [tuple(p.shape) for n, p in m.named_parameters() if n in m.prunable]
        raise_first([
            (self.source.model != self.cfg.model,
             f"source model is {self.source.model!r} but this experiment's is {self.cfg.model!r}: a ticket "
             "transfers only to the same architecture"),
            (len(shapes(source)) != len(shapes(target)), "the source's and the target's networks differ in layers"),
            (self.cfg.trials > self.source.trials,
             f"'trials' is {self.cfg.trials}, but the source has {self.source.trials}: each trial transfers the "
             "source trial of the same number (raise the source's trials)"),
        ])

    def outline(self) -> str:
        self.check()
        return f"source {self.source_name} ({self.source.dataset}, {self.source.optimizer}), levels 0..{self.source.levels}"

    def sources(self) -> dict[str, Experiment]:
        return {self.source_name: self.source}

    def units(self) -> list[Unit]:
        chosen = set(self.cfg.control_levels or range(1, self.source.levels + 1))
        out = []
        for trial in range(self.cfg.trials):
            for level in range(self.source.levels + 1):
                out.append(Unit(trial, level, "transfer"))
                if level in chosen:
                    out += [Unit(trial, level, c) for c in CONTROLS[1:] if c in self.cfg.controls]
        return out

    def needs(self, unit: Unit) -> list[Unit]:
        """The source's ticket of the same trial and level (its mask; its level 0 holds theta_k)."""
        out = [Unit(unit.trial, unit.level, "ticket", experiment=self.source_name)]
        if self.source.rewind_iteration and unit.level:
            out.append(Unit(unit.trial, 0, "ticket", experiment=self.source_name))
        return out

    def reads_weights(self, unit: Unit, masks_known: bool = False) -> list[Unit]:
        """The source's theta_k (its trial's level 0: weights are never recorded, so resuming the source from
        a recording trains that unit again); never this experiment's own units' weights."""
        if unit.control == "transfer" and self.source.rewind_iteration:
            return [Unit(unit.trial, 0, "ticket", experiment=self.source_name)]
        return []

    def resume_tensors(self, unit: Unit) -> tuple[str, ...]:
        return ()  # every mask here is the source's (or drawn from its counts)

    def start(self, unit: Unit, store) -> tuple[Mask, torch.nn.Module]:
        """The mask and the initialised network a unit trains (the layer rule in the module docstring)."""
        source_store = type(store)(self.source, store.dir.parent)
        source_seed = derive_seed(self.source.seed, unit.trial)
        seed = derive_seed(self.cfg.seed, unit.trial)
        fresh = new_model(self.cfg, derive_seed(seed, "init", unit.level, unit.control))
        source_mask = Mask(source_store.load_tensor(Unit(unit.trial, unit.level, "ticket"), "mask"))
        shared = {n for n, p in fresh.named_parameters() if n in source_mask and source_mask[n].shape == p.shape}
        shared -= self.output_tensors(fresh)
        mask = Mask({n: (source_mask[n] if n in shared else torch.ones_like(fresh.get_parameter(n), dtype=torch.bool,
                                                                              device="cpu")) for n in fresh.prunable})
        if unit.control == "random":
            generator = torch.Generator().manual_seed(derive_seed(seed, "random", unit.level))
            mask = pruning.random_like(mask, generator)
        if unit.control != "transfer":
            return mask, fresh
        if self.source.rewind_iteration:
            weights = source_store.load_trial_tensor(unit.trial, "rewind")  # theta_k
        else:
            weights = new_model(self.source, derive_seed(source_seed, "init")).state_dict()  # theta_0, as imp draws it
        state = fresh.state_dict()
        kept = self.output_tensors(fresh)
        state.update({n: t for n, t in weights.items() if n in state and state[n].shape == t.shape and n not in kept})
        fresh.load_state_dict(state)
        return mask, fresh

    def output_tensors(self, model) -> set[str]:
        """The output layer's tensors (its weight and bias) when `output_layer` is fresh, else none."""
        if self.cfg.output_layer != "fresh":
            return set()
        layers = {n.rsplit(".", 1)[0] for n, kind in model.prunable.items() if kind == "output"}
        return {n for n, _ in model.named_parameters() if n.rsplit(".", 1)[0] in layers}

    def run_unit(self, unit: Unit, store, data, on_step=None) -> None:
        self.run_units([unit], store, data, on_step)

    def stack_key(self, unit: Unit):
        """Every unit starts at iteration 0 on its trial's batches: all may train as one stacked computation
        (`run --stack N`), unless the network cannot be stacked (stacked.refusal)."""
        if self._unstackable is None:
            self._unstackable = stacked.refusal(new_model(self.cfg, 0), self.cfg) or ""
        return None if self._unstackable else 0

    def run_units(self, units: list[Unit], store, data, on_step=None) -> None:
        """Train units alone (one) or as one stacked computation (several; lt_core/training/stacked.py) and
        store each with its summary (`stacked` and its share of the seconds when several)."""
        cfg = self.cfg
        seeds = [derive_seed(cfg.seed, u.trial) for u in units]
        data_seeds = [derive_seed(seed, "data") % (2**31) for seed in seeds]
        starts = [self.start(u, store) for u in units]
        start_weights = [start_weights_sha256(model) for _, model in starts]  # theta_k (a fresh output layer) or a draw
        began = time.perf_counter()
        if len(units) == 1:
            results = [train(starts[0][1], starts[0][0], data, cfg, data_seed=data_seeds[0], on_step=on_step)]
        else:
            results = stacked.train_stacked([m for _, m in starts], [mask for mask, _ in starts], data, cfg,
                                            data_seeds=data_seeds, on_step=on_step)
        seconds = (time.perf_counter() - began) / len(units)
        for unit, (mask, _), result, seed, data_seed, sha in zip(units, starts, results, seeds, data_seeds, start_weights):
            extra = {"stacked": len(units)} if len(units) > 1 else {}
            summary = unit_summary(unit, mask, result.rows, seconds=seconds, steps=cfg.iterations, seed=seed,
                                   data_seed=data_seed, device=str(data.x_train.device), source=self.source_name,
                                   start_weights_sha256=sha, **extra)
            store.save_unit(unit, result.rows, summary, {"mask": dict(mask)})
