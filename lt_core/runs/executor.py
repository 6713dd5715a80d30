"""Running an experiment: every unit its procedure names that the store lacks, in one process or in a pool.

The executor knows only the procedure contract (lt_core/procedures/base.py). It gathers the experiment and
every experiment its units need (`Procedure.sources`, recursively), lists the units not stored yet, sources
first, and trains them: here one after another in `units()` order, or in `workers` processes
(lt_core/runs/pool.py) each as soon as its needs are stored. Resuming after a kill is the same call: a unit
is done when its summary is stored, so whatever finished stays and the rest is trained.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Experiment
from ..data import datasets
from ..procedures.base import Procedure, Unit, procedure_for
from ..provenance import code_version
from ..training.loop import ExperimentData, resolve_device
from . import pool
from .store import RunStore


@dataclass
class Job:
    """One experiment of a run: its procedure and its store."""
    procedure: Procedure
    store: RunStore

    def todo(self) -> list[Unit]:
        return [u for u in self.procedure.units() if not self.store.done(u)]


def jobs(procedure: Procedure, root=None) -> dict[str, Job]:
    """Store name -> Job for the experiment ("" names it) and every experiment its units need, sources
    before the experiments that need them."""
    out: dict[str, Job] = {}

    def add(name: str, proc: Procedure) -> None:
        for source, cfg in proc.sources().items():
            if source not in out:
                add(source, procedure_for(cfg))
        out[name] = Job(proc, RunStore(proc.cfg, root))

    add("", procedure)
    return out


def run(cfg: Experiment, root=None, *, progress: bool = False, log=print, workers: int = 1,
        procedure: Procedure | None = None) -> RunStore:
    """Train every unit of `cfg` (and of the experiments it needs) that the stores do not have yet; return
    the experiment's store. workers > 1 trains them in that many processes sharing the CPU threads
    (lt_core/runs/pool.py says when that pays). `procedure` defaults to the one `cfg.procedure` names."""
    if workers < 1:
        raise ValueError(f"workers={workers}: use 1 (one process) or more")
    procedure = procedure or procedure_for(cfg)
    all_jobs = jobs(procedure, root)
    for job in all_jobs.values():
        job.procedure.check()
    code_version()  # read now: the code this process runs, before anyone edits the working tree
    store = all_jobs[""].store
    todo = [Unit(u.trial, u.level, u.control, u.draw, name)
            for name, job in all_jobs.items() for u in job.todo()]
    total = sum(len(job.procedure.units()) for job in all_jobs.values())
    if not todo:
        log(f"{cfg.experiment}: all {total} units done in {store.dir}")
        return store
    for job in all_jobs.values():  # data and device errors are said before anything is written
        c = job.procedure.cfg
        datasets.load(c.dataset, val_size=c.val_size, split_seed=c.split_seed)
        resolve_device(c.device)
    for job in all_jobs.values():
        job.store.write_config()
    device = resolve_device(cfg.device)
    where = f"in {workers} processes " if workers > 1 else ""
    log(f"{cfg.experiment}: {len(todo)} of {total} units to train on {device} {where}-> {store.dir}")
    if workers > 1:
        pool.train_units({name: (job.procedure, str(job.store.dir.parent)) for name, job in all_jobs.items()},
                         todo, workers, progress=progress)
        return store
    bar = None
    if progress:
        from tqdm.auto import tqdm
        steps = sum(all_jobs[u.experiment].procedure.steps(u.own()) for u in todo)
        bar = tqdm(total=steps, unit="step", unit_scale=True, smoothing=0.05)
    step_hook = (lambda done: bar.update(1)) if bar is not None else None
    data = ExperimentData()
    for unit in todo:
        job = all_jobs[unit.experiment]
        if bar is not None:
            bar.set_description(f"{unit.experiment or cfg.experiment} trial {unit.trial} level {unit.level} "
                                f"{unit.control}")
        job.procedure.run_unit(unit.own(), job.store, data(job.procedure.cfg), step_hook)
    if bar is not None:
        bar.close()
    return store

