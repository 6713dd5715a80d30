"""Tidy tables from the run store: every evaluation (`curves`), every unit (`summary`), what is done (`status`).

`curves`: one row per evaluation — experiment, trial, level, density, control, draw, iteration, split,
loss, accuracy. `summary`: one row per unit — the same keys plus early_stop_iteration (iteration of
minimum validation loss), early_stop_val_loss, early_stop_test_accuracy, final_iteration,
final_test_accuracy, and the provenance fields (code_version, device, seconds, ...).

The small committed copies of long runs are lt_core/runs/recorded.py's.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..config import Experiment
from ..procedures.base import Unit, procedure_for
from .store import RunStore

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
    rows = [{"trial": u.trial, "control": u.control, "done": store.done(u)} for u in procedure_for(cfg).units()]
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
