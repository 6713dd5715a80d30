"""Faults of the run store (issue 21, groups 1 and 5): stored files cut short, emptied, edited or left behind by a
killed write, a full disk and a read-only results root. Each case asserts the one clear line (the command line
run in this process, its stderr one line without a traceback) and that nothing is lost or silently wrong: the
damaged unit and the units trained from it are trained again, the others are kept, and the numbers equal an
uninterrupted run's. Tiny runs on synthetic data (tests/test_engine.py's `tiny`), seconds each."""

import errno
import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from lt_core.__main__ import main
from lt_core.data import files
from lt_core.procedures import imp
from lt_core.procedures.base import Unit
from lt_core.provenance import REPO
from lt_core.runs import executor, recorded, results
from lt_core.runs.store import DamagedError, RunStore

from test_engine import cfg, tiny  # noqa: F401 (a fixture)

SETTINGS = dict(experiment="t", iterations=30, eval_every=10, batch_size=20, levels=2, trials=2, val_size=60)


def params(tmp_path, **settings) -> str:
    """A params file naming cfg(**settings) (the command line reads experiments from files)."""
    path = tmp_path / "params.yaml"
    path.write_text(json.dumps({"experiment": "t", "profile": "tiny", "profiles": {"tiny": {}},
                                "base": {k: v for k, v in {**SETTINGS, **settings}.items() if k != "experiment"}}))
    return str(path)


def cli(capsys, *args) -> tuple[int, str, str]:
    """`python -m lt_core ARGS` in this process (so that `tiny` stands in for the data): code, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def quiet(*_):
    pass


def contents(root) -> dict:
    """Every file under root -> its bytes (what "nothing lost, nothing changed" compares)."""
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def metrics(store: RunStore) -> dict:
    return {u: store.read_metrics(u) for u, _ in store.units()}


@pytest.fixture
def trained(tiny, tmp_path):
    """Two trials of tickets and all four controls, stored; and the same run in a second root, untouched."""
    c = cfg(trials=2)
    store = executor.run(c, tmp_path / "r", log=quiet)
    reference = executor.run(c, tmp_path / "ref", log=quiet)
    return c, store, reference


# --- group 1: stored files are checked -------------------------------------------------------------------

SUMMARY_DAMAGE = {
    "empty": lambda text, other: "",
    "half written": lambda text, other: text[:len(text) // 2],
    "{}": lambda text, other: "{}",
    "not json": lambda text, other: "\x00\x01garbage",
    "a number edited": lambda text, other: json.dumps({**json.loads(text), "density": 0.5}, indent=1, sort_keys=True),
    "another unit's": lambda text, other: other,
}


@pytest.mark.parametrize("damage", list(SUMMARY_DAMAGE))
def test_a_damaged_summary_is_reported_refused_and_retrained(trained, capsys, tmp_path, damage):
    c, store, reference = trained
    unit, other = Unit(1, 2, "ticket"), Unit(1, 2, "random")
    path = store.unit_dir(unit) / "summary.json"
    path.write_text(SUMMARY_DAMAGE[damage](path.read_text(), (store.unit_dir(other) / "summary.json").read_text()))
    args = [params(tmp_path, trials=2), "--results", str(tmp_path / "r")]

    code, out, _ = cli(capsys, "status", *args)
    assert code == 0 and f"damaged: {path}" in out and "1 damaged" in out and "complete" not in out
    table = results.status(c, tmp_path / "r")
    assert table.damaged.sum() == 1 and table.done.sum() == len(imp.units(c)) - 1

    code, _, err = cli(capsys, "results", *args, "--summary")  # never a table with the unit left out
    line = one_line(err)
    assert code == 2 and str(path) in line and "trains the damaged unit again" in line and "python -m lt_core run" in line

    messages = []
    executor.run(c, tmp_path / "r", log=messages.append)
    assert messages[0].startswith("t: 1 damaged unit to train again") and str(path) in messages[0]
    assert metrics(store) == metrics(reference)  # repaired: the numbers of the uninterrupted run
    assert "complete" in cli(capsys, "status", *args)[1]


def test_status_names_the_first_damaged_units_and_counts_the_rest(trained, capsys, tmp_path):
    c, store, _ = trained
    for unit in imp.units(c):
        (store.unit_dir(unit) / "summary.json").write_text("")
    code, out, _ = cli(capsys, "status", params(tmp_path, trials=2), "--results", str(tmp_path / "r"))
    shown = [line for line in out.splitlines() if line.startswith("damaged: ")]
    assert len(shown) == 10 and f"... and {len(imp.units(c)) - 10} more damaged units" in out
    assert f"{len(imp.units(c))} damaged: `python -m lt_core run" in out


def test_a_truncated_metrics_table_is_never_read_as_a_short_one(trained, capsys, tmp_path):
    c, store, reference = trained
    path = store.metrics_path(Unit(0, 1, "reinit"))
    text = path.read_text()
    path.write_text(text[:text.index("\n", len(text) // 2) + 1])  # cut at a line end: still a valid CSV
    with pytest.raises(DamagedError, match="metrics.csv: .* bytes, but its unit's summary records"):
        results.load(c, tmp_path / "r")
    deleted = store.metrics_path(Unit(1, 2, "oneshot"))
    deleted.unlink()
    assert store.check(Unit(1, 2, "oneshot")).problem == f"{deleted}: missing (its unit's summary records it)"
    code, _, err = cli(capsys, "results", params(tmp_path, trials=2), "--results", str(tmp_path / "r"))
    assert code == 2 and str(path) in one_line(err)
    executor.run(c, tmp_path / "r", log=quiet)
    a, b = results.load(c, tmp_path / "r")[0], results.load(c, tmp_path / "ref")[0]
    assert a.equals(b)


def flipped(raw: bytes) -> bytes:
    """One bit of the last kilobyte changed: the size stays, a tensor's value changes (or its zip breaks)."""
    return raw[:-1000] + bytes([raw[-1000] ^ 1]) + raw[-999:]


