"""Training an experiment's units as Ray tasks (`run --executor ray [--address ADDR]`), on this machine or a
Ray cluster of many, with CPUs and (fractions of) GPUs per unit.

Each unit is one task; its arguments include the results of the tasks of the units its procedure `needs`,
so Ray starts it only once those are stored (the same rule as the process pool, lt_core/runs/pool.py).
Resources per task: `cpus_per_unit` CPUs (the task's torch threads) and `gpus_per_unit` GPUs, a fraction
so that several small networks share one GPU.

Where results go. Every task writes its unit into the run store itself, exactly as the in-process executor
does (atomic files, checksums, the summary last), and returns only the unit's name. The alternative, moving
each unit's tensors through Ray's object store and writing them in the driver, would duplicate the store's
writing rules and hold every network's weights in the object store. So the results root must be a path
every worker reaches: on one machine any folder; on a cluster a shared filesystem (NFS or similar) given
as `--results`, with the data sets there too (`python -m lt_core data fetch` on a node that sees it).

Failures. A task whose worker process dies (killed, out of memory) is retried once by Ray in a fresh
worker (a unit counts only once its summary is stored, so a half-written unit is simply written again); a
second death stops the run (pool.WorkerDied), as does an error in a unit (a configuration, data or disk
error as its own one line). Whatever is stored stays: running again resumes.

Ray is an optional extra (`pip install -e .[ray]`); nothing else in the engine imports it. Started here
(no --address), Ray runs on this machine with its dashboard and usage statistics off and its temporary
files under _build/ray.
"""

from __future__ import annotations

import logging
import os
import sys

import torch

from ..config import ConfigError
from ..data.datasets import DataError
from ..procedures.base import Procedure, Unit
from ..provenance import REPO, code_version
from ..training.loop import ExperimentData
from .pool import _BY_WORDS, WorkerDied, WorkerFailed, _where
from .store import RunStore

TEMP = REPO / "_build" / "ray"
_CACHE: dict = {}  # per Ray worker process: the data sets and procedures it has loaded


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install -e '.[ray]' (requirements.lock pins it)") from None
    return ray


def start(address: str | None = None, cpus: int | None = None):
    """Connect to the cluster at `address`, or start a local Ray (its dashboard and usage statistics off, its
    temporary files under _build/ray). Returns the ray module and whether this call started it."""
    ray = _ray()
    if ray.is_initialized():
        return ray, False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    else:
        # Ray starts its workers at nice 15: beside any process at nice 0 (another run, the tests) they got a
        # sliver of a core (twenty 1000x1000 products: 9.2 s in a task against 0.39 s in the driver, measured
        # beside two one-thread runs); a local run's tasks are the work, so they run at the driver's priority
        os.environ.setdefault("RAY_worker_niceness", "0")
        TEMP.mkdir(parents=True, exist_ok=True)
        # a new local cluster turns on token authentication, Ray's default, and warns that it did, into every
        # chapter page executed with executor ray: kept on, not said (RAY_AUTH_MODE set by the user is Ray's)
        said = logging.getLogger("ray._private.authentication.authentication_token_setup")
        level = said.level
        said.setLevel(logging.ERROR)
        try:
            ray.init(num_cpus=cpus or os.cpu_count(), include_dashboard=False, _temp_dir=str(TEMP),
                     log_to_driver=False, configure_logging=False)
        finally:
            said.setLevel(level)
    return ray, True


def train_unit(procedure: Procedure, root: str, unit: Unit, threads: int, *needs) -> Unit:
    """The task: train one unit into its experiment's store (`needs`: the results of the tasks it waits for)."""
    torch.set_num_threads(threads)
    code_version()  # read at the task's start: the code this worker process runs
    key = (str(root), procedure.cfg.digest(), procedure.cfg.experiment)
    procedure = _CACHE.setdefault(("procedure", key), procedure)  # one per worker: its caches (IMP's masks) last
    data = _CACHE.setdefault("data", ExperimentData())
    procedure.run_unit(unit.own(), RunStore(procedure.cfg, root), data(procedure.cfg))
    return unit


def _cause(error):
    """The exception a task raised, unwrapped from Ray's RayTaskError where it can be."""
    try:
        return error.as_instanceof_cause()
    except Exception:
        return error


def train_units(jobs: dict[str, tuple[Procedure, str]], todo: list[Unit], *, address: str | None = None,
                cpus_per_unit: int = 1, gpus_per_unit: float = 0.0, progress: bool = False) -> None:
    """Train `todo` as Ray tasks (see the module docstring); `jobs` as for pool.train_units."""
    ray, started = start(address)
    try:
        task = ray.remote(train_unit).options(num_cpus=cpus_per_unit, num_gpus=gpus_per_unit, max_retries=1,
                                              retry_exceptions=False)
        shared = {name: ray.put(proc) for name, (proc, _) in jobs.items()}
        pending_units, refs = list(todo), {}
        planned = set(todo)
        while pending_units:  # submit each unit after the units it needs (todo holds sources first)
            ready = [u for u in pending_units if all(n in refs or n not in planned for n in _needs(jobs, u))]
            if not ready:
                raise RuntimeError(f"{len(pending_units)} units need units that are never submitted, e.g. "
                                   f"{pending_units[0]}: a bug in the procedure's needs")
            for unit in ready:
                needs = [refs[n] for n in _needs(jobs, unit) if n in refs]
                refs[unit] = task.remote(shared[unit.experiment], jobs[unit.experiment][1], unit, cpus_per_unit, *needs)
                pending_units.remove(unit)
        _wait(ray, refs, progress)
    finally:
        if started:
            ray.shutdown()


def _needs(jobs, unit: Unit) -> list[Unit]:
    return [n if n.experiment else Unit(n.trial, n.level, n.control, n.draw, unit.experiment)
            for n in jobs[unit.experiment][0].needs(unit.own())]


def _wait(ray, refs: dict[Unit, object], progress: bool) -> None:
    """Wait for every task; the first failure cancels the rest and is raised naming its unit."""
    from ray.exceptions import WorkerCrashedError
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(refs), unit="network", smoothing=0.05)
    by_ref = {ref: unit for unit, ref in refs.items()}
    waiting = list(refs.values())
    try:
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            unit = by_ref[done[0]]
            try:
                ray.get(done[0])
            except WorkerCrashedError:
                raise WorkerDied(f"a Ray worker process died twice while training {_where(unit)}; the finished "
                                 "units are stored: free memory and run again to resume") from None
            except Exception as error:
                cause = _cause(error)
                if isinstance(cause, (ConfigError, DataError)):
                    raise type(cause)(f"training {_where(unit)}: {cause}") from None
                if isinstance(cause, _BY_WORDS):
                    raise WorkerFailed(f"training {_where(unit)}: {cause}") from None
                raise RuntimeError(f"training {unit} failed in a Ray task ({cause!r}); the finished units are "
                                   "stored: run again to resume") from None
            if bar is not None:
                bar.update(1)
    except BaseException:
        for ref in waiting:
            ray.cancel(ref, force=True)
        raise
    finally:
        if bar is not None:
            bar.close()
            sys.stderr.flush()
