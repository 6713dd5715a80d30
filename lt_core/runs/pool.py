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

Failures. Each worker is a process of our own with a pipe to this one, so a worker that dies (kill -9,
the out-of-memory killer) is seen at once, with the unit it held: multiprocessing.Pool replaced such a
worker silently and waited forever for the lost unit. The unit is reported and trained again, once, in a
fresh worker; a second death on it stops the run (WorkerDied). Whatever stops this process ends the
workers (a unit counts only once its summary is stored, so a unit cut short is trained on the next run).
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import sys
from multiprocessing.connection import wait

import torch

from ..config import ConfigError
from ..data.datasets import DataError
from ..data.files import StorageError
from ..procedures.base import Procedure, Unit
from ..provenance import code_version
from ..training.loop import ExperimentData
from .store import DamagedError, RunStore

_WORKER: dict = {}  # per worker process: the jobs (procedure, store), the data, a set-up error


class WorkerFailed(RuntimeError):
    """A unit failed in a worker in a way the user can fix; the message names the unit and says what to do
    (the command line prints it as one line)."""


class WorkerDied(WorkerFailed):
    """A worker process died (killed, out of memory) twice on the same unit."""


# errors a user fixes (the disk, the run store) that a worker reports by their words: one line in the parent
# as in one process, whatever their constructors take
_BY_WORDS = (StorageError, DamagedError)


def _start_worker(jobs: dict[str, tuple[Procedure, str]], threads: int) -> None:
    """A worker's set-up. An error here is kept and raised by the worker's first unit, so that the parent
    hears why this worker cannot train instead of seeing it exit."""
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
        error = w["error"]
        if isinstance(error, (ConfigError, DataError) + _BY_WORDS):  # said in one line, as in one process
            raise error
        raise RuntimeError(f"the worker process could not start: {error!r}") from error
    procedure, store = w["jobs"][unit.experiment]
    procedure.run_unit(unit.own(), store, _data(unit.experiment))
    return unit


