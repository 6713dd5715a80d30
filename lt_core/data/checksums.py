"""The data sets' checksums, and the check `datasets.load` makes before anything trains on a data set.

data/checksums.md5 (md5sum format, paths relative to the data root) is the single source of truth. `load`
verifies every file of a data set against it (`verify_files`); the md5 of each file is cached in
`<data root>/.verified.json` under the file's size and modification time (written atomically), so the second
load costs a `stat` per file, not a read. A file changed in place keeps neither its mtime nor (usually) its
size, so the cache does not hide it; a copy made to look the same (`touch -r`) would, and `data verify` reads
every byte.

What a process trained on is recorded with every unit it stores (`trained_on`: the md5 of the data set's
lines of data/checksums.md5, reproducible as `grep '  mnist/' data/checksums.md5 | md5sum`), so that the run
store can tell a unit trained on other data (its digest is not `listed_digest` now) from one trained on these.

DataError lives here, the lowest module of the wing, and is re-exported by datasets.
"""

from __future__ import annotations

import hashlib
import json
import pathlib

from ..provenance import REPO
from .files import StorageError, atomic_write

CHECKSUMS_FILE = REPO / "data" / "checksums.md5"
CACHE = ".verified.json"
_TRAINED_ON: dict[str, str | None] = {}  # data set -> listed_digest of the files this process's load verified


class DataError(Exception):
    """A dataset is missing, truncated or corrupt; the message names the fix."""


def fix_command(name: str) -> str:
    return f"python -m lt_core data fetch {name}"


def _lines() -> list[tuple[str, str]]:
    """(md5, path relative to the data root) of every line of data/checksums.md5, in the file's order."""
    out = []
    for line in CHECKSUMS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            md5, rel = line.split(maxsplit=1)
            out.append((md5, rel.lstrip("*")))
    return out


def listed() -> dict[str, str]:
    """{path relative to the data root: md5} from data/checksums.md5."""
    return {rel: md5 for md5, rel in _lines()}


def listed_digest(own_dir: str) -> str | None:
    """md5 of the lines of data/checksums.md5 under `own_dir` (a data set's folder in our layout), or None
    when it lists none there or cannot be read."""
    try:
        own = [f"{md5}  {rel}\n" for md5, rel in _lines() if rel.startswith(own_dir + "/")]
    except OSError:
        return None
    return hashlib.md5("".join(own).encode()).hexdigest() if own else None


def trained_on(name: str) -> str | None:
    """The listed digest of data set `name` as this process's `load` verified it, or None when this process
    has not loaded it from its files (a test that hands the engine tensors in memory)."""
    return _TRAINED_ON.get(name)


def md5_file(path: pathlib.Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_cache(path: pathlib.Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: verify again
        return {}
    return doc if isinstance(doc, dict) else {}


def verify_files(name: str, expected: dict[pathlib.Path, str], root: pathlib.Path, digest: str | None) -> None:
    """Raise DataError (naming the file and the fetch command) unless every file in `expected` (path -> md5
    from data/checksums.md5) has that md5; then remember that this process trains data set `name` on files
    whose listed digest is `digest`."""
    cache_path = root / CACHE
    cache, changed = _read_cache(cache_path), False
    for path, want in expected.items():
        st = path.stat()
        key = str(path.relative_to(root))
        seen = cache.get(key)
        if isinstance(seen, dict) and seen == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "md5": want}:
            continue
        got = md5_file(path)
        if got != want:
            raise DataError(f"{path}: md5 {got}, but data/checksums.md5 lists {want} (corrupt, or another "
                            f"version of the file); nothing was trained. Replace it with `{fix_command(name)}`")
        cache[key], changed = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "md5": got}, True
    if changed:
        try:
            atomic_write(cache_path, json.dumps(cache, indent=1, sort_keys=True))
        except (StorageError, OSError):  # a read-only data root: the check held; only the next one reads the files again
            pass
    _TRAINED_ON[name] = digest
