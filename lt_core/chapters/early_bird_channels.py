"""The structured half of the finding-tickets-early chapter (book/early_bird.ipynb): You et al.'s own search,
channel masks from batch-norm scales under an L1 penalty (lt_core/procedures/channel_search.py), read from
its recorded run: where each pruning ratio's mask settled by Early-Bird's rule, how far the settled mask is
from the one at the end, the drawn channel tickets trained, and the paper's three claims scored from them
(`emerge`: eb-emerge; `ticket_claim`: eb-distance and eb-retrain).

The search's summary has one row a trial (control "search", level 0): the dense network's accuracy and
`ratios`, per ratio {ratio, settled_iteration (None if never), iterations (of the recorded masks), matrix
(the distance of every recorded mask to every other, fractions of all channels)}; each trained ticket a row
of its own (control early / end / reinit, level = the ratio's index + 1, with its `ratio`). The schedule and
the rule's window are not in the summary, so `scored` adds them from the run's stored configuration.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..book import scorecard as sc
from ..data.datasets import DATASETS
from ..runs import recorded as recorded_runs
from ..runs.results import listed
from ..sparsity import early_bird

SEARCH = "early_bird_resnet20"  # book/recorded/<name>: ResNet-20 on CIFAR-10, the paper's channel search
SCHEDULE = ("first_lr_drop", "iterations", "epoch_iterations", "settle_window")  # what `scored` adds


def recorded_search(name: str = SEARCH) -> tuple[pd.DataFrame, dict | None]:
    """(summary, stored config) of the committed search, or an empty summary and None where it is absent."""
    rec = recorded_runs.recorded(name)
    return (rec[1], rec[2]["config"]) if rec else (pd.DataFrame(columns=["trial", "level", "control"]), None)


def structured(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of a scoring summary that come from the search's recording (`scored`)."""
    return summary[summary["structured"].eq(True)] if "structured" in summary else summary.iloc[0:0]


def epoch_iterations(config: dict) -> int:
    """Iterations in an epoch of the run's training split (its data set less the validation images)."""
    spec = DATASETS.get(config.get("dataset", ""))
    return (spec.n_train - int(config.get("val_size", 0))) // int(config["batch_size"]) if spec else 0


def scored(search: pd.DataFrame, config: dict | None) -> pd.DataFrame:
    """The search recording's rows (the search and any trained tickets) with the schedule they are judged
    by (SCHEDULE columns) and `structured` set, which tells them from the LeNet run's beside them (whose
    IMP has a control "early" too)."""
    rows = search.copy()
    rows["structured"] = True
    if config is None or rows.empty:
        return rows
    drops = sorted(int(d) for d in config.get("lr_drops") or [])
    rows["first_lr_drop"] = drops[0] if drops else int(config["iterations"])
    rows["iterations"] = int(config["iterations"])
    rows["epoch_iterations"] = epoch_iterations(config)
    rows["settle_window"] = int(config.get("settle_window", 4))
    return rows