@pytest.mark.parametrize("name,damage,said", [("final", lambda raw: raw[:100], "100 bytes, but"),
                                              ("mask", lambda raw: raw[:100], "100 bytes, but"),
                                              ("final", flipped, "does not match the sha256")])
def test_a_damaged_tensor_retrains_its_unit_and_the_units_trained_from_it(trained, tmp_path, name, damage, said):
    c, store, reference = trained
    damaged = Unit(0, 1, "ticket")
    path = store.unit_dir(damaged) / f"{name}.pt"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DamagedError, match=f"{name}.pt: .*{said}"):
        store.load_tensor(damaged, name)
    assert store.check(damaged).state == "damaged" and str(path) in store.check(damaged).problem
    stamps = {u: (store.unit_dir(u) / "summary.json").stat().st_mtime_ns for u in imp.units(c) if u != damaged}
    messages = []
    executor.run(c, tmp_path / "r", log=messages.append)
    # the level-2 ticket, reinit and random controls start from the level-1 ticket (IMP's needs); the level-1
    # controls start from the dense network's pruning, one-shot controls from the dense network: kept, as is trial 1
    from_it = {u for u in imp.units(c) if u.trial == 0 and u.level == 2 and u.control != "oneshot"}
    assert f"with the {len(from_it)} stored units trained from them" in messages[0]
    retrained = {u for u, t in stamps.items() if (store.unit_dir(u) / "summary.json").stat().st_mtime_ns != t}
    assert retrained == from_it
    assert metrics(store) == metrics(reference)
    assert all(store.check(u).state == "done" for u in imp.units(c))


def test_a_damaged_rewind_point_retrains_its_trial(tiny, tmp_path):
    c = cfg(trials=2, rewind_iteration=10, controls=["ticket"])
    store = executor.run(c, tmp_path, log=quiet)
    rewind = store.trial_dir(1) / "rewind.pt"
    rewind.write_bytes(rewind.read_bytes()[:-7])
    with pytest.raises(DamagedError, match="rewind.pt"):
        store.load_trial_tensor(1, "rewind")
    assert store.check(Unit(1, 0, "ticket")).state == "damaged"  # the unit whose training wrote it
    messages = []
    executor.run(c, tmp_path, log=messages.append)
    assert "1 damaged unit to train again, with the 2 stored units trained from them" in messages[0]
    assert store.load_trial_tensor(1, "rewind").keys()


