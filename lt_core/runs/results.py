"""Tidy tables from the run store: every evaluation (`curves`), every unit (`summary`), what is done (`status`).

`curves`: one row per evaluation — experiment, trial, level, density, control, draw, iteration, split,
loss, accuracy. `summary`: one row per unit — the same keys plus early_stop_iteration (iteration of
minimum validation loss), early_stop_val_loss, early_stop_test_accuracy, final_iteration,
final_test_accuracy, and the provenance fields (code_version, device, seconds, data_md5, ...).

Every table is built from verified files only (lt_core/runs/store.py): a damaged unit raises DamagedError,
naming the file, instead of giving a table with rows missing or numbers cut short. `status` counts done,
damaged and missing units; `unit_states` says which are damaged and why. `whole_trials` keeps the trials
of a summary that are complete as far as its fullest one goes.

The small committed copies of long runs are lt_core/runs/recorded.py's.
"""

from __future__ import annotations

import ast
import io
import math

import numpy as np
import pandas as pd

from ..config import Experiment
from ..procedures.base import Unit, procedure_for
from .store import STORE_KEYS, RunStore, State

KEYS = ["experiment", "trial", "level", "density", "control", "draw"]
SUMMARY = KEYS + ["early_stop_iteration", "early_stop_val_loss", "early_stop_test_accuracy",
                  "final_iteration", "final_test_accuracy"]


def listed(value):
    """A list cell of a summary (masks' distances, a search's ratios): as summary.json stores it, or as
    summary.csv writes it (its repr); None for an empty cell."""
    if isinstance(value, str):
        return ast.literal_eval(value)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def whole_trials(summary: pd.DataFrame) -> pd.DataFrame:
    """The trials of one run that hold as many networks as its fullest trial: a recording of a run stopped
    mid-trial keeps that trial's networks (it resumes from them), but its figures and verdicts would mix
    levels measured over different trials."""
    if summary.empty:
        return summary
    counts = summary.groupby("trial").size()
    return summary[summary.trial.isin(counts[counts == counts.max()].index)]


def summary_table(cfg: Experiment, root=None) -> pd.DataFrame:
    store = RunStore(cfg, root)
    rows = [dict(s, experiment=cfg.experiment) for s in store.summaries()]
    if not rows:
        return pd.DataFrame(columns=SUMMARY)
    table = pd.DataFrame(rows).drop(columns=["layer_densities", *STORE_KEYS], errors="ignore")
    ordered = SUMMARY + [c for c in table.columns if c not in SUMMARY]
    return table[ordered].sort_values(["trial", "level", "control", "draw"]).reset_index(drop=True)


def curves_table(cfg: Experiment, root=None) -> pd.DataFrame:
    store = RunStore(cfg, root)
    parts = []
    for unit, s in store.units():
        frame = pd.read_csv(io.StringIO(store.read_metrics(unit, s)))
        parts.append(frame.assign(experiment=cfg.experiment, trial=unit.trial, level=unit.level,
                                  density=s["density"], control=unit.control, draw=unit.draw))
    columns = KEYS + ["iteration", "split", "loss", "accuracy"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def load(cfg: Experiment, root=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, summary) of every finished unit of `cfg`."""
    return curves_table(cfg, root), summary_table(cfg, root)


def unit_states(cfg: Experiment, root=None) -> dict[Unit, State]:
    """Every planned unit of `cfg` -> done, missing or damaged (with the file and why), in units() order."""
    store = RunStore(cfg, root)
    return {u: store.check(u) for u in procedure_for(cfg).units()}


def status(cfg: Experiment, root=None, states: dict[Unit, State] | None = None) -> pd.DataFrame:
    """Done, damaged and missing units per trial and control (`states`: unit_states, if computed already)."""
    states = unit_states(cfg, root) if states is None else states
    rows = [{"trial": u.trial, "control": u.control, "done": st.state == "done", "damaged": st.state == "damaged"}
            for u, st in states.items()]
    if not rows:
        return pd.DataFrame(columns=["trial", "control", "done", "damaged", "missing", "planned"])
    table = pd.DataFrame(rows).groupby(["trial", "control"]).agg(
        done=("done", "sum"), damaged=("damaged", "sum"), planned=("done", "count")).reset_index()
    return table.assign(missing=lambda t: t.planned - t.done - t.damaged)[
        ["trial", "control", "done", "damaged", "missing", "planned"]]


def first_layer_masks(cfg: Experiment, root=None, trial: int = 0, control: str = "ticket") -> dict[float, np.ndarray]:
    """density -> the first prunable tensor's mask (LeNet: 300 x 784) of each stored unit of `control` in
    `trial`, for mask pictures."""
    return {summary["density"]: mask for unit, (mask, summary) in first_layers(cfg, root).items()
            if unit.trial == trial and unit.control == control}


def first_layers(cfg: Experiment, root=None) -> dict[Unit, tuple[np.ndarray, dict]]:
    """Unit -> (its mask of the first prunable tensor, its summary) for every finished unit of `cfg` that
    stored a mask."""
    store, out = RunStore(cfg, root), {}
    for unit in procedure_for(cfg).units():
        if store.done(unit) and store.has(unit, "mask"):
            mask = store.load_tensor(unit, "mask")
            out[unit] = (next(iter(mask.values())).numpy().astype(bool), store.summary(unit))
    return out
