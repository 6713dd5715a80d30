"""Progress of a chapter's execution, seen from outside the notebook: `make book` runs a chapter in a
papermill kernel whose output it cannot stream, so it watches the run store instead. Every trained network
ends with its summary.json (written last, atomically), so counting those in the experiment's store tells
how many of the chapter's networks are done, whichever process (kernel or worker) trained them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from .. import config
from ..procedures.base import procedure_for
from ..runs.store import RunStore


def _done(folder: Path) -> set[str]:
    return {p.parent.relative_to(folder).as_posix() for p in folder.rglob("summary.json")} if folder.is_dir() else set()


class Watcher:
    """Print one line per network that appears in the store of `cfg` under `root` while the `with` block
    runs (`say` prints), polling every `every` seconds; `.trained` counts them afterwards."""

    def __init__(self, cfg: config.Experiment, root=None, say=print, every: float = 2.0):
        self.folder = RunStore(cfg, root).dir
        self.total = len(procedure_for(cfg).units())
        self.name, self.say, self.every = cfg.experiment, say, every
        self.trained, self._stop = 0, threading.Event()
        self._seen: set[str] = set()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "Watcher":
        self._seen = _done(self.folder)
        self.say(f"{self.name}: {len(self._seen)} of {self.total} networks already in {self.folder}")
        self._start = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._poll()

    def _poll(self) -> None:
        for unit in sorted(_done(self.folder) - self._seen):
            self._seen.add(unit)
            self.trained += 1
            self.say(f"{self.name}: trained {unit} ({len(self._seen)}/{self.total}, "
                     f"{time.time() - self._start:.0f} s)")
