"""Running an experiment: every unit its procedure names that the store lacks, in one process or in a pool.

The executor knows only the procedure contract (lt_core/procedures/base.py). It gathers the experiment and
every experiment its units need (`Procedure.sources`, recursively), lists the units not stored yet, sources
first, and trains them: here one after another in the order one pool worker would take them (`in_order`:
of the units whose needs are trained, the first by the procedure's `priority`, IMP's tickets before their
controls; with `stack` N, up to N ready units of one schedule at a time as one computation, for a GPU),
or in `workers` processes (lt_core/runs/pool.py) each as soon as its needs are stored. Resuming after a kill is the same call: a unit
is done when its summary is stored and verifies, so whatever finished stays and the rest is trained.

Repair. A unit whose files do not verify (lt_core/runs/store.py: damaged, or trained on other data) is trained
again, and so is every stored unit trained from it (its procedure's `needs`, followed to the end: for IMP the
later tickets of that trial's chain and the controls that start from them), so that no stored unit starts
from a network that is no longer the stored one. `run` says so in one line first. Temporary files left by
killed writes are removed at the start of every run.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch

from ..config import Experiment
from ..data import datasets
from ..procedures.base import Procedure, Unit, procedure_for
from ..provenance import code_version
from ..training.loop import ExperimentData, resolve_device
from . import pool
from .store import RunStore, State


@dataclass
class Job:
    """One experiment of a run: its procedure and its store."""
    procedure: Procedure
    store: RunStore

    def states(self) -> dict[Unit, State]:
        return {u: self.store.check(u) for u in self.procedure.units()}


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


def _named(unit: Unit, experiment: str) -> Unit:
    """`unit` as the executor names it: with the store name of its experiment ("" for the run's own)."""
    return unit if unit.experiment else Unit(unit.trial, unit.level, unit.control, unit.draw, experiment)


def trained_from(all_jobs: dict[str, Job], bad: set[Unit]) -> set[Unit]:
    """Every unit of the jobs that needs a unit of `bad`, directly or through others (not `bad` itself)."""
    users = defaultdict(list)
    for name, job in all_jobs.items():
        for unit in job.procedure.units():
            for need in job.procedure.needs(unit):
                users[_named(need, name)].append(_named(unit, name))
    out, frontier = set(), list(bad)
    while frontier:
        for user in users[frontier.pop()]:
            if user not in out and user not in bad:
                out.add(user)
                frontier.append(user)
    return out


def _repair_line(experiment: str, damaged: dict[Unit, State], dependents: set[Unit]) -> str:
    first = next(iter(damaged.values())).problem
    more = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
    after = f", with the {len(dependents)} stored units trained from them" if dependents else ""
    return (f"{experiment}: {len(damaged)} damaged unit{'s' * (len(damaged) > 1)} to train again{after} "
            f"({first}{more})")


def in_order(all_jobs: dict[str, Job], todo: list[Unit], stack: int = 1) -> list[list[Unit]]:
    """`todo` in the order one worker of the pool trains it (pool.ready_units: of the units whose needs are
    stored or already trained, the first by its procedure's `priority`), in groups trained together: with
    stack > 1 the first ready unit takes up to stack - 1 more ready units of its experiment and its
    procedure's `stack_key` (IMP: the other trials' tickets, then the level's controls), else one each.
    A run stopped early in one process has then lost what it would have lost in several: controls before a
    level's ticket."""
    procedures = {name: job.procedure for name, job in all_jobs.items()}
    waiting, unfinished, order = list(todo), set(todo), []
    while waiting:
        ready = pool.ready_units(waiting, unfinished, procedures)
        if not ready:
            raise RuntimeError(f"{len(waiting)} units wait for units that are neither stored nor to be trained, "
                               f"e.g. {waiting[0]}: a bug in the procedure's needs")
        first = ready[0]
        group = [first]
        key = procedures[first.experiment].stack_key(first.own()) if stack > 1 else None
        if key is not None:
            group += [u for u in ready[1:] if u.experiment == first.experiment
                      and procedures[u.experiment].stack_key(u.own()) == key][:stack - 1]
        order.append(group)
        for unit in group:
            waiting.remove(unit)
            unfinished.discard(unit)
    return order


EXECUTORS = ("local", "ray")


def unit_threads(workers: int = 1, executor: str = "local", cpus_per_unit: int = 1) -> int:
    """The torch threads a unit trains with under these `run` options (recorded as each unit's `threads`)."""
    if executor == "ray":
        return cpus_per_unit
    return pool.threads_per_worker(workers) if workers > 1 else torch.get_num_threads()


def run(cfg: Experiment, root=None, *, progress: bool = False, log=print, workers: int = 1,
        procedure: Procedure | None = None, executor: str = "local", address: str | None = None,
        cpus_per_unit: int = 1, gpus_per_unit: float = 0.0, stack: int = 1) -> RunStore:
    """Train every unit of `cfg` (and of the experiments it needs) that the stores do not have yet; return
    the experiment's store. workers > 1 trains them in that many processes sharing the CPU threads
    (lt_core/runs/pool.py says when that pays); executor "ray" trains them as Ray tasks of `cpus_per_unit`
    CPUs and `gpus_per_unit` GPUs each, on a local Ray or the cluster at `address`
    (lt_core/runs/ray_executor.py). stack > 1 trains up to that many ready units of one schedule as one
    computation in this process (in_order; lt_core/training/stacked.py: for a GPU). `procedure` defaults to
    the one `cfg.procedure` names."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:  # papermill -p workers "2"
        raise ValueError(f"workers={workers!r}: use a whole number, 1 (one process) or more")
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r}: use one of {', '.join(EXECUTORS)}")
    if isinstance(stack, bool) or not isinstance(stack, int) or stack < 1:
        raise ValueError(f"stack={stack!r}: use a whole number, 1 (each network alone) or more")
    if stack > 1 and (workers > 1 or executor == "ray"):
        raise ValueError("stack trains its networks together in this process (a GPU's): use it with workers 1 "
                         "and executor local")
    if executor == "ray" and workers > 1:
        raise ValueError("executor ray schedules its own workers: leave workers at 1 (cpus_per_unit sets the threads)")
    procedure = procedure or procedure_for(cfg)
    all_jobs = jobs(procedure, root)
    for job in all_jobs.values():
        job.procedure.check()
    code_version()  # read now: the code this process runs, before anyone edits the working tree
    store = all_jobs[""].store
    for job in all_jobs.values():
        job.store.clean_temporaries()
        job.store.compare_expected()  # of a unit trained again for a resumed recording, if killed before
    states = {_named(u, name): st for name, job in all_jobs.items() for u, st in job.states().items()}
    damaged = {u: st for u, st in states.items() if st.state == "damaged"}
    dependents = {u for u in trained_from(all_jobs, set(damaged)) if states.get(u, State("")).state == "done"}
    todo = [u for u, st in states.items() if st.state != "done" or u in dependents]
    total = len(states)
    if not todo:
        log(f"{cfg.experiment}: all {total} units done in {store.dir}")
        return store
    for job in all_jobs.values():  # data and device errors are said before anything is written
        c = job.procedure.cfg
        datasets.load(c.dataset, val_size=c.val_size, split_seed=c.split_seed, train_fraction=c.train_fraction)
        resolve_device(c.device)
    if damaged:
        log(_repair_line(cfg.experiment, damaged, dependents))
        for unit in sorted(damaged.keys() | dependents):
            all_jobs[unit.experiment].store.discard(unit.own())
    for job in all_jobs.values():
        job.store.write_config()
    device = resolve_device(cfg.device)
    where = f"in {workers} processes " if workers > 1 else "as Ray tasks " if executor == "ray" else \
        f"up to {stack} stacked " if stack > 1 else ""
    log(f"{cfg.experiment}: {len(todo)} of {total} units to train on {device} {where}-> {store.dir}")
    if executor == "ray":
        from . import ray_executor  # Ray is optional: imported only when asked for
        ray_executor.train_units({name: (job.procedure, str(job.store.dir.parent)) for name, job in all_jobs.items()},
                                 todo, address=address, cpus_per_unit=cpus_per_unit, gpus_per_unit=gpus_per_unit,
                                 progress=progress)
        return store
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
    for group in in_order(all_jobs, todo, stack):
        unit, job = group[0], all_jobs[group[0].experiment]
        if bar is not None:
            more = f" and {len(group) - 1} more, stacked" if len(group) > 1 else ""
            bar.set_description(f"{unit.experiment or cfg.experiment} trial {unit.trial} level {unit.level} "
                                f"{unit.control}{more}")
        if len(group) > 1:
            job.procedure.run_units([u.own() for u in group], job.store, data(job.procedure.cfg), step_hook)
        else:
            job.procedure.run_unit(unit.own(), job.store, data(job.procedure.cfg), step_hook)
    if bar is not None:
        bar.close()
    return store

