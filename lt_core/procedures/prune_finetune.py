"""Prune and fine-tune (Han et al. 2015) on the procedure contract, with the lottery ticket's comparisons.

Per trial t (seeds from (cfg.seed, t), as IMP's):
  level 0   dense    : the network trained from theta_0 for `iterations` at `lr`.
  level l   finetune : the trained network of level l-1 pruned (below), its survivors retrained from their
                       trained values for `finetune_iterations` at lr x finetune_lr_factor (the paper's tenth),
                       with dropout D_o sqrt(C_l / C_0) (Han et al.'s adjustment; 0 stays 0). Its evaluation at
                       iteration 0 is the pruned network before any retraining.
            ticket   : mask_l on theta_0, trained `iterations` at `lr` (Frankle & Carbin's reset).
            reinit   : mask_l on fresh weights, trained `iterations` at `lr`.
            scratch  : mask_l on fresh weights trained for the whole budget that produced it:
                       iterations + l x finetune_iterations at `lr`.
            oneshot  : the dense network pruned in one step to mask_l's per-layer counts, retrained for
                       l x finetune_iterations (the same budget as l rounds) at the fine-tuning rate (l >= 2).
Pruning, per named tensor, among the survivors (lt_core/sparsity/pruning.py): rule `quality` keeps |w| >=
q x std of the survivors, q from `quality`; rule `density` keeps the largest round(n d^(l/levels)) weights, so
that after the last level each tensor has its `target_density` (Han et al.'s per-layer densities); the
quality that amounts to is reported per tensor (`quality_<layer>` in the summary). Regularisation is the
shared weight_decay (L2) or l1_penalty (L1).
"""

from __future__ import annotations

import dataclasses
import time

from ..checks import Rule, at_least, one_of, raise_first
from ..config import ConfigError, Experiment, section
from ..sparsity import pruning
from ..sparsity.masks import Mask
from ..training.loop import train
from .base import Procedure, Unit, register
from .imp import derive_seed, new_model, unit_summary

CONTROLS = ("finetune", "ticket", "reinit", "scratch", "oneshot")


@section("prune_finetune")
@dataclasses.dataclass(frozen=True)
class PruneFinetune:
    """Prune-and-fine-tune's fields (the shared ones give data, model, init, optimizer and regularisation)."""
    rule: str = "density"                               # density | quality
    target_density: tuple[tuple[str, float], ...] = ()  # tensor -> its density after the last level (density)
    quality: tuple[tuple[str, float], ...] = ()         # tensor -> q, each level keeps |w| >= q std (quality)
    levels: int = 1                                     # prune-and-retrain rounds after the dense level 0
    finetune_iterations: int = 10_000
    finetune_lr_factor: float = 0.1
    # extent
    controls: tuple[str, ...] = CONTROLS
    control_levels: tuple[int, ...] = ()                # levels at which the controls run; () = every level

    EXTENT = ("controls", "control_levels")
    RULES = {"rule": one_of(("density", "quality")), "levels": at_least(1), "finetune_iterations": at_least(1),
             "target_density": Rule(lambda d: 0 < d <= 1, "in (0, 1] (the fraction of the tensor kept at the end)"),
             "quality": at_least(0.0), "finetune_lr_factor": Rule(lambda f: 0 < f <= 1, "in (0, 1]"),
             "controls": one_of(CONTROLS), "control_levels": at_least(1)}

    def check(self, cfg: Experiment) -> None:
        beyond = [level for level in self.control_levels if level > self.levels]
        named = self.target_density if self.rule == "density" else self.quality
        raise_first([
            ("finetune" not in self.controls,
             f"'controls' is {list(self.controls)}; it must include finetune: the others use its masks"),
            (not named, f"rule {self.rule} needs '{'target_density' if self.rule == 'density' else 'quality'}': "
                        "a mapping of prunable tensor to value, e.g. {fc1.weight: 0.08}"),
            (bool(beyond), f"'control_levels' contains {beyond}; they must lie in 1..levels ({self.levels})"),
        ])


def previous(unit: Unit) -> Unit:
    """The network a fine-tuning level prunes: the dense one, or the fine-tuned one of the level before."""
    return Unit(unit.trial, unit.level - 1, "dense" if unit.level == 1 else "finetune")


