"""The run store: one folder per experiment configuration, one sub-folder per trained network ("unit").

    <results root>/<experiment>-<digest>/
        config.json                      the full configuration and the digest that names the folder
        trial_00/rewind.pt               theta_k of the trial (late resetting only)
        trial_00/level_03/ticket/        metrics.csv, mask.pt, final.pt, summary.json
        trial_00/level_03/reinit_1/      (draw 1 of the reinit control) ...

Every file is written atomically (temporary file in the same folder, then rename), and `summary.json` is
written last: a unit is done exactly when its summary exists, so a run killed at any moment resumes by
redoing at most the unit it was in. The results root is `results/` in the repository, or LT_RESULTS, or
an explicit `root` (the command line's --results).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import torch

from ..config import Experiment
from ..procedures.base import Unit
from ..provenance import REPO

def results_root(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get("LT_RESULTS") or REPO / "results")


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write `data` so that `path` either keeps its old content or has the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def tensor_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class RunStore:
    def __init__(self, cfg: Experiment, root: str | Path | None = None):
        self.cfg = cfg
        self.dir = results_root(root) / f"{cfg.experiment}-{cfg.digest()}"

    def write_config(self) -> None:
        doc = {"digest": self.cfg.digest(), "identity": {k: v for k, v in self.cfg.changed().items()},
               "config": self.cfg.to_dict()}
        atomic_write(self.dir / "config.json", json.dumps(doc, indent=1, sort_keys=True))

    def unit_dir(self, unit: Unit) -> Path:
        return self.dir / unit.path

    def done(self, unit: Unit) -> bool:
        return (self.unit_dir(unit) / "summary.json").exists()

    def has(self, unit: Unit, name: str) -> bool:
        """Whether the unit's tensor `name` is stored (a unit being trained, or one that `recorded.resume`
        gave its recorded mask to train again, has its mask before its summary)."""
        return (self.unit_dir(unit) / f"{name}.pt").exists()

    def save_unit(self, unit: Unit, rows, summary: dict, tensors: dict[str, object]) -> None:
        """Tensors and metrics first, summary.json last (the 'done' mark)."""
        for name, obj in tensors.items():
            self.save_tensor(unit, name, obj)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["iteration", "split", "loss", "accuracy"])
        writer.writerows((i, s, repr(loss), repr(acc)) for i, s, loss, acc in rows)
        atomic_write(self.unit_dir(unit) / "metrics.csv", text.getvalue())
        atomic_write(self.unit_dir(unit) / "summary.json", json.dumps(summary, indent=1, sort_keys=True))

    def load_tensor(self, unit: Unit, name: str):
        return torch.load(self.unit_dir(unit) / f"{name}.pt", map_location="cpu", weights_only=True)

    def save_tensor(self, unit: Unit, name: str, obj) -> None:
        atomic_write(self.unit_dir(unit) / f"{name}.pt", tensor_bytes(obj))

    def save_trial_tensor(self, trial: int, name: str, obj) -> None:
        atomic_write(self.dir / f"trial_{trial:02d}" / f"{name}.pt", tensor_bytes(obj))

    def load_trial_tensor(self, trial: int, name: str):
        return torch.load(self.dir / f"trial_{trial:02d}" / f"{name}.pt", map_location="cpu", weights_only=True)

    def summaries(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.dir.glob("trial_*/level_*/*/summary.json"))]

    def metrics_path(self, unit: Unit) -> Path:
        return self.unit_dir(unit) / "metrics.csv"
