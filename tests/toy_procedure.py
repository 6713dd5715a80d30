"""A toy procedure in a few lines, on the contract alone: train the dense network for each of several lengths.
The unit of length i needs the unit of length i-1 stored first (it checks that it is), so the executors'
ordering is exercised too. Worker processes import this module when they unpickle its configuration, which
registers the section and the procedure there as well."""

import dataclasses
import time

from lt_core.config import ConfigError, section
from lt_core.procedures.base import Procedure, Unit, register
from lt_core.procedures.imp import derive_seed, early_stop, new_model
from lt_core.sparsity.masks import Mask
from lt_core.training.loop import train


@section("toy_lengths")
@dataclasses.dataclass(frozen=True)
class ToyLengths:
    lengths: tuple[int, ...] = (20, 40)
    pause: float = 0.0                 # seconds to sleep after each unit (gives a kill test a moment)

    EXTENT = ("pause",)

    def check(self, cfg):
        if not self.lengths or min(self.lengths) < 1:
            raise ConfigError(f"lengths {list(self.lengths)} must be positive iteration counts")


@register
class ToyProcedure(Procedure):
    name = "toy_lengths"

    def units(self):
        return [Unit(t, i, "dense") for t in range(self.cfg.trials) for i in range(len(self.cfg.lengths))]

    def needs(self, unit):
        return [Unit(unit.trial, unit.level - 1, "dense")] if unit.level else []

    def steps(self, unit):
        return self.cfg.lengths[unit.level]

    def run_unit(self, unit, store, data, on_step=None):
        assert all(store.done(n) for n in self.needs(unit)), f"{unit} started before its needs"
        cfg = dataclasses.replace(self.cfg, iterations=self.cfg.lengths[unit.level])
        seed = derive_seed(cfg.seed, unit.trial)
        model = new_model(cfg, derive_seed(seed, "init"))
        mask = Mask.ones_like(model)
        result = train(model, mask, data, cfg, data_seed=derive_seed(seed, "data") % 2**31, on_step=on_step)
        summary = {"trial": unit.trial, "level": unit.level, "control": unit.control, "draw": unit.draw,
                   "density": 1.0, "iterations": cfg.iterations, **early_stop(result.rows),
                   "finished_ns": time.time_ns()}
        store.save_unit(unit, result.rows, summary, {"mask": dict(mask)})
        time.sleep(self.cfg.pause)