def level_counts(cfg: Experiment, sizes: dict[str, int], level: int) -> dict[str, int]:
    """Rule density: each target tensor's survivors after `level` rounds, round(n d^(level/levels))."""
    return {name: round(sizes[name] * d ** (level / cfg.levels)) for name, d in cfg.target_density}


def connections(mask: Mask, model) -> int:
    """Surviving weights of the fully connected layers the dropout follows (C_i of D_r = D_o sqrt(C_ir/C_io))."""
    return sum(int(mask[n].sum()) for n, kind in model.prunable.items() if kind == "fc")


@register
class PruneFinetuneProcedure(Procedure):
    name = "prune_finetune"

    def __init__(self, cfg: Experiment):
        super().__init__(cfg)
        self._masks: dict[tuple, Mask] = {}

    # --- what is planned ---------------------------------------------------------------------------------
    def check(self) -> None:
        model = new_model(self.cfg, 0)
        named = dict(self.cfg.target_density if self.cfg.rule == "density" else self.cfg.quality)
        unknown = sorted(set(named) - set(model.prunable))
        if unknown:
            raise ConfigError(f"'{'target_density' if self.cfg.rule == 'density' else 'quality'}' names {unknown}, "
                              f"which model '{self.cfg.model}' does not have; its prunable tensors: "
                              f"{', '.join(model.prunable)}")
        if self.cfg.rule == "density":
            sizes = {n: model.get_parameter(n).numel() for n in model.prunable}
            empty = [n for n, c in level_counts(self.cfg, sizes, self.cfg.levels).items() if c == 0]
            if empty:
                raise ConfigError(f"'target_density' leaves no weight in {empty}; raise it to at least one weight")

    def outline(self) -> str:
        self.check()
        if self.cfg.rule == "quality":
            return f"levels 1..{self.cfg.levels}, quality " + ", ".join(f"{n} {q:g}" for n, q in self.cfg.quality)
        return f"levels 1..{self.cfg.levels} to " + ", ".join(f"{n} {100 * d:.3g}%" for n, d in self.cfg.target_density)

    def units(self) -> list[Unit]:
        cfg, out = self.cfg, []
        chosen = set(cfg.control_levels or range(1, cfg.levels + 1))
        for trial in range(cfg.trials):
            out.append(Unit(trial, 0, "dense"))
            for level in range(1, cfg.levels + 1):
                out.append(Unit(trial, level, "finetune"))
                if level in chosen:
                    out += [Unit(trial, level, c) for c in CONTROLS[1:] if c in cfg.controls
                            and (c != "oneshot" or level >= 2)]  # at level 1 one-shot is the fine-tuned net
        return out

    def needs(self, unit: Unit) -> list[Unit]:
        if unit.control == "dense":
            return []
        if unit.control == "finetune":
            return [previous(unit)]
        mask_of = Unit(unit.trial, unit.level, "finetune")
        return [Unit(unit.trial, 0, "dense"), mask_of] if unit.control == "oneshot" else [mask_of]

    def reads_weights(self, unit: Unit, masks_known: bool = False) -> list[Unit]:
        """Fine-tuning starts from the previous level's trained weights, one-shot from the dense network's,
        whether or not their masks are known; the others start from theta_0 or fresh weights."""
        if unit.control == "finetune":
            return [previous(unit)]
        return [Unit(unit.trial, 0, "dense")] if unit.control == "oneshot" else []

    def resume_tensors(self, unit: Unit) -> tuple[str, ...]:
        return ("mask",) if unit.control in ("finetune", "oneshot") else ()

    def priority(self, unit: Unit):
        return unit.control not in ("dense", "finetune")  # the chain of fine-tuned levels first

    def steps(self, unit: Unit) -> int:
        cfg = self.cfg
        return {"finetune": cfg.finetune_iterations, "scratch": cfg.iterations + unit.level * cfg.finetune_iterations,
                "oneshot": unit.level * cfg.finetune_iterations}.get(unit.control, cfg.iterations)

    # --- training ----------------------------------------------------------------------------------------
    def mask(self, store, unit: Unit) -> Mask:
        """The stored mask of a dense or fine-tuned unit (all ones for the dense network)."""
        key = (str(store.dir), unit)
        if key not in self._masks:
            if unit.control == "dense":
                self._masks[key] = Mask.ones_like(new_model(self.cfg, 0))
            else:
                self._masks[key] = Mask(store.load_tensor(unit, "mask"))
        return self._masks[key]

    def prune(self, weights: dict, before: Mask, level: int) -> Mask:
        cfg = self.cfg
        if cfg.rule == "quality":
            return pruning.by_quality(weights, before, dict(cfg.quality))
        sizes = {n: t.numel() for n, t in before.items()}
        return pruning.to_counts(weights, before, level_counts(cfg, sizes, level))

    def retraining(self, iterations: int) -> Experiment:
        """The configuration survivors are retrained under: the fine-tuning rate, constant, for `iterations`."""
        cfg = self.cfg
        return dataclasses.replace(cfg, lr=cfg.lr * cfg.finetune_lr_factor, iterations=iterations, lr_drops=(),
                                   warmup_iterations=0, lr_schedule="steps")

    def start(self, unit: Unit, store) -> tuple[Mask, object, Experiment, dict]:
        """The mask, the initialised model and the configuration a unit trains, and what its summary adds."""
        cfg, seed = self.cfg, derive_seed(self.cfg.seed, unit.trial)
        if unit.control == "dense":
            return self.mask(store, unit), new_model(cfg, derive_seed(seed, "init")), cfg, {}
        mask = self.mask(store, Unit(unit.trial, unit.level, "finetune")) if unit.control != "finetune" else None
        if unit.control in ("ticket", "reinit", "scratch"):
            init = derive_seed(seed, "init") if unit.control == "ticket" else derive_seed(seed, unit.control, unit.level)
            iterations = cfg.iterations + (unit.level * cfg.finetune_iterations if unit.control == "scratch" else 0)
            return mask, new_model(cfg, init), dataclasses.replace(cfg, iterations=iterations), {}
        # finetune and oneshot: trained weights, pruned, retrained at the fine-tuning rate
        source = previous(unit) if unit.control == "finetune" else Unit(unit.trial, 0, "dense")
        state = store.load_tensor(source, "final")
        before = self.mask(store, source)
        if store.has(unit, "mask"):  # trained again on a fresh machine: the recorded mask, not a new pruning
            mask = Mask(store.load_tensor(unit, "mask"))
        elif unit.control == "finetune":
            mask = self.prune(state, before, unit.level)
        else:
            mask = pruning.to_counts(state, before, {n: int(t.sum()) for n, t in mask.items()})
        dense = new_model(cfg, 0)
        dropout = pruning.retrain_dropout(cfg.dropout, connections(before, dense) if unit.control == "finetune"
                                          else connections(Mask.ones_like(dense), dense), connections(mask, dense))
        model = new_model(cfg, 0, dropout=dropout)
        model.load_state_dict(state)
        iterations = cfg.finetune_iterations * (1 if unit.control == "finetune" else unit.level)
        extra = {"retrain_dropout": dropout,
                 **{f"quality_{n.removesuffix('.weight')}": q for n, q in pruning.quality_of(state, before, mask).items()}}
        return mask, model, self.retraining(iterations), extra

    def run_unit(self, unit: Unit, store, data, on_step=None) -> None:
        seed = derive_seed(self.cfg.seed, unit.trial)
        data_seed = derive_seed(seed, "data") % (2**31)
        mask, model, cfg, extra = self.start(unit, store)
        started = time.perf_counter()
        result = train(model, mask, data, cfg, data_seed=data_seed, on_step=on_step)
        seconds = time.perf_counter() - started
        tensors = {"mask": dict(mask)}
        if unit.control in ("dense", "finetune"):  # the next level starts from them; one-shot from the dense
            tensors["final"] = result.final_state
        pruned = next((acc for it, split, _, acc in result.rows if it == 0 and split == "test"), None)
        summary = unit_summary(unit, mask, result.rows, seconds=seconds, steps=cfg.iterations, seed=seed,
                               data_seed=data_seed, device=str(data.x_train.device),
                               **{f"density_{n.removesuffix('.weight')}": d for n, d in mask.layer_densities().items()},
                               start_test_accuracy=pruned, iterations=cfg.iterations, lr=cfg.lr, **extra)
        store.save_unit(unit, result.rows, summary, tensors)
