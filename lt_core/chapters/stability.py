"""Tables of the late-resetting chapter's stability measures (issue 15), read from IMP summaries with
twins, barriers and the stability distance (lt_core/procedures/imp.py, rewind_schedule continue):

- `barriers`: per trial, level and twin draw, the error barrier between the ticket and its twin (Frankle et al.
  2020's instability: the path's highest test error less the mean of its ends, in points), whether it is
  under the paper's 2 points, and the two copies' distance relative to the ticket's norm on the survivors;
- `path`: the test error at each alpha of one level's path (the chapter's slider);
- `pruning_stability`: per level and control, the distance of the trained weights to the trained dense
  network's on the survivors, relative to the dense weights' norm there (Frankle et al. 2019), beside the
  test accuracy at the early stop.
Each takes one run's summary (one rewind_iteration k); the chapter sets runs of several k side by side.
"""
from __future__ import annotations

import pandas as pd

from ..runs.results import listed

ACC = "early_stop_test_accuracy"
STABLE_POINTS = 2.0  # Frankle et al. 2020: a network is stable when its error barrier is under 2 points


def _level(summary: pd.DataFrame, control: str) -> pd.DataFrame:
    return summary[summary.control == control].set_index(["trial", "level"])


def barriers(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per barrier unit: density, k (where its twin started), barrier in points, stable, the copies'
    final test accuracy (%) and their distance relative to the ticket's weights."""
    columns = ["trial", "level", "draw", "density %", "k", "error barrier (points)", "stable", "ticket %",
               "twin %", "copies' distance / norm"]
    cut = summary[summary.control == "barrier"].set_index(["trial", "level", "draw"])
    if cut.empty:
        return pd.DataFrame(columns=columns)
    tickets = _level(summary, "ticket")
    twins = summary[summary.control == "twin"].set_index(["trial", "level", "draw"]).reindex(cut.index)
    ticket_acc = tickets.final_test_accuracy.reindex(cut.index.droplevel("draw"))
    out = pd.DataFrame({
        "density %": 100 * cut.density,
        "k": twins.start_iteration.astype(int),
        "error barrier (points)": 100 * cut.error_barrier.astype(float),
        "ticket %": 100 * ticket_acc.to_numpy(),
        "twin %": 100 * twins.final_test_accuracy,
        "copies' distance / norm": cut.copies_distance.astype(float) / cut.copies_norm.astype(float),
    }, index=cut.index)
    out.insert(3, "stable", out["error barrier (points)"] < STABLE_POINTS)
    return out.reset_index().sort_values(["trial", "level", "k"]).reset_index(drop=True)[columns]


def path(summary: pd.DataFrame, level: int, trial: int = 0, draw: int = 0) -> pd.DataFrame:
    """alpha and test error (%) along one level's path from the ticket (alpha 0) to its twin (alpha 1)."""
    row = summary[(summary.control == "barrier") & (summary.level == level) & (summary.trial == trial)
                  & (summary.draw == draw)]
    if row.empty:
        raise KeyError(f"no barrier unit at trial {trial}, level {level}; levels with one: "
                       f"{sorted(int(v) for v in summary[summary.control == 'barrier'].level.unique())}")
    row = row.iloc[0]
    return pd.DataFrame({"alpha": listed(row.alphas), "test error %": [100 * e for e in listed(row.path_test_errors)]})


def pruning_stability(summary: pd.DataFrame) -> pd.DataFrame:
    """Per trial, level and trained control of level >= 1: density, relative distance to the trained dense
    network on the survivors, and test accuracy at the early stop (%)."""
    cut = summary[(summary.level > 0) & (summary.control != "barrier")]
    if "stability_distance" not in cut:
        raise KeyError("this run records no stability distance: run it with stability_distance true")
    out = cut[["trial", "level", "control"]].copy()
    out["density %"] = 100 * cut.density
    out["distance / norm"] = cut.stability_distance.astype(float) / cut.stability_norm.astype(float)
    out["accuracy %"] = 100 * cut[ACC]
    return out.sort_values(["trial", "level", "control"]).reset_index(drop=True)
