"""Tidy tables from the run store, and the small recorded copies of long runs that the book commits.

`curves`: one row per evaluation — experiment, trial, level, density, control, draw, iteration, split,
loss, accuracy. `summary`: one row per unit — the same keys plus early_stop_iteration (iteration of
minimum validation loss), early_stop_val_loss, early_stop_test_accuracy, final_iteration,
final_test_accuracy, and the provenance fields (code_version, device, seconds, ...).

A recorded run (`export`) is a folder with config.json, summary.csv and curves.csv.gz: no weights, a few
hundred KB, with the code version, machine and date of every unit inside summary.csv.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .config import Experiment
from .lottery import units
from .store import REPO, RunStore, Unit, atomic_write

KEYS = ["experiment", "trial", "level", "density", "control", "draw"]
SUMMARY = KEYS + ["early_stop_iteration", "early_stop_val_loss", "early_stop_test_accuracy",
                  "final_iteration", "final_test_accuracy"]


def summary_table(cfg: Experiment, root=None) -> pd.DataFrame:
    store = RunStore(cfg, root)
    rows = [dict(s, experiment=cfg.experiment) for s in store.summaries()]
    if not rows:
        return pd.DataFrame(columns=SUMMARY)
    table = pd.DataFrame(rows).drop(columns=["layer_densities"], errors="ignore")
    ordered = SUMMARY + [c for c in table.columns if c not in SUMMARY]
    return table[ordered].sort_values(["trial", "level", "control", "draw"]).reset_index(drop=True)


def curves_table(cfg: Experiment, root=None) -> pd.DataFrame:
    store = RunStore(cfg, root)
    parts = []
    for s in store.summaries():
        unit = Unit(s["trial"], s["level"], s["control"], s["draw"])
        frame = pd.read_csv(store.metrics_path(unit))
        parts.append(frame.assign(experiment=cfg.experiment, trial=unit.trial, level=unit.level,
                                  density=s["density"], control=unit.control, draw=unit.draw))
    columns = KEYS + ["iteration", "split", "loss", "accuracy"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def load(cfg: Experiment, root=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, summary) of every finished unit of `cfg`."""
    return curves_table(cfg, root), summary_table(cfg, root)


def status(cfg: Experiment, root=None) -> pd.DataFrame:
    """Done and missing units per trial and control."""
    store = RunStore(cfg, root)
    rows = [{"trial": u.trial, "control": u.control, "done": store.done(u)} for u in units(cfg)]
    if not rows:
        return pd.DataFrame(columns=["trial", "control", "done", "missing"])
    table = pd.DataFrame(rows).groupby(["trial", "control"])["done"].agg(["sum", "count"]).reset_index()
    return table.rename(columns={"sum": "done", "count": "planned"}).assign(
        missing=lambda t: t.planned - t.done)


def first_layer_masks(cfg: Experiment, root=None, trial: int = 0) -> dict[float, np.ndarray]:
    """density -> the ticket's mask of the first prunable tensor (LeNet: 300 x 784), for mask pictures."""
    store = RunStore(cfg, root)
    out = {}
    for level in range(cfg.levels + 1):
        unit = Unit(trial, level, "ticket")
        if store.done(unit):
            mask = store.load_tensor(unit, "mask")
            first = next(iter(mask.values()))
            density = json.loads((store.unit_dir(unit) / "summary.json").read_text())["density"]
            out[density] = first.numpy().astype(bool)
    return out


def export(cfg: Experiment, dest: str | Path, root=None, every: int = 1) -> Path:
    """Write the small, committable copy of a run: config, summary, curves (every `every`-th evaluation)."""
    dest = Path(dest)
    curves, summary = load(cfg, root)
    if every > 1:
        keep = (curves.iteration % (every * cfg.eval_every) == 0) | (curves.iteration == cfg.iterations)
        curves = curves[keep]
    doc = {"digest": cfg.digest(), "config": cfg.to_dict()}
    atomic_write(dest / "config.json", json.dumps(doc, indent=1, sort_keys=True))
    atomic_write(dest / "summary.csv", summary.to_csv(index=False))
    atomic_write(dest / "curves.csv.gz", _gzip_csv(curves))
    return dest


def _gzip_csv(frame: pd.DataFrame) -> bytes:
    """Five significant digits, and mtime 0 so the same table gives the same bytes."""
    return gzip.compress(frame.to_csv(index=False, float_format="%.5g").encode(), mtime=0)


def load_recorded(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(curves, summary, config document) of a recorded run written by `export`."""
    folder = Path(folder)
    if not (folder / "summary.csv").exists():
        raise FileNotFoundError(f"no recorded run in {folder} (expected summary.csv, curves.csv.gz, config.json)")
    doc = json.loads((folder / "config.json").read_text())
    return pd.read_csv(folder / "curves.csv.gz"), pd.read_csv(folder / "summary.csv"), doc


def recorded(name: str, folder: str | Path | None = None):
    """(curves, summary, config document) of book/recorded/<name>, or None when it is not there."""
    path = Path(folder) if folder else REPO / "book" / "recorded" / name
    return load_recorded(path) if (path / "summary.csv").exists() else None


def describe_recorded(summary: pd.DataFrame, doc: dict) -> str:
    """What a recorded run covers, next to what its configuration asks for."""
    cfg = doc["config"]
    per_control = summary.groupby("control").size().to_dict()
    versions = sorted(summary.code_version.dropna().unique()) if "code_version" in summary else []
    lines = [f"run {doc['digest']}: {cfg['iterations']} iterations per network, batch {cfg['batch_size']}, "
             f"{cfg['optimizer']} lr {cfg['lr']}, evaluation every {cfg['eval_every']}",
             f"trials present: {sorted(int(t) for t in summary.trial.unique())} (of {cfg['trials']} asked); levels 0-"
             f"{summary.level.max()} (of {cfg['levels']}), lowest density {100 * summary.density.min():.1f}%",
             "networks per control: " + ", ".join(f"{k} {v}" for k, v in sorted(per_control.items())),
             f"code versions: {', '.join(versions)}; finished {summary.finished.min()} .. {summary.finished.max()}"]
    return "\n".join(lines)