def _serve(conn, jobs: dict[str, tuple[Procedure, str]], threads: int) -> None:
    """A worker process: set up, then train each unit the parent sends and answer (unit, error or None),
    until the parent sends None or goes away. Ctrl-C reaches the whole process group; the parent alone
    handles it and stops the workers, so here it is ignored (no traceback from every worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _start_worker(jobs, threads)
    while True:
        try:
            unit = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if unit is None:
            return
        try:
            _train_unit(unit)
            answer = (unit, None)
        except _BY_WORDS as error:
            answer = (unit, WorkerFailed(str(error)))
        except Exception as error:
            answer = (unit, error)
        try:  # what the parent will read back: an error that does not round-trip is sent as its words
            pickle.loads(pickle.dumps(answer))
        except Exception:
            answer = (unit, RuntimeError(repr(answer[1])))
        try:
            conn.send(answer)
        except OSError:  # the parent is gone
            return


class _Worker:
    """One worker process, its end of the pipe and the unit it holds (None when idle)."""

    def __init__(self, context, jobs, threads: int):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, jobs, threads), daemon=True)
        self.process.start()
        child.close()  # so that a dead worker's pipe reads as closed here
        self.unit: Unit | None = None

    def give(self, unit: Unit) -> None:
        self.unit = unit
        self.conn.send(unit)

    def answer(self):
        """(unit, error) if the worker answered, or None if it died without answering."""
        try:
            if self.conn.poll():
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        return None

    def stop(self, wait_s: float) -> None:
        """Ask an idle worker to finish; end a busy or silent one (its unit is not stored: summary last)."""
        if self.process.is_alive() and self.unit is None:
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.process.join(wait_s)
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _death(process) -> str:
    """How a worker process ended, in words."""
    code = process.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        cause = " (the out-of-memory killer sends it, or kill -9)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{cause}"
    return f"exited with status {code}"


def _where(unit: Unit) -> str:
    return f"unit {unit.path}" + (f" of {unit.experiment}" if unit.experiment else "")


def ready_units(waiting: list[Unit], unfinished: set[Unit], procedures: dict[str, Procedure]) -> list[Unit]:
    """The units of `waiting` none of whose needs is in `unfinished`, lowest `priority` first (stable:
    waiting's order among equals); `procedures` maps each unit's `experiment` ("" for the run's own) to its
    procedure. The pool hands these out; one process (executor.in_order) takes the first."""
    def needs(unit: Unit) -> list[Unit]:  # a need without an experiment is in the unit's own experiment
        return [n if n.experiment else Unit(n.trial, n.level, n.control, n.draw, unit.experiment)
                for n in procedures[unit.experiment].needs(unit.own())]

    ready = [u for u in waiting if not unfinished.intersection(needs(u))]
    return sorted(ready, key=lambda u: procedures[u.experiment].priority(u.own()))


def threads_per_worker(workers: int) -> int:
    """The torch threads each of `workers` processes trains with: this process's, shared out."""
    return max(1, torch.get_num_threads() // workers)


def train_units(jobs: dict[str, tuple[Procedure, str]], todo: list[Unit], workers: int, *,
                progress: bool = False, report=None) -> None:
    """Train `todo` (units not yet stored, sources first, each in units() order) in `workers` processes
    sharing torch's threads. `jobs` maps each unit's `experiment` ("" for the experiment's own) to its
    procedure and results root. A unit starts once the units its procedure `needs` are stored (any unit
    outside `todo` is). A worker's error stops the run and is raised here naming the unit (a configuration
    or data error as itself, a full disk or a damaged stored file as WorkerFailed, so that each stays one
    line); a worker that dies (killed, out of memory) is
    reported with its unit through `report` (default: stderr), which a fresh worker trains again, once:
    dying twice on it stops the run with WorkerDied. Units finished by then stay stored, so running again
    resumes. Stopping this process (Ctrl-C, SIGTERM, an interrupted kernel) ends the workers too."""
    threads = threads_per_worker(workers)
    procedures = {name: procedure for name, (procedure, _) in jobs.items()}
    unfinished = set(todo)  # kept up to date here: only this process hands out units
    waiting, deaths = list(todo), {}
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited threads or state
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(todo), unit="network", smoothing=0.05)
    say = report or (lambda line: (bar.write(line, file=sys.stderr) if bar is not None
                                   else print(line, file=sys.stderr, flush=True)))
    pool = [_Worker(context, jobs, threads) for _ in range(workers)]
    try:
        while waiting or any(w.unit for w in pool):
            ready = ready_units(waiting, unfinished, procedures)
            for worker, unit in zip([w for w in pool if w.unit is None], ready):  # priorities stay current
                worker.give(unit)
                waiting.remove(unit)
            busy = [w for w in pool if w.unit is not None]
            if not busy:
                raise RuntimeError(f"{len(waiting)} units wait for units that are neither stored nor "
                                   f"scheduled, e.g. {waiting[0]}: a bug in the procedure's needs")
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for i, worker in enumerate(pool):
                if worker.unit is None:
                    continue
                answer = worker.answer()
                if answer is None and worker.process.is_alive():
                    continue  # still training
                unit = worker.unit
                if answer is None:  # died holding its unit: say so, retry it once in a fresh worker
                    deaths[unit] = deaths.get(unit, 0) + 1
                    how = _death(worker.process)
                    worker.unit = None
                    worker.stop(0)
                    if deaths[unit] > 1:
                        raise WorkerDied(f"a worker process {how} twice while training {_where(unit)}; the "
                                         "finished units are stored: free memory (or use fewer --workers) "
                                         "and run again to resume")
                    say(f"warning: worker process {worker.process.pid} {how} while training {_where(unit)}; "
                        "training it again in a new worker process")
                    pool[i] = _Worker(context, jobs, threads)
                    waiting.insert(0, unit)
                    continue
                worker.unit = None
                _, error = answer
                if isinstance(error, (ConfigError, DataError, WorkerFailed)):  # one line, as in one process
                    raise type(error)(f"training {_where(unit)}: {error}") from error
                if error is not None:
                    raise RuntimeError(f"training {unit} failed in a worker process ({error!r}); the "
                                       "finished units are stored: run again to resume") from error
                unfinished.discard(unit)
                if bar is not None:
                    bar.update(1)
    finally:
        for worker in pool:
            worker.stop(5)
        if bar is not None:
            bar.close()
