"""Writing files so that nothing is ever half-written, and saying in one line why a write failed.

Used by the data fetcher and by the run store (lt_core/runs/store.py), which is why it lives in the lowest wing
that writes files.

- `atomic_write`: a temporary file in the target's folder, fsync, rename over the target, fsync of the folder.
  A reader sees the old file or the whole new one, never a part. The temporary file's name carries the id of
  the writing process (`.<name>.<pid>.<random><suffix>`), so that `clean_temporaries` can remove the ones
  whose writer was killed without touching a write in flight in another process.
- `writing(path)`: turns a full disk (ENOSPC, EDQUOT) or a folder that cannot be written (EROFS, EACCES,
  EPERM) into a `StorageError` whose one line names the path and what to do. Whatever was stored before stays
  as it was (every write is atomic), so the same command resumes once the disk has room.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

FULL = {errno.ENOSPC, errno.EDQUOT}
NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}
UNCLAIMED_AGE = 3600  # seconds after which a temporary file without a writer id (older code) is removed


class StorageError(Exception):
    """A write failed because the disk is full or the folder cannot be written; the message says what to do."""


def _existing_folder(path: Path) -> Path:
    """The nearest folder above `path` that exists: the one that has to become writable."""
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


@contextlib.contextmanager
def writing(path: Path):
    """Run a write of `path`; a full disk or a read-only folder becomes one StorageError line."""
    try:
        yield
    except OSError as error:
        if error.errno in FULL:
            raise StorageError(
                f"no space left on the disk to write {path}: free some space there (or write somewhere else, "
                f"e.g. `--results DIR` for runs) and run the same command again; what was stored before is "
                f"kept, and the run resumes where it stopped") from error
        if error.errno in NOT_WRITABLE:
            raise StorageError(
                f"cannot write {path} ({os.strerror(error.errno)}): make {_existing_folder(Path(path))} writable "
                f"or write somewhere else (`--results DIR` or LT_RESULTS for runs); nothing stored was "
                f"changed") from error
        raise


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (the new name survives a power cut, not only the bytes)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str, *, suffix: str = ".tmp",
                 check: Callable[[Path], None] | None = None) -> None:
    """Write `data` so that `path` either keeps its old content or has the whole new one. `check(tmp)` may
    look at the written temporary file before it takes the name, and raise to refuse it."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())  # the bytes are on disk before the name points at them
            if check is not None:
                check(Path(tmp))
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):  # on a read-only or full disk the unlink may fail too
                Path(tmp).unlink(missing_ok=True)
            raise
        fsync_folder(path.parent)


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (signal 0 tests without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a live process of another user
        return True
    return True


def _writer_alive(name: str, suffix: str, mtime: float) -> bool:
    """Whether the process that writes the temporary file `name` may still be writing it."""
    parts = name[:-len(suffix)].rsplit(".", 2)  # .<target name>.<pid>.<random>
    try:
        pid = int(parts[1])
    except (IndexError, ValueError):  # no writer id (older code): give it an hour
        return time.time() - mtime < UNCLAIMED_AGE
    return process_alive(pid)


def clean_temporaries(folder: Path, suffix: str = ".tmp") -> list[Path]:
    """Remove the temporary files (`.*<suffix>`) under `folder` that killed writes left; return them. A
    write in flight in a live process is left alone (its name carries that process's id)."""
    removed = []
    for tmp in sorted(Path(folder).rglob(f".*{suffix}")):
        try:
            stale = tmp.is_file() and not _writer_alive(tmp.name, suffix, tmp.stat().st_mtime)
        except FileNotFoundError:  # its writer renamed it just now
            continue
        if stale:
            with writing(tmp):
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
