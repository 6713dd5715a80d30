"""A toy procedure in a few lines, on the contract alone: train the dense network for each of several lengths.
The unit of length i needs the unit of length i-1 stored first (it checks that it is), so the executors'
ordering is exercised too. Worker processes import this module when they unpickle its configuration, which
registers the section and the procedure there as well."""

import dataclasses
import time

from lt_core.config import ConfigError, section
from lt_core.procedures.base import Procedure, Unit, register, store_name
from lt_core.procedures.imp import derive_seed, early_stop, new_model
from lt_core.runs.store import RunStore
from lt_core.sparsity.masks import Mask
from lt_core.training.loop import train


@section("toy_lengths")
@dataclasses.dataclass(frozen=True)
class ToyLengths:
    lengths: tuple[int, ...] = (20, 40)
    pause: float = 0.0                 # seconds to sleep after each unit (gives a kill test a moment)
    source_lengths: tuple[int, ...] = ()  # if set: each trial's first unit needs the last unit of a toy
                                          # experiment with these lengths (units of another experiment)

    EXTENT = ("pause",)

    def check(self, cfg):
        if not self.lengths or min(self.lengths) < 1:
            raise ConfigError(f"lengths {list(self.lengths)} must be positive iteration counts")


@register
class ToyProcedure(Procedure):
    name = "toy_lengths"

    def units(self):
        return [Unit(t, i, "dense") for t in range(self.cfg.trials) for i in range(len(self.cfg.lengths))]

    def source(self):
        return dataclasses.replace(self.cfg, experiment=self.cfg.experiment + "_source", settings=ToyLengths(
            lengths=self.cfg.source_lengths, pause=self.cfg.pause))

    def sources(self):
        return {store_name(self.source()): self.source()} if self.cfg.source_lengths else {}

    def needs(self, unit):
        if unit.level:
            return [Unit(unit.trial, unit.level - 1, "dense")]
        if self.cfg.source_lengths:
            return [Unit(unit.trial, len(self.cfg.source_lengths) - 1, "dense", 0, store_name(self.source()))]
        return []

    def steps(self, unit):
        return self.cfg.lengths[unit.level]

    def run_unit(self, unit, store, data, on_step=None):
        own = [n for n in self.needs(unit) if not n.experiment]
        assert all(store.done(n) for n in own), f"{unit} started before its needs"
        for need in set(self.needs(unit)) - set(own):  # another experiment's unit: in its own store
            other = RunStore(self.source(), store.dir.parent)
            assert other.done(need.own()), f"{unit} started before {need}"
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
