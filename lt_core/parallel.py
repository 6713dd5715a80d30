"""Training an experiment's units in several processes of one thread each (`run --workers N`).

Why: at batch 60 a LeNet step is a few dozen small kernels, and at the sparse levels of a trial almost
nothing else: one thread runs them as fast as two (measured on an AVX2 EPYC: 650-700 us a step at 1.85%
density either way), so the second core idles. Two one-thread processes keep both cores busy. There,
on two whole trials of tickets (19 levels of 1,000 steps each) they trained 1.25x more networks an hour
than one two-thread process (`python -m lt_core bench --cases workers`), and `make book WORKERS=2` (the
quick profile: tickets and controls, 92 networks) took 8.6 minutes instead of 13. Dense levels gain
less, since a dense step does use both threads. Opt-in: a process loads the data set (seconds), so
short runs lose.

Units are handed out one at a time, as soon as what they start from is stored (lottery.Trial.needs,
beside the unit_start it describes: the level-(l-1) ticket, or the dense network for one-shot controls;
tests/test_parallel.py trains every unit in the earliest order this allows). Ready tickets go first,
since each trial's chain of tickets is the longest path. Every worker trains a unit exactly as
`lottery.run` does in one process and stores it the same way, so resumption is unchanged; only the
summation order of multi-threaded kernels differs, and `threads` is recorded with every unit.
"""

from __future__ import annotations

import multiprocessing
import time

import torch

from .config import Experiment
from .store import RunStore, Unit, code_version

_WORKER: dict = {}  # per worker process: the experiment, its store, the data and the trials' state


def _start_worker(cfg: Experiment, root: str, threads: int, trial_class) -> None:
    """A worker's set-up. An error here is kept and raised by the worker's first unit: a Pool whose
    initializer raises starts new workers forever, and the run would hang instead of saying why."""
    from . import data as datasets
    from .train import DeviceData, resolve_device
    try:
        torch.set_num_threads(threads)
        code_version()  # read now, as the parent did: the code this process runs
        splits = datasets.load(cfg.dataset, val_size=cfg.val_size, split_seed=cfg.split_seed)
        _WORKER.update(cfg=cfg, store=RunStore(cfg, root), trials={}, trial_class=trial_class,
                       data=DeviceData.prepare(splits, resolve_device(cfg.device)))
    except Exception as error:
        _WORKER["error"] = error


def _train_unit(unit: Unit) -> Unit:
    w = _WORKER
    if "error" in w:
        raise RuntimeError(f"the worker process could not start: {w['error']!r}") from w["error"]
    trial = w["trials"].setdefault(unit.trial, w["trial_class"](w["cfg"], w["store"], unit.trial, w["data"]))
    trial.run_unit(unit)
    return unit


def train_units(cfg: Experiment, store: RunStore, todo: list[Unit], workers: int, trial_class, *,
                progress: bool = False, poll: float = 0.05) -> None:
    """Train `todo` (the units not yet stored, in lottery.units order) in `workers` processes sharing
    torch's threads, each unit by trial_class(cfg, store, trial, data).run_unit(unit) once the units
    trial_class.needs(unit) names are stored (any unit outside `todo` is). A worker's error stops the run
    and is raised here naming the unit; units finished by then stay stored, so running again resumes.
    Stopping this process (Ctrl-C, an interrupted kernel) stops the workers too."""
    threads = max(1, torch.get_num_threads() // workers)
    unfinished = set(todo)  # kept up to date here: only this process hands out units
    waiting, running = list(todo), {}
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited threads or state
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(todo), unit="network", smoothing=0.05)
    start = (cfg, str(store.dir.parent), threads, trial_class)
    try:
        with context.Pool(workers, initializer=_start_worker, initargs=start) as pool:
            while waiting or running:
                ready = [u for u in waiting if not unfinished.intersection(trial_class.needs(u))]
                ready.sort(key=lambda u: u.control != "ticket")  # stable: tickets first, then lottery order
                for unit in ready[:workers - len(running)]:  # one per idle worker: priorities stay current
                    running[unit] = pool.apply_async(_train_unit, (unit,))
                    waiting.remove(unit)
                if not running:
                    raise RuntimeError(f"{len(waiting)} units wait for units that are neither stored nor "
                                       f"scheduled, e.g. {waiting[0]}: a bug in Trial.needs")
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
