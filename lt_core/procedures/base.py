"""The procedure contract: what the executors (lt_core/runs) drive without knowing what a procedure trains.

A procedure turns an experiment's configuration into *units*, one trained network (or one evaluation)
each, stored in a folder of its own. It says

    units()               every unit of the experiment, in an order one process can train them in;
    needs(unit)           the units whose stored results `run_unit` reads for `unit`: they are stored
                          first (a worker starts `unit` only then). A need may be a unit of another
                          experiment (`Unit.experiment` names it; `sources()` maps that name to its
                          configuration), which the executors train first in that experiment's store;
    reads_weights(unit, masks_known)
                          the units whose trained *weights* (not only masks and metrics) the unit reads,
                          when its own masks are not yet stored or when they are: a recorded run keeps
                          no weights, so resuming it retrains these;
    resume_tensors(unit)  the stored tensors (masks) a recorded run keeps of the unit;
    check(), outline()    what can be checked before data are loaded; the line `status` prints;
    run_unit(unit, store, data, on_step)
                          train the unit and store it (summary last: that marks it done);
    stack_key(unit), run_units(units, store, data, on_step)
                          optional: which units can train as one stacked computation, and training them so
                          (`run --stack N`; IMP's, lt_core/training/stacked.py); by default each alone.

Everything the executors add (one process, `--workers`, status, resume after a kill, the results
tables, resuming a recorded run on a fresh machine) works for a procedure that implements these.
A procedure instance lives in one process and may cache what its units share (IMP's masks).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Experiment


@dataclass(frozen=True, order=True)
class Unit:
    """One stored result of an experiment: trial, level, control and draw name its folder. `experiment`
    is empty for the experiment's own units, or the store name of another experiment's (`needs`)."""
    trial: int
    level: int
    control: str
    draw: int = 0
    experiment: str = ""

    @property
    def path(self) -> str:
        leaf = f"{self.control}_{self.draw}" if (self.control == "reinit" or self.draw) else self.control
        return f"trial_{self.trial:02d}/level_{self.level:02d}/{leaf}"

    def own(self) -> "Unit":
        """The same unit with no experiment named (as its own experiment's store knows it)."""
        return Unit(self.trial, self.level, self.control, self.draw)


def store_name(cfg: Experiment) -> str:
    """The run store folder of an experiment, and how units of other experiments name it."""
    return f"{cfg.experiment}-{cfg.digest()}"


class Procedure:
    """Base class of the procedures; subclasses set `name` (the config section they read) and implement
    `units`, `needs` and `run_unit`."""
    name = ""

    def __init__(self, cfg: Experiment):
        if cfg.procedure != self.name:
            raise ValueError(f"{type(self).__name__} runs procedure '{self.name}', not '{cfg.procedure}'")
        self.cfg = cfg

    def check(self) -> None:
        """What can be checked before any data is loaded (models build, rates fit the layers, ...)."""

    def outline(self) -> str:
        """One line for `status`: what the experiment's units are (checked as `check` does)."""
        self.check()
        return ""

    def units(self) -> list[Unit]:
        raise NotImplementedError

    def needs(self, unit: Unit) -> list[Unit]:
        return []

    def reads_weights(self, unit: Unit, masks_known: bool = False) -> list[Unit]:
        return [] if masks_known else self.needs(unit)

    def resume_tensors(self, unit: Unit) -> tuple[str, ...]:
        """The stored tensors of `unit` (masks, never weights) that a recorded run keeps so that the run can
        go on from it elsewhere: what later units read of it besides its weights."""
        return ("mask",)

    def sources(self) -> dict[str, Experiment]:
        """Store name -> configuration of every other experiment that `needs` names."""
        return {}

    def priority(self, unit: Unit):
        """Sort key among ready units (lower first) for the executors; the default keeps units() order."""
        return 0

    def steps(self, unit: Unit) -> int:
        """Training steps of a unit, for the progress bar."""
        return self.cfg.iterations

    def run_unit(self, unit: Unit, store, data, on_step=None) -> None:
        raise NotImplementedError

    def stack_key(self, unit: Unit):
        """Units of one experiment with equal keys (not None) may be trained together by `run_units`, as one
        stacked computation (`run --stack N`, for a GPU); None, the default: the unit trains alone."""
        return None

    def run_units(self, units: list[Unit], store, data, on_step=None) -> None:
        """Train and store units of one stack_key; a procedure that stacks overrides this."""
        for unit in units:
            self.run_unit(unit, store, data, on_step)


PROCEDURES: dict[str, type[Procedure]] = {}


def register(cls: type[Procedure]) -> type[Procedure]:
    """Class decorator: the procedure that experiments with `procedure: <cls.name>` run."""
    PROCEDURES[cls.name] = cls
    return cls


def procedure_for(cfg: Experiment) -> Procedure:
    """The procedure `cfg.procedure` names (lt_core/procedures/__init__.py imports the book's, registering
    them, before anything can import this module)."""
    if cfg.procedure not in PROCEDURES:
        raise ValueError(f"no procedure '{cfg.procedure}' is registered; known: {', '.join(PROCEDURES)}")
    return PROCEDURES[cfg.procedure](cfg)