def test_results_csv_is_written_whole_or_not_at_all(trained, capsys, tmp_path):
    c, store, _ = trained
    out = tmp_path / "curves.csv"
    out.write_text("the old table\n")

    def killed(fd):  # the process dies after writing, before the rename
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(files.os, "fsync", killed)
        try:  # main reports a Ctrl-C as one line (status 130), or lets it through
            code = main(["results", params(tmp_path, trials=2), "--results", str(tmp_path / "r"), "--csv", str(out)])
        except KeyboardInterrupt:
            code = 130
    assert code == 130
    assert out.read_text() == "the old table\n" and sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "curves.csv", "params.yaml"]  # no partial file, under either name
    code, _, _ = cli(capsys, "results", params(tmp_path, trials=2), "--results", str(tmp_path / "r"), "--csv", str(out))
    assert code == 0 and len(pd.read_csv(out)) == len(results.curves_table(c, tmp_path / "r"))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporary_files_of_killed_writes_are_removed_at_the_next_run(trained, tmp_path):
    c, store, _ = trained
    folder = store.unit_dir(Unit(0, 1, "ticket"))
    killed = folder / f".final.pt.{dead_pid()}.k1ll3d.tmp"
    older = folder / ".metrics.csv.abc123.tmp"  # named by older code, without a process id
    live = folder / f".mask.pt.{os.getpid()}.inflight.tmp"  # a write in flight in a live process
    for path in (killed, older, live):
        path.write_bytes(b"part of a file")
    os.utime(older, (0, 0))
    messages = []
    executor.run(c, tmp_path / "r", log=messages.append)
    assert not killed.exists() and not older.exists() and live.exists()
    assert messages == [f"t: all {len(imp.units(c))} units done in {store.dir}"]  # and nothing else changed


def killed_while_writing(script: str, leftover, env=None) -> None:
    """Run `script` in a fresh interpreter (its fsync hangs, as on a slow disk), kill -9 it once `leftover()`
    finds what it was writing, and wait for it."""
    hang = "import os, time; os.fsync = lambda fd: time.sleep(60); "
    child = subprocess.Popen([sys.executable, "-c", hang + script], cwd=REPO, env={**os.environ, **(env or {})})
    try:
        deadline = time.time() + 60
        while not leftover() and time.time() < deadline and child.poll() is None:
            time.sleep(0.02)
        assert leftover(), "the child never started its write"
    finally:
        child.kill()
        child.wait()


def test_a_write_killed_for_real_leaves_a_temporary_file_that_the_next_run_removes(trained, tmp_path):
    c, store, _ = trained
    target = store.unit_dir(Unit(0, 2, "random")) / "metrics.csv"
    old = target.read_bytes()
    killed_while_writing(f"from lt_core.data import files; files.atomic_write({str(target)!r}, b'x' * 100)",
                         lambda: list(target.parent.glob(".metrics.csv.*.tmp")))
    assert target.read_bytes() == old  # the old file is whole
    executor.run(c, tmp_path / "r", log=quiet)
    assert not list(store.dir.rglob("*.tmp")) and store.done(Unit(0, 2, "random"))


# --- units stored before checksums, and recorded runs ----------------------------------------------------

def test_units_without_checksums_read_as_legacy_done(trained, capsys, tmp_path):
    c, store, _ = trained
    for unit in imp.units(c):
        path = store.unit_dir(unit) / "summary.json"
        doc = json.loads(path.read_text())
        for key in ("files", "trial_files", "checksum", "data_md5"):
            doc.pop(key, None)
        path.write_text(json.dumps(doc, indent=1, sort_keys=True))
    assert all(store.check(u).legacy and store.done(u) for u in imp.units(c))
    code, out, _ = cli(capsys, "status", params(tmp_path, trials=2), "--results", str(tmp_path / "r"))
    assert "complete" in out and f"{len(imp.units(c))} done units were stored before checksums" in out
    assert len(results.summary_table(c, tmp_path / "r")) == len(imp.units(c))
    # what can still be checked is: a legacy table cut at a line end ends before the final iteration
    path = store.metrics_path(Unit(1, 0, "ticket"))
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-2]))
    assert "ends at iteration 20, but its summary's final iteration is 30" in store.check(Unit(1, 0, "ticket")).problem
    final = store.unit_dir(Unit(0, 1, "ticket")) / "final.pt"
    final.write_bytes(final.read_bytes()[:300])  # a legacy tensor cut short: damaged, not a traceback later
    assert f"{final}: cannot be read as a tensor file" in store.check(Unit(0, 1, "ticket")).problem
    messages = []
    executor.run(c, tmp_path / "r", log=messages.append)  # both repaired, with the units trained from them
    assert messages[0].startswith("t: 2 damaged units to train again")
    assert all(store.check(u).state == "done" for u in imp.units(c))
    again = {u for u in imp.units(c) if not store.check(u).legacy}  # trained again: with checksums now
    assert again == {u for u in imp.units(c) if u.trial == 1} | {Unit(0, 1, "ticket")} | {
        u for u in imp.units(c) if u.trial == 0 and u.level == 2 and u.control != "oneshot"}


