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
import datetime as dt
import functools
import io
import json
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__
from .config import Experiment

REPO = Path(__file__).resolve().parent.parent


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


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the code (with '+dirty' when the working tree differs), else the package version."""
    try:
        run = lambda *args: subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                           check=True, timeout=10).stdout.strip()
        commit = run("rev-parse", "--short=12", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no", "--", "lt_core")
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return f"lt_core {__version__}"


@functools.lru_cache(maxsize=1)
def cpu_kind() -> str:
    """The CPU's model name and the vector instructions torch's kernels use on it (AVX2, AVX512, ...). Two
    machines of different kinds sum in different orders (MKL, oneDNN and fbgemm pick their code by
    instruction set), so the same run gives numbers that differ in the last digits: recorded with every
    unit, it says which kind of machine a table's numbers come from."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name} ({torch.backends.cpu.get_cpu_capability()})"


def provenance(device: str) -> dict:
    return {"code_version": code_version(), "lt_core": __version__, "torch": torch.__version__,
            "device": device, "machine": f"{platform.machine()} {platform.node()}", "cpu": cpu_kind(),
            "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


@dataclass(frozen=True, order=True)
class Unit:
    """One trained network of an experiment."""
    trial: int
    level: int
    control: str
    draw: int = 0

    @property
    def path(self) -> str:
        leaf = f"reinit_{self.draw}" if self.control == "reinit" else self.control
        return f"trial_{self.trial:02d}/level_{self.level:02d}/{leaf}"


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

    def save_unit(self, unit: Unit, rows, summary: dict, tensors: dict[str, object]) -> None:
        """Tensors and metrics first, summary.json last (the 'done' mark)."""
        folder = self.unit_dir(unit)
        for name, obj in tensors.items():
            atomic_write(folder / f"{name}.pt", tensor_bytes(obj))
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["iteration", "split", "loss", "accuracy"])
        writer.writerows((i, s, repr(loss), repr(acc)) for i, s, loss, acc in rows)
        atomic_write(folder / "metrics.csv", text.getvalue())
        atomic_write(folder / "summary.json", json.dumps(summary, indent=1, sort_keys=True))

    def load_tensor(self, unit: Unit, name: str):
        return torch.load(self.unit_dir(unit) / f"{name}.pt", map_location="cpu", weights_only=True)

    def save_trial_tensor(self, trial: int, name: str, obj) -> None:
        atomic_write(self.dir / f"trial_{trial:02d}" / f"{name}.pt", tensor_bytes(obj))

    def load_trial_tensor(self, trial: int, name: str):
        return torch.load(self.dir / f"trial_{trial:02d}" / f"{name}.pt", map_location="cpu", weights_only=True)

    def summaries(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.dir.glob("trial_*/level_*/*/summary.json"))]

    def metrics_path(self, unit: Unit) -> Path:
        return self.unit_dir(unit) / "metrics.csv"
