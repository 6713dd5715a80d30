"""Training an experiment's units in several processes of one thread each (`run --workers N`).

Why: at batch 60 a LeNet step is a few dozen small kernels, and at the sparse levels of a trial almost
nothing else: one thread runs them as fast as two (measured on an AVX2 EPYC: 650-700 us a step at 1.85%
density either way), so the second core idles. Two one-thread processes keep both cores busy. There,
on two whole trials of tickets (19 levels of 1,000 steps each) they trained 1.25x more networks an hour
than one two-thread process (`python -m lt_core bench --cases workers`), and `make book WORKERS=2` (the
quick profile: tickets and controls, 92 networks) took 8.6 minutes instead of 13. Dense levels gain
less, since a dense step does use both threads. Opt-in: a process loads the data set (seconds), so
short runs lose.

Units are handed out one at a time, as soon as the units their procedure `needs` are stored (for IMP,
imp.Trial.needs, beside the unit_start it describes: the level-(l-1) ticket, or the dense network for
one-shot controls; tests/test_parallel.py trains every unit in the earliest order this allows), ready
units in the procedure's `priority` (IMP: tickets first, since each trial's chain of tickets is the
longest path). Every worker trains a unit exactly as the in-process executor does and stores it the
same way, so resumption is unchanged; only the summation order of multi-threaded kernels differs, and
`threads` is recorded with every unit. Units of other experiments (`Unit.experiment`) train in their own
stores; a worker loads each experiment's data when it first needs them.
"""

from __future__ import annotations

import multiprocessing
import time

import torch

from ..procedures.base import Procedure, Unit
from ..provenance import code_version
from ..training.loop import ExperimentData
from .store import RunStore

_WORKER: dict = {}  # per worker process: the jobs (procedure, store), the data, a set-up error


def _start_worker(jobs: dict[str, tuple[Procedure, str]], threads: int) -> None:
    """A worker's set-up. An error here is kept and raised by the worker's first unit: a Pool whose
    initializer raises starts new workers forever, and the run would hang instead of saying why."""
    try:
        torch.set_num_threads(threads)
        code_version()  # read now, as the parent did: the code this process runs
        _WORKER.update(jobs={name: (proc, RunStore(proc.cfg, root)) for name, (proc, root) in jobs.items()},
                       data=ExperimentData())
        _data("")  # the experiment's own data now, so that a device or data error shows at the first unit
    except Exception as error:
        _WORKER["error"] = error


def _data(name: str):
    return _WORKER["data"](_WORKER["jobs"][name][0].cfg)


def _train_unit(unit: Unit) -> Unit:
    w = _WORKER
    if "error" in w:
        raise RuntimeError(f"the worker process could not start: {w['error']!r}") from w["error"]
    procedure, store = w["jobs"][unit.experiment]
    procedure.run_unit(unit.own(), store, _data(unit.experiment))
    return unit


def train_units(jobs: dict[str, tuple[Procedure, str]], todo: list[Unit], workers: int, *,
                progress: bool = False, poll: float = 0.05) -> None:
    """Train `todo` (units not yet stored, sources first, each in units() order) in `workers` processes
    sharing torch's threads. `jobs` maps each unit's `experiment` ("" for the experiment's own) to its
    procedure and results root. A unit starts once the units its procedure `needs` are stored (any unit
    outside `todo` is). A worker's error stops the run and is raised here naming the unit; units finished
    by then stay stored, so running again resumes. Stopping this process (Ctrl-C, an interrupted kernel)
    stops the workers too."""
    threads = max(1, torch.get_num_threads() // workers)

    def needs(unit: Unit) -> list[Unit]:  # a need without an experiment is in the unit's own experiment
        return [n if n.experiment else Unit(n.trial, n.level, n.control, n.draw, unit.experiment)
                for n in jobs[unit.experiment][0].needs(unit.own())]

    unfinished = set(todo)  # kept up to date here: only this process hands out units
    waiting, running = list(todo), {}
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited threads or state
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(todo), unit="network", smoothing=0.05)
    try:
        with context.Pool(workers, initializer=_start_worker, initargs=(jobs, threads)) as pool:
            while waiting or running:
                ready = [u for u in waiting if not unfinished.intersection(needs(u))]
                ready.sort(key=lambda u: jobs[u.experiment][0].priority(u.own()))  # stable: todo order within
                for unit in ready[:workers - len(running)]:  # one per idle worker: priorities stay current
                    running[unit] = pool.apply_async(_train_unit, (unit,))
                    waiting.remove(unit)
                if not running:
                    raise RuntimeError(f"{len(waiting)} units wait for units that are neither stored nor "
                                       f"scheduled, e.g. {waiting[0]}: a bug in the procedure's needs")
                time.sleep(poll)
                for unit in [u for u, result in running.items() if result.ready()]:
                    try:
                        running.pop(unit).get()
                    except Exception as error:
                        raise RuntimeError(f"training {unit} failed in a worker process ({error!r}); the "
                                           "finished units are stored: run again to resume") from error
                    unfinished.discard(unit)
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