def test_the_committed_recorded_run_still_loads():
    curves, summary, doc = recorded.load_recorded(REPO / "book" / "recorded" / "lenet_mnist_paper")
    assert doc["digest"] == "44136fa355" and len(summary) == 138 and len(curves)


def test_an_export_carries_checksums_and_a_damaged_copy_is_refused(trained, capsys, tmp_path):
    c, _, _ = trained
    dest = recorded.export(c, tmp_path / "rec", tmp_path / "r")
    listed = dict(line.split("  ")[::-1] for line in (dest / "checksums.sha256").read_text().splitlines())
    assert sorted(listed) == ["config.json", "curves.csv.gz", "masks.zip", "summary.csv"]
    recorded.load_recorded(dest)
    (dest / "summary.csv").write_text((dest / "summary.csv").read_text()[:-40])
    with pytest.raises(DamagedError, match=r"summary.csv: does not match its sha256 .*export it again"):
        recorded.load_recorded(dest)
    code, _, err = cli(capsys, "run", params(tmp_path, trials=2), "--results", str(tmp_path / "fresh"),
                       "--resume-from", str(dest), "--quiet")
    assert code == 2 and "summary.csv" in one_line(err) and not (tmp_path / "fresh").exists()


# --- group 5: a full disk, a read-only results root --------------------------------------------------------

def test_a_full_disk_stops_with_one_line_and_the_run_resumes_identically(tiny, capsys, tmp_path):
    c, args = cfg(trials=2), [params(tmp_path, trials=2), "--results", str(tmp_path / "r"), "--quiet"]
    reference = executor.run(c, tmp_path / "ref", log=quiet)
    real, calls = os.fsync, []

    def filling(fd):  # the disk fills up after a few dozen writes, in the middle of a unit
        calls.append(fd)
        if len(calls) > 40:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    with pytest.MonkeyPatch.context() as full:  # its own, so that freeing the space keeps `tiny`
        full.setattr(files.os, "fsync", filling)
        code, _, err = cli(capsys, "run", *args)
    line = one_line(err)
    assert code == 2 and line.startswith("error: no space left on the disk to write ")
    assert "free some space there" in line and "run the same command again" in line
    store = RunStore(c, tmp_path / "r")
    stored = len(store.units())
    assert 0 < stored < len(imp.units(c))
    assert not list(store.dir.rglob("*.tmp"))  # the failed write left no part behind
    assert cli(capsys, "run", *args)[0] == 0
    assert metrics(store) == metrics(reference)


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_a_read_only_results_root_stops_with_one_line_and_changes_nothing(trained, capsys, tmp_path, monkeypatch,
                                                                          code):
    c, store, _ = trained
    store.discard(Unit(1, 2, "oneshot"))  # something left to train
    root = tmp_path / "r"
    before = contents(root)

    def refused(*a, **k):  # chmod does not stop root, who runs these tests in containers: refuse as EROFS would
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files.tempfile, "mkstemp", refused)
    rc, _, err = cli(capsys, "run", params(tmp_path, trials=2), "--results", str(root), "--quiet")
    line = one_line(err)
    assert rc == 2 and f"cannot write {store.dir}" in line and "make " in line and "--results DIR" in line
    assert contents(root) == before
    rc, out, _ = cli(capsys, "status", params(tmp_path, trials=2), "--results", str(root))  # reading still works
    assert rc == 0 and "1 units missing" in out
    rc, _, err = cli(capsys, "results", params(tmp_path, trials=2), "--results", str(root), "--csv",
                     str(tmp_path / "out" / "c.csv"))
    assert rc == 2 and "cannot write" in one_line(err) and "c.csv" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the monkeypatched test covers it")
def test_a_chmod_read_only_results_root(trained, capsys, tmp_path):
    c, store, _ = trained
    store.discard(Unit(1, 2, "oneshot"))
    for folder in [tmp_path / "r", *(p for p in (tmp_path / "r").rglob("*") if p.is_dir())]:
        folder.chmod(0o555)
    try:
        rc, _, err = cli(capsys, "run", params(tmp_path, trials=2), "--results", str(tmp_path / "r"), "--quiet")
        assert rc == 2 and "cannot write" in one_line(err)
    finally:
        for folder in [tmp_path / "r", *(p for p in (tmp_path / "r").rglob("*") if p.is_dir())]:
            folder.chmod(0o755)
