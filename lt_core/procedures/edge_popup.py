"""Edge-popup supermasks (Ramanujan et al. 2020) on the procedure contract: for each trial and each kept
fraction k, learn the top-k mask of one randomly initialised network (lt_core/training/supermask.py).

Units: Unit(trial, level, "supermask") with level = k in per mille (level_500 is k = 0.5), so adding k
values to `keep` extends a run without renaming its units. Every unit of a trial starts from the same
random weights (the `_scaled` inits are scaled for its own k) and sees the same batches; units need
nothing stored before them. The optimizer fields (optimizer sgd, lr, momentum, weight_decay) apply to the
scores; the weights are never trained.
"""

from __future__ import annotations

import dataclasses

from ..checks import Rule, one_of, raise_first
from ..config import Experiment, section
from ..training import supermask
from .base import Procedure, Unit, register
from .imp import derive_seed, new_model, unit_summary

PER_MILLE = 1000


@section("edge_popup")
@dataclasses.dataclass(frozen=True)
class EdgePopup:
    """Edge-popup's fields (the shared fields give data, model, init, the scores' optimizer and schedule)."""
    keep: tuple[float, ...] = (0.5,)  # k: the fraction of each layer's weights the subnetwork keeps
    schedule: str = "cosine"          # cosine | constant: the scores' learning rate over training

    EXTENT = ("keep",)
    RULES = {"keep": Rule(lambda k: 0 < k <= 1 and round(k * PER_MILLE) >= 1, "in (0, 1], at least 0.001"),
             "schedule": one_of(("cosine", "constant"))}

    def check(self, cfg: Experiment) -> None:
        levels = [round(k * PER_MILLE) for k in self.keep]
        raise_first([
            (cfg.optimizer != "sgd", f"'optimizer' is {cfg.optimizer!r}; edge-popup trains its scores with sgd "
                                     "(momentum, weight decay, cosine schedule), as the paper does"),
            (len(set(levels)) != len(levels), f"'keep' {list(self.keep)} names a fraction twice (to 0.001)"),
            (not self.keep, "'keep' is empty: name at least one fraction of weights to keep"),
            (cfg.l1_penalty > 0, f"'l1_penalty' is {cfg.l1_penalty}; edge-popup never trains the weights, so "
                                 "there is nothing to regularise: remove it (weight_decay acts on the scores)"),
        ])


def keep_of(unit: Unit) -> float:
    return unit.level / PER_MILLE


@register
class EdgePopupProcedure(Procedure):
    name = "edge_popup"

    def check(self) -> None:
        new_model(self.cfg, 0)  # the model, init and data set exist and fit

    def outline(self) -> str:
        return "keep (k): " + ", ".join(f"{k:g}" for k in sorted(self.cfg.keep, reverse=True))

    def units(self) -> list[Unit]:
        return [Unit(trial, round(k * PER_MILLE), "supermask") for trial in range(self.cfg.trials)
                for k in sorted(self.cfg.keep, reverse=True)]

    def run_unit(self, unit: Unit, store, data, on_step=None) -> None:
        cfg, keep = self.cfg, keep_of(unit)
        seed = derive_seed(cfg.seed, unit.trial)
        model = new_model(cfg, derive_seed(seed, "init"), keep=keep)
        data_seed = derive_seed(seed, "data") % 2**31
        result = supermask.train(model, keep, data, cfg, data_seed=data_seed,
                                 score_seed=derive_seed(seed, "scores", unit.level), on_step=on_step,
                                 cosine=cfg.schedule == "cosine")
        summary = unit_summary(unit, result.mask, result.rows, seconds=result.seconds, steps=cfg.iterations,
                               seed=seed, data_seed=data_seed, device=str(data.x_train.device), keep=keep)
        store.save_unit(unit, result.rows, summary, {"mask": dict(result.mask)})