def settling(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per trial and ratio of `scored` search rows: where the channel mask settled (iteration, epoch,
    share of training), whether that was before the first learning-rate drop, the settled mask's distance
    to the last recorded one, the threshold above which the rule would fire at all, and the one it would
    have needed to fire before the drop (the rule's window is the run's)."""
    out = []
    for _, r in rows[rows.control == "search"].iterrows():
        per_epoch = float(r.get("epoch_iterations") or 0) or math.nan
        window = int(r.settle_window)
        for entry in listed(r.get("ratios")) or []:
            matrix, steps = entry["matrix"], entry["iterations"]
            at = entry.get("settled_iteration")
            e = steps.index(at) if at is not None else None
            needed = early_bird.window_distances(matrix, window)  # needed[k]: mask k + window's largest
            # a mask recorded at the drop's iteration was trained at the first rate only: steps 0..drop-1
            early = [d for k, d in enumerate(needed) if steps[k + window] <= int(r.first_lr_drop)]
            out.append({"trial": int(r.trial), "ratio": float(entry["ratio"]),
                        "settled_iteration": math.nan if at is None else int(at),
                        "settled_epoch": math.nan if at is None else at / per_epoch,
                        "share": math.nan if at is None else at / float(r.iterations),
                        "before_first_drop": at is not None and at <= int(r.first_lr_drop),
                        "to_last": math.nan if e is None else float(matrix[e][-1]),
                        "fires_above": float(min(needed)) if needed else math.nan,
                        "closest_before_drop": float(min(early)) if early else math.nan,
                        "masks": len(steps)})
    return pd.DataFrame(out, columns=["trial", "ratio", "settled_iteration", "settled_epoch", "share",
                                      "before_first_drop", "to_last", "fires_above", "closest_before_drop",
                                      "masks"])


def settle_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per ratio, over trials: in how many the mask settled, where (mean epoch, share of training), whether
    before the first learning-rate drop, the settled mask's distance to the last one, the threshold the
    rule needs to fire at all, and the one it would have needed to fire before the drop (means)."""
    table = settling(rows)
    if table.empty:
        return pd.DataFrame()
    out = []
    for ratio, part in table.groupby("ratio"):
        fired = part.dropna(subset=["settled_iteration"])
        out.append({"channels removed": f"{ratio:.0%}",
                    "trials settled": f"{len(fired)} of {len(part)}",
                    "settled at (epoch)": round(float(fired.settled_epoch.mean()), 1) if len(fired) else "never",
                    "iteration": round(float(fired.settled_iteration.mean())) if len(fired) else "",
                    "share of training %": round(100 * float(fired.share.mean()), 1) if len(fired) else "",
                    "before the first lr drop": f"{int(part.before_first_drop.sum())} of {len(part)}",
                    "distance to the last mask": round(float(fired.to_last.mean()), 4) if len(fired) else "",
                    "fires for thresholds above": round(float(part.fires_above.mean()), 3),
                    "closest before the drop": round(float(part.closest_before_drop.mean()), 3)})
    return pd.DataFrame(out).set_index("channels removed")


def dense_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per trial of the search: the searched (dense) network's test accuracy at the early stop and at the
    end (%), the early-stop epoch, and its training's cost (seconds, steps a second)."""
    rows = rows[rows.control == "search"]
    if rows.empty:
        return pd.DataFrame()
    per_epoch = rows.epoch_iterations.astype(float).replace(0, math.nan)
    out = pd.DataFrame({"trial": rows.trial.astype(int),
                        "at the early stop": (100 * pd.to_numeric(rows.early_stop_test_accuracy)).round(2),
                        "early-stop epoch": (pd.to_numeric(rows.early_stop_iteration) / per_epoch).round(1),
                        "at the end": (100 * pd.to_numeric(rows.final_test_accuracy)).round(2),
                        "training seconds": pd.to_numeric(rows.seconds).round(0),
                        "steps a second": pd.to_numeric(rows.steps_per_second)})
    return out.set_index("trial")


def channel_matrix(rows: pd.DataFrame, ratio: float, trial: int = 0) -> tuple[np.ndarray, list[int]]:
    """One ratio's distance matrix of trial `trial` and the iterations of its masks (empty where absent)."""
    for _, r in rows[rows.trial == trial].iterrows():
        for entry in listed(r.get("ratios")) or []:
            if math.isclose(float(entry["ratio"]), ratio):
                return np.array(entry["matrix"], dtype=float), [int(i) for i in entry["iterations"]]
    return np.zeros((0, 0)), []


def emerge(summary: pd.DataFrame, curves=None):
    """`eb-emerge` measured: the share of (trial, ratio) whose channel mask settled by the rule while the
    learning rate was still its first, large one; the mean epoch and share of training of each ratio shown."""
    table = settling(summary) if all(c in summary for c in SCHEDULE) else pd.DataFrame()
    if table.empty:
        return sc._missing("the structured search's recorded run (book/recorded/early_bird_resnet20) is not "
                           "in this checkout")
    rows = summary[summary.control == "search"]
    per_ratio = [f"{name} removed: epoch {r['settled at (epoch)']:.1f} ({r['share of training %']:.0f}% of training)"
                 if r["iteration"] != "" else f"{name} removed: never" for name, r in settle_table(rows).iterrows()]
    epochs = float(rows.iterations.iloc[0]) / float(rows.epoch_iterations.iloc[0])
    drop = float(rows.first_lr_drop.iloc[0]) / float(rows.epoch_iterations.iloc[0])
    value = float(table.before_first_drop.mean())
    shown = (f"ResNet-20 on CIFAR-10, {epochs:.0f} epochs (first lr drop at epoch {drop:.0f}), "
             f"{table.trial.nunique()} trial(s): " + "; ".join(per_ratio) +
             f"; {int(table.before_first_drop.sum())} of {len(table)} settled before the first drop, where "
             f"the newest mask came within {table.closest_before_drop.min():.3f} to "
             f"{table.closest_before_drop.max():.3f} of the four before")
    return sc.Measured(value, shown, {"settled": int(table.settled_iteration.notna().sum())}, "{:.0%}")


def emerge_rule(m) -> str:
    return sc.REPRODUCED if m.value == 1 else sc.PARTLY if m.value > 0 else sc.NOT


EMERGE_HOW = ("the share of (trial, pruning ratio) whose channel mask settled by the rule (within 0.1 of each "
              "of the 4 masks before it, one an epoch) while the learning rate was its first, large one (a mask "
              "recorded at the drop's iteration counts): reproduced when "
              "all did, partly when some did, not reproduced when none did; the earliest the rule can fire is "
              "the fifth mask (epoch 5)")


TICKET_NAMES = {"early": "drawn where the rule fired", "end": "drawn at the end", "reinit": "early mask, fresh weights"}
NO_TICKETS = ("the recorded search has no trained channel tickets (`ticket_controls: [early, end]`: two "
              "networks a ratio, each as long as the search)")


def ticket_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per ratio, mean over trials: the trained channel tickets' test accuracy at the early stop (%), each of
    `TICKET_NAMES` that was trained, the early minus the end ticket, where the early mask was drawn, the
    share of the search's iterations after it (what stopping the search there saves), its distance to the
    end mask, and the weights the channel-pruned network keeps (%); the searched dense network's accuracy
    beside them."""
    summary = structured(summary)
    tickets = summary[summary.control.isin(list(TICKET_NAMES))]
    if tickets.empty:
        return pd.DataFrame()
    acc = lambda part: 100 * pd.to_numeric(part.early_stop_test_accuracy)
    searched = summary[(summary.control == "search") & summary.trial.isin(tickets.trial.unique())]
    dense = acc(searched).mean()  # of the trials whose tickets are trained
    out = []
    for ratio, part in tickets.groupby("ratio"):
        row = {"channels removed": f"{ratio:.0%}", "weights kept %": round(100 * float(part.density.mean()), 1),
               "dense (searched) %": round(float(dense), 2)}
        for control, name in TICKET_NAMES.items():
            if (part.control == control).any():
                row[name + " %"] = round(float(acc(part[part.control == control]).mean()), 2)
        early = part[part.control == "early"]
        if len(early):
            drawn = float(pd.to_numeric(early.mask_drawn_iteration).mean())
            row["early drawn at (iteration)"] = round(drawn)
            if "iterations" in early:  # the search's schedule (`scored`): the training the draw saves
                row["search saved by the early draw %"] = round(100 * (1 - drawn / float(early.iterations.max())), 1)
            row["early mask's distance to the end mask"] = round(float(pd.to_numeric(early.distance_to_end_mask).mean()), 4)
        out.append(row)
    table = pd.DataFrame(out).set_index("channels removed")
    early, end = TICKET_NAMES["early"] + " %", TICKET_NAMES["end"] + " %"
    if early in table and end in table:
        table.insert(table.columns.get_loc(end) + 1, "early minus end (pts)", (table[early] - table[end]).round(2))
    return table


def _gaps(summary: pd.DataFrame, against: str) -> pd.Series:
    """Per ratio, the early ticket minus `against` (the end ticket, or "search": the dense network), in
    points, trial by trial then averaged over trials."""
    summary = structured(summary)
    summary = summary.assign(acc=pd.to_numeric(summary.early_stop_test_accuracy))
    early = summary[summary.control == "early"].set_index("trial")
    if early.empty:
        return pd.Series(dtype=float)
    if against == "search":
        base = summary[summary.control == "search"].set_index("trial").acc
        gap = early.acc - base.reindex(early.index).to_numpy()
    else:
        other = summary[summary.control == against].set_index(["trial", "ratio"]).acc
        gap = early.acc - other.reindex(list(zip(early.index, early.ratio))).to_numpy()
    return (100 * gap.groupby(early.ratio.to_numpy()).mean()).dropna()


def searched_ratios(summary: pd.DataFrame) -> list[float]:
    """The pruning ratios the structured search computed masks for (its rows' `ratios`), in order."""
    found = {float(entry["ratio"]) for _, r in structured(summary)[lambda s: s.control == "search"].iterrows()
             for entry in listed(r.get("ratios")) or []}
    return sorted(found)


def ticket_claim(against: str, what: str):
    """A measure of the trained early ticket against `against` at every ratio whose tickets are trained: the
    smallest gap (pts); the ratios searched whose tickets are not trained are named as not measured."""
    def measure(summary: pd.DataFrame, curves=None):
        gaps = _gaps(summary, against)
        if gaps.empty:
            return sc._missing(NO_TICKETS)
        shown = "; ".join(f"{r:.0%} removed {g:+.2f} pts" for r, g in gaps.items())
        untrained = [r for r in searched_ratios(summary) if not any(math.isclose(r, g) for g in gaps.index)]
        if untrained:
            shown += "; " + ", ".join(f"{r:.0%}" for r in untrained) + " removed: not trained, so not measured"
        trials = int(structured(summary)[lambda s: s.control == "early"].trial.nunique())
        return sc.Measured(float(gaps.min()), f"the early ticket minus {what}: {shown} ({trials} trial"
                                              f"{'s' * (trials != 1)})",
                           {"held": int((gaps >= -sc.HOLD).sum()), "ratios": len(gaps),
                            "untrained": len(untrained)}, "{:+.2f}")
    return measure


def ticket_rule(m) -> str:
    """Reproduced when the early ticket is within HOLD points below (or above) at every ratio searched, partly
    at some, or at every one trained while a ratio searched is not trained (not measured there)."""
    if m.parts["held"] == m.parts["ratios"]:
        return sc.PARTLY if m.parts.get("untrained") else sc.REPRODUCED
    return sc.PARTLY if m.parts["held"] else sc.NOT


def describe(summary, stored):
    """The recorded-run table's own columns for the search (lt_core/book/report.recorded_runs_table)."""
    ratios = " / ".join(f"{r:g}" for r in stored["ratios"])
    tickets = summary[summary.control != "search"]
    trained = (f"; tickets {', '.join(stored['ticket_controls'])} trained at "
               f"{', '.join(f'{r:.0%}' for r in sorted(tickets.ratio.unique()))} removed" if len(tickets) else "")
    return summary, {"what": f"channel search: L1 {stored['bn_l1']:g} on the batch-norm scales, channel masks "
                             f"of ratios {ratios} every {stored['mask_every']} steps{trained}",
                     "levels": "dense" + (" + tickets" if len(tickets) else ""),
                     "steps": f"{int(stored['iterations']):,}"}, ""
