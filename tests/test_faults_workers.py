"""Fault suite, worker processes and stopping (issue 21, group 3): a worker that dies (kill -9, the
out-of-memory killer) is reported with the unit it held and that unit is trained again once; dying twice
on it stops the run with one line; a full disk, a damaged file or a configuration error met inside a worker
is the one line it is in one process; SIGTERM and Ctrl-C stop a run with one line, no traceback, a non-zero
status and nothing left running, and running again resumes with the finished units kept.

Workers are fresh interpreters that train on real MNIST (a few steps per network), and import this module
by name to find `DyingToy`, whose chosen unit kills its own process."""

import errno
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import toy_procedure  # noqa: F401  (registers the toy)
from lt_core import __main__ as cli
from lt_core.config import ConfigError, make
from lt_core.data.datasets import data_root, find_dir
from lt_core.data.files import writing
from lt_core.provenance import REPO
from lt_core.runs import executor, pool
from lt_core.runs.store import DamagedError, RunStore, Unit

pytestmark = pytest.mark.skipif(find_dir("mnist", data_root()) is None,
                                reason="MNIST not fetched: run `python -m lt_core data fetch mnist`")

TOY = dict(experiment="toy", procedure="toy_lengths", dataset="mnist", batch_size=20, eval_every=10,
           trials=2, lengths=[20, 20])
VICTIM = Unit(0, 1, "dense")


class DyingToy(toy_procedure.ToyProcedure):
    """The toy, whose unit VICTIM kills its own worker process with SIGKILL (as the out-of-memory killer
    does) the first `times` times it starts; `marker` counts the deaths (one character each)."""

    def __init__(self, cfg, marker: str, times: int):
        super().__init__(cfg)
        self.marker, self.times = marker, times

    def run_unit(self, unit, store, data, on_step=None):
        marker = Path(self.marker)
        deaths = len(marker.read_text()) if marker.exists() else 0
        if unit == VICTIM and deaths < self.times:
            marker.write_text("x" * (deaths + 1))
            os.kill(os.getpid(), signal.SIGKILL)
        super().run_unit(unit, store, data, on_step)


def within(seconds: float, call):
    """call() in a thread, failing the test if it has not returned after `seconds`: a run that waits
    forever on a dead worker (what multiprocessing.Pool did) fails here instead of hanging the suite."""
    outcome = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as error:  # re-raised in the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: the run hangs on a dead worker"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def deaths(marker: Path) -> int:
    return len(marker.read_text()) if marker.exists() else 0


def test_a_killed_worker_is_reported_and_its_unit_trained_again(tmp_path, capfd):
    c, marker = make(TOY), tmp_path / "deaths"
    store = within(180, lambda: executor.run(c, tmp_path / "r", log=lambda *_: None, workers=2,
                                             procedure=DyingToy(c, str(marker), times=1)))
    assert deaths(marker) == 1
    assert all(store.done(u) for u in DyingToy(c, "", 0).units())
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "was killed by SIGKILL" in warnings[0]
    assert "while training unit trial_00/level_01/dense; training it again in a new worker" in warnings[0]
    # the retried unit is the unit an undisturbed run trains
    one = executor.run(c, tmp_path / "one", log=lambda *_: None)
    a = {(s["trial"], s["level"]): s["final_test_accuracy"] for s in one.summaries()}
    assert all(abs(s["final_test_accuracy"] - a[(s["trial"], s["level"])]) <= 0.01 for s in store.summaries())


def test_a_unit_that_kills_its_worker_twice_stops_the_run_and_a_rerun_resumes(tmp_path):
    c, marker = make(TOY), tmp_path / "deaths"
    store = RunStore(c, tmp_path / "r")
    with pytest.raises(pool.WorkerDied, match=r"was killed by SIGKILL .*twice while training unit "
                                              r"trial_00/level_01/dense; the finished units are stored"):
        within(180, lambda: executor.run(c, tmp_path / "r", log=lambda *_: None, workers=2,
                                         procedure=DyingToy(c, str(marker), 5)))
    assert deaths(marker) == 2  # tried once more, not again and again
    assert store.done(Unit(0, 0, "dense")) and not store.done(VICTIM)
    kept = {(s["trial"], s["level"]): s["finished_ns"] for s in store.summaries()}
    executor.run(c, tmp_path / "r", log=lambda *_: None, workers=2)
    again = {(s["trial"], s["level"]): s["finished_ns"] for s in store.summaries()}
    assert len(again) == 4 and all(again[k] == v for k, v in kept.items())


def toy_params(tmp_path, **kw) -> Path:
    path = tmp_path / "toy.yaml"
    body = ", ".join(f"{k}: {v!r}" for k, v in {**TOY, **kw}.items() if k != "experiment")
    path.write_text(f"experiment: toy\nbase: {{{body}}}\nprofiles: {{smoke: {{}}}}\n")
    return path


def test_the_command_line_says_a_worker_died_twice_in_one_line(tmp_path, capsys, monkeypatch):
    marker = tmp_path / "deaths"
    monkeypatch.setattr(executor, "procedure_for", lambda cfg: DyingToy(cfg, str(marker), 5))
    status = within(180, lambda: cli.main(["run", str(toy_params(tmp_path)), "--profile", "smoke", "--workers",
                                           "2", "--quiet", "--results", str(tmp_path / "r")]))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and "Traceback" not in "\n".join(lines)
    assert [line.split(" ")[0] for line in lines] == ["warning:", "error:"], lines  # the retry, then the stop
    assert "twice while training unit trial_00/level_01/dense" in lines[1]


def test_a_configuration_error_inside_a_worker_stays_one_line(tmp_path, capsys):
    """A batch larger than the training set, met only when a worker loads the data (the toy has no check
    before): the worker's ConfigError reaches the command line as itself, naming the unit."""
    status = cli.main(["run", str(toy_params(tmp_path, val_size=59990)), "--profile", "smoke", "--workers", "2",
                       "--quiet", "--results", str(tmp_path / "r")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: training unit trial_0") and \
        "'batch_size' is 20; it must be at most the 10 training examples" in lines[0]
    with pytest.raises(ConfigError, match="'batch_size' is 20; it must be at most the 10 training examples"):
        executor.run(make({**TOY, "val_size": 59990}), tmp_path / "one", log=lambda *_: None)


class FullDiskToy(toy_procedure.ToyProcedure):
    """The toy, whose unit VICTIM meets a full disk (or, with damaged=True, a stored file that does not
    verify) while it writes, inside a worker."""

    def __init__(self, cfg, damaged: bool):
        super().__init__(cfg)
        self.damaged = damaged

    def run_unit(self, unit, store, data, on_step=None):
        if unit == VICTIM and self.damaged:
            raise DamagedError(store.unit_dir(unit) / "summary.json", "it is empty")
        if unit == VICTIM:
            with writing(store.unit_dir(unit) / "metrics.csv"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super().run_unit(unit, store, data, on_step)


@pytest.mark.parametrize("damaged, words", [(False, "no space left on the disk to write"),
                                            (True, "summary.json: it is empty")])
def test_a_full_disk_or_a_damaged_file_inside_a_worker_stays_one_line(tmp_path, capsys, monkeypatch, damaged,
                                                                      words):
    monkeypatch.setattr(executor, "procedure_for", lambda cfg: FullDiskToy(cfg, damaged))
    status = within(180, lambda: cli.main(["run", str(toy_params(tmp_path)), "--profile", "smoke", "--workers",
                                           "2", "--quiet", "--results", str(tmp_path / "r")]))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: training unit trial_00/level_01/dense: ") and words in lines[0]


def our_processes(tag: str) -> list[int]:
    """Processes still running with LT_TEST_TAG=tag in their environment (the run and its workers)."""
    out = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"LT_TEST_TAG={tag}".encode() in (proc / "environ").read_bytes():
                out.append(int(proc.name))
        except OSError:
            continue
    return out


@pytest.mark.parametrize("workers, how", [(2, "SIGTERM"), (2, "Ctrl-C"), (1, "SIGTERM")])
def test_a_stopped_run_says_so_in_one_line_leaves_nothing_running_and_resumes(tmp_path, workers, how):
    """SIGTERM goes to the run alone; Ctrl-C, as a terminal sends it, to the run and its workers."""
    results, tag = tmp_path / "r", uuid.uuid4().hex
    args = [sys.executable, "-m", "lt_core", "run", "params/lenet_mnist.yaml", "--profile", "smoke", "--set",
            "iterations=100", "--results", str(results), "--quiet", "--workers", str(workers)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LT_TEST_TAG": tag}
    child = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    deadline = time.time() + 240
    while not list(results.rglob("summary.json")) and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
    if how == "SIGTERM":
        child.send_signal(signal.SIGTERM)
    else:
        os.killpg(child.pid, signal.SIGINT)
    out, err = child.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert child.returncode == (143 if how == "SIGTERM" else 130), (out, err)
    assert lines == [f"stopped by {how}: the units finished before it are stored and the rest are not; run the "
                     "same command again to resume"], err
    deadline = time.time() + 10
    while our_processes(tag) and time.time() < deadline:  # the workers exit as the run ends
        time.sleep(0.1)
    assert our_processes(tag) == [], "processes of the stopped run are still running"
    kept = {p: p.stat().st_mtime_ns for p in results.rglob("summary.json")}
    assert 1 <= len(kept) < 8, "the stop came too late to test resuming"
    again = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and f"{8 - len(kept)} of 8 units to train" in again.stdout, again.stderr
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # finished units were not trained again
    assert len(list(results.rglob("summary.json"))) == 8


def test_ctrl_c_outside_a_run_says_nothing_was_changed(monkeypatch, capsys):
    """Ctrl-C in `status` or `results` speaks of no resuming: those commands train nothing."""
    from lt_core import __main__ as cli

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "parser", _parser_with(cli, "results", interrupted))
    assert cli.main(["results", "params/lenet_mnist.yaml", "--profile", "smoke"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "stopped by Ctrl-C; nothing was changed"


def _parser_with(cli, command, func):
    """The command line's parser with `command` bound to `func` (set_defaults captured the original)."""
    original = cli.parser

    def make():
        p = original()
        for action in p._subparsers._group_actions:
            action.choices[command].set_defaults(func=func)
        return p
    return make


def test_a_workers_set_up_error_of_a_known_kind_stays_one_line(monkeypatch):
    """A data, configuration or storage error met while a worker sets up reaches the parent as itself
    (one line), not wrapped in a RuntimeError traceback."""
    from lt_core.config import ConfigError
    from lt_core.data.datasets import DataError
    from lt_core.data.files import StorageError
    from lt_core.runs import pool
    from lt_core.procedures.base import Unit

    for error in (DataError("data/mnist/x: missing; run `python -m lt_core data fetch mnist`"),
                  ConfigError("'lr' must be a number"), StorageError("disk full")):
        monkeypatch.setitem(pool._WORKER, "error", error)
        with pytest.raises(type(error)) as raised:
            pool._train_unit(Unit(0, 0, "ticket"))
        assert raised.value is error
    monkeypatch.setitem(pool._WORKER, "error", ZeroDivisionError("x"))
    with pytest.raises(RuntimeError, match="could not start"):
        pool._train_unit(Unit(0, 0, "ticket"))
