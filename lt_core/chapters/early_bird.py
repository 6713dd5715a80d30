"""The finding-tickets-early chapter (book/early_bird.ipynb): when does IMP's magnitude mask settle while a
ticket trains, and does a ticket drawn then train as well as the one drawn at the end? The unstructured
analogue of You et al.'s Early-Bird tickets (2020), ours; their structured search is read from its own
recorded run by lt_core/chapters/early_bird_channels.py.

The chapter reads one IMP summary (lt_core/procedures/imp.py) with mask trajectories (mask_every):
- each ticket of level l carries the trajectory of the mask level l+1 will prune to: `mask_distances`
  ([iteration, distance to the mask before, distance to the final one] per recorded mask),
  `mask_distance_matrix` (every recorded mask against every other) and `mask_settled_iteration`
  (Early-Bird's rule, None where it never settled);
- control `early` at level l trains a mask of the level-(l-1) ticket's trajectory from theta_0, as the
  ticket is: draw 0 the one at which it settled (its end where it never did), draw d the one at
  early_draws[d-1]; each with `mask_drawn_iteration` and `distance_to_final_mask` (to the ticket's mask).
Accuracy is test accuracy at the early stop (minimum validation loss), the book's convention.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..book import scorecard as sc
from ..runs import recorded as recorded_runs
from ..runs.results import listed
from ..sparsity import early_bird
from . import early_bird_channels as channels

RECORDED = "early_bird_lenet"  # book/recorded/<name>: LeNet-300-100 on MNIST, Frankle & Carbin's IMP
REWOUND = "early_bird_lenet_rewind"  # the same IMP (profile rewind), every network rewound to theta_k
ACC = "early_stop_test_accuracy"
END, SETTLED = "end", "settled"  # the two draws every level has: the ticket (drawn at the end), draw 0


def _numeric(summary: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(summary[column], errors="coerce") if column in summary else pd.Series(np.nan, summary.index)


def trajectories(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per recorded mask of every ticket's trajectory: trial, level (of the mask: the ticket's level
    + 1), density (of that level), iteration, to_previous, to_final (fractions of positions)."""
    tickets = summary[summary.control == "ticket"]
    densities = tickets.groupby("level").density.mean()
    rows = []
    for _, t in tickets.iterrows():
        for iteration, previous, final in listed(t.get("mask_distances")) or []:
            rows.append({"trial": int(t.trial), "level": int(t.level) + 1,
                         "density": densities.get(int(t.level) + 1, math.nan), "iteration": int(iteration),
                         "to_previous": math.nan if previous is None else previous, "to_final": final})
    return pd.DataFrame(rows, columns=["trial", "level", "density", "iteration", "to_previous", "to_final"])


def trajectory_matrix(summary: pd.DataFrame, level: int, trial: int = 0) -> tuple[np.ndarray, list[int]]:
    """The pairwise distance matrix of the masks recorded while the level-(`level`-1) ticket trained (the
    masks of `level`), and their iterations; an empty matrix where that ticket has none."""
    rows = summary[(summary.control == "ticket") & (summary.level == level - 1) & (summary.trial == trial)]
    if rows.empty or listed(rows.iloc[0].get("mask_distance_matrix")) is None:
        return np.zeros((0, 0)), []
    row = rows.iloc[0]
    return np.array(listed(row.mask_distance_matrix), dtype=float), [int(d[0]) for d in listed(row.mask_distances)]


def draws(summary: pd.DataFrame) -> pd.DataFrame:
    """The tickets drawn at each level, one row per network: trial, level, density, draw (END for the ticket,
    SETTLED for early draw 0, else 'iteration N'), drawn_at (iteration of the previous level's training at
    which its mask was drawn), settled (draw 0: whether the rule fired), to_final, accuracy, seconds."""
    levels = sorted(summary[summary.control == "early"].level.unique())
    iterations = int(summary.final_iteration.max()) if "final_iteration" in summary and len(summary) else 0
    out = []
    for _, r in summary[summary.level.isin(levels) & summary.control.isin(["ticket", "early"])].iterrows():
        if r.control == "ticket":
            name, at, settled, far = END, iterations, math.nan, 0.0
        else:
            at = int(r.mask_drawn_iteration)
            name = SETTLED if int(r.draw) == 0 else f"iteration {at:,}"
            settled, far = bool(r.mask_settled) if int(r.draw) == 0 else math.nan, float(r.distance_to_final_mask)
        out.append({"trial": int(r.trial), "level": int(r.level), "density": float(r.density), "draw": name,
                    "drawn_at": at, "settled": settled, "to_final": far,
                    "accuracy": pd.to_numeric(r[ACC], errors="coerce"), "seconds": float(r.seconds)})
    return pd.DataFrame(out, columns=["trial", "level", "density", "draw", "drawn_at", "settled", "to_final",
                                      "accuracy", "seconds"])


def draw_order(table: pd.DataFrame) -> list[str]:
    """The draws of a `draws` table, earliest drawn first (fixed iterations, then settled, then the end)."""
    fixed = table[~table.draw.isin([END, SETTLED])].groupby("draw").drawn_at.first().sort_values()
    return list(fixed.index) + [d for d in (SETTLED, END) if d in set(table.draw)]


def accuracy_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per level with early draws: P_m and test accuracy at the early stop (%) of each draw and of the reinit
    control, mean over trials; with the mean iteration at which the settled mask was drawn."""
    table = draws(summary)
    if table.empty:
        return pd.DataFrame()
    wide = 100 * table.pivot_table(index="level", columns="draw", values="accuracy", aggfunc="mean")
    wide = wide[draw_order(table)]
    reinit = summary[(summary.control == "reinit") & summary.level.isin(wide.index)]
    if len(reinit):
        wide["reinit (mask at the end, fresh weights)"] = 100 * reinit.groupby("level")[ACC].mean()
    settled_at = table[table.draw == SETTLED].groupby("level").drawn_at.mean()
    out = wide.round(2)
    out.insert(0, "settled mask drawn at", settled_at.round(0).astype("Int64"))
    out.insert(0, "P_m %", (100 * table.groupby("level").density.mean()).round(2))
    return out


def settle_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per level of mask: P_m, the iteration of the previous ticket's training at which the rule fired (mean
    over the trials where it did), in how many trials it fired, that point as a share of training, and the
    settled mask's distance to the final one (read from the trajectory)."""
    tickets = summary[summary.control == "ticket"]
    if "mask_settled_iteration" not in tickets or tickets.empty:
        return pd.DataFrame()
    iterations = int(summary.final_iteration.max())
    densities = tickets.groupby("level").density.mean()
    traj = trajectories(summary)
    rows = []
    for level, group in tickets.groupby("level"):
        if int(level) + 1 not in densities:
            continue  # the last ticket's trajectory: the level after it was not trained
        fired = _numeric(group, "mask_settled_iteration").dropna()
        at = traj[(traj.level == level + 1) & traj.trial.isin(group.trial)]
        far = [float(at[(at.trial == t) & (at.iteration == int(i))].to_final.iloc[0])
               for t, i in zip(group.trial, _numeric(group, "mask_settled_iteration")) if not math.isnan(i)]
        rows.append({"level": int(level) + 1, "P_m %": round(100 * densities[int(level) + 1], 2),
                     "settled at (iteration)": round(float(fired.mean())) if len(fired) else "never",
                     "trials settled": f"{len(fired)} of {len(group)}",
                     "share of training %": round(100 * float(fired.mean()) / iterations, 1) if len(fired) else "",
                     "distance to final mask": round(float(np.mean(far)), 4) if far else ""})
    return pd.DataFrame(rows).set_index("level") if rows else pd.DataFrame()


def rule_at(summary: pd.DataFrame, thresholds=(0.1, 0.15, 0.2), window: int = 4, trial: int = 0) -> pd.DataFrame:
    """Per level of mask: the iteration at which Early-Bird's rule (the newest mask within the threshold of
    each of the `window` before it) would have fired at each of `thresholds`, read from the recorded distance
    matrix (trial `trial`; 'never' where it would not): how far the paper's 0.1 is from firing here."""
    tickets = summary[(summary.control == "ticket") & (summary.trial == trial)]
    densities = summary[summary.control == "ticket"].groupby("level").density.mean()
    rows = []
    for level in sorted(tickets.level.unique()):
        matrix, iterations = trajectory_matrix(summary, int(level) + 1, trial)
        if not iterations or int(level) + 1 not in densities:
            continue
        row = {"level": int(level) + 1, "P_m %": round(100 * densities[int(level) + 1], 2)}
        for t in thresholds:
            e = early_bird.settle_index(matrix, t, window)
            row[f"fires at {t:g}"] = f"{iterations[e]:,}" if e is not None else "never"
        needed = early_bird.window_distances(matrix, window)  # the rule fires where one is below the threshold
        row["fires for thresholds above"] = round(float(min(needed)), 3) if needed else None
        rows.append(row)
    return pd.DataFrame(rows).set_index("level") if rows else pd.DataFrame()


def gap(table: pd.DataFrame, draw: str, against: str = END) -> tuple[float, int]:
    """Mean over levels (of trial-wise differences) of `draw` minus `against` accuracy, in points, and the
    number of levels it averages."""
    wide = table.pivot_table(index=["trial", "level"], columns="draw", values="accuracy")
    if draw not in wide or against not in wide:
        return math.nan, 0
    per_level = (wide[draw] - wide[against]).dropna().groupby(level="level").mean()
    return float(100 * per_level.mean()) if len(per_level) else math.nan, len(per_level)


def cost_saved(summary: pd.DataFrame) -> pd.DataFrame:
    """Per draw: where it was drawn (mean iteration of the previous level's training, and as a share of it)
    and the search cost a round saves by stopping there: iterations, and CPU seconds pro rata of the previous
    ticket's measured seconds (not measured at the stop itself), mean over levels and trials."""
    table = draws(summary)
    if table.empty:
        return pd.DataFrame()
    iterations = int(summary.final_iteration.max())
    tickets = summary[summary.control == "ticket"].set_index(["trial", "level"]).seconds
    rows = []
    for name in draw_order(table):
        part = table[table.draw == name]
        previous = [float(tickets.get((t, l - 1), math.nan)) for t, l in zip(part.trial, part.level)]
        saved = [(1 - a / iterations) * s for a, s in zip(part.drawn_at, previous)]
        rows.append({"draw": name, "drawn at (mean iteration)": round(float(part.drawn_at.mean())),
                     "share of training %": round(100 * float(part.drawn_at.mean()) / iterations, 1),
                     "iterations saved a round": round(iterations - float(part.drawn_at.mean())),
                     "CPU seconds saved a round (pro rata)": round(float(np.nanmean(saved)), 1)})
    return pd.DataFrame(rows).set_index("draw")


def reset_table(runs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per draw, under each reset of `runs` (a label such as 'reset to theta_0' -> that run's summary): test
    accuracy at the early stop (%, mean over trials and levels) and the draw minus the end ticket (points,
    per trial, mean over levels). Only the levels every run trained early draws at are compared, so that the
    columns differ by the reset alone."""
    tables = {label: draws(summary) for label, summary in runs.items()}
    tables = {label: table for label, table in tables.items() if len(table)}
    if not tables:
        return pd.DataFrame()
    levels = set.intersection(*(set(table.level) for table in tables.values()))
    rows = {}
    for label, table in tables.items():
        table = table[table.level.isin(levels)]
        for name in draw_order(table):
            accuracy = table[table.draw == name].groupby("level").accuracy.mean().mean()
            rows.setdefault(name, {"draw": name})[f"{label}: accuracy %"] = round(100 * float(accuracy), 2)
            rows[name][f"{label}: minus end, pts"] = round(gap(table, name)[0], 2) if name != END else 0.0
    return pd.DataFrame(list(rows.values())).set_index("draw")


def _levels(n: int) -> str:
    return f"{n} level{'s' if n != 1 else ''}"


def rounds_settled(summary: pd.DataFrame) -> str:
    """In how many rounds (trial x level of mask) the rule fired, and the median iteration ('' without
    trajectories)."""
    settle = settle_table(summary)
    if settle.empty:
        return ""
    tickets = summary[(summary.control == "ticket") & summary.level.isin(settle.index - 1)]
    fired = _numeric(tickets, "mask_settled_iteration").dropna()
    iterations = int(summary.final_iteration.max())
    return (f"{len(fired)} of {len(tickets)} rounds; median at iteration {fired.median():,.0f} "
            f"({100 * fired.median() / iterations:.0f}% of training)" if len(fired) else f"0 of {len(tickets)} rounds")


def findings(summary: pd.DataFrame, rewound: pd.DataFrame | None = None, rewind_iteration: int = 0) -> pd.DataFrame:
    """Our measured findings on the unstructured analogue (new results, not the paper's): does the mask
    settle by Early-Bird's rule, and how does a ticket drawn early train against the one drawn at the end
    (both from theta_0), against the end mask on fresh weights and, where `rewound` (the same IMP with every
    network rewound to iteration `rewind_iteration`) is given, when both are rewound instead. One row each:
    finding, how, ours."""
    table, shown = draws(summary), rounds_settled(summary)
    rows = []
    if shown:
        rows.append({"finding": "The magnitude mask settles by Early-Bird's rule while a ticket trains",
                     "how": "rounds (trial x level) whose trajectory mask came within the threshold of each of "
                            "the masks before it, and where", "ours": shown})
    spread = lambda part: (f"P_m {100 * part.density.max():.1f}% to {100 * part.density.min():.1f}%"
                           if len(part) else "")
    for name in draw_order(table):
        if name == END:
            continue
        value, levels = gap(table, name)
        part = table[table.draw == name]
        far = float(part.to_final.mean())
        what = ("the mask at which it settled (its end where it never did)" if name == SETTLED
                else f"the mask at {name} of the previous ticket's training")
        ours = (f"{value:+.2f} pts over {_levels(levels)} ({spread(part)}); its mask differs from the end's in "
                f"{100 * far:.1f}% of the trained weights")
        if name == SETTLED and not part.settled.astype(bool).any():  # every draw is the end mask, trained again
            ours = (f"never settled, so the draw is the end mask itself, trained again from theta_0 on the same "
                    f"batches: {value:+.2f} pts over {_levels(levels)} (the engine is deterministic)")
        rows.append({"finding": f"A ticket drawn early ({what}) against the ticket drawn at the end",
                     "how": "test accuracy at the early stop, early minus end, per trial, mean over levels",
                     "ours": ours})
    reinit = summary[(summary.control == "reinit") & summary.level.isin(table.level.unique())]
    early = [d for d in draw_order(table) if d != END]
    if len(reinit) and early:
        fresh = reinit.assign(draw="reinit", accuracy=pd.to_numeric(reinit[ACC], errors="coerce"))
        cols = ["trial", "level", "draw", "accuracy"]
        both = pd.concat([table[cols], fresh[cols]])
        shown = []
        for name in early:
            value, levels = gap(both, name, "reinit")
            shown.append(f"{name} {value:+.2f} pts")
        rows.append({"finding": "The tickets drawn early against the end mask on fresh weights (reinit): do they "
                                "keep the ticket's advantage?",
                     "how": "as above, each early draw minus reinit", "ours": "; ".join(shown) + f" (over "
                     f"{_levels(levels)})"})
    moved = draws(rewound) if rewound is not None else pd.DataFrame()
    if len(moved):
        shown = [f"{name} {gap(moved, name)[0]:+.2f} pts" for name in draw_order(moved) if name != END]
        settled = rounds_settled(rewound)
        rows.append({"finding": f"The same draws when every network is rewound to iteration {rewind_iteration:,} "
                                "(late resetting) instead of reset to theta_0",
                     "how": "as above, each early draw minus the end ticket, both rewound",
                     "ours": "; ".join(shown) + f" (over {_levels(moved.level.nunique())}, "
                             f"{moved.trial.nunique()} trial(s))" + (f"; the mask settled in {settled}" if settled else "")})
    return pd.DataFrame(rows, columns=["finding", "how", "ours"])


def claims() -> list[sc.Claim]:
    """You et al. (2020), paper-claims.md section 7 and their abstract: the structured form's claims, scored
    on the recorded channel search's rows of `scoring_summary` (lt_core/chapters/early_bird_channels.py; the
    unstructured analogue's findings are ours: `findings`)."""
    hold = (f"within {sc.HOLD} points below or above at every pruning ratio searched (0.3, 0.5, 0.7): reproduced; "
            "at some, or at every ratio trained while one is not trained (not measured, named in ours): partly")
    return [
        sc.Claim("eb-emerge", "Winning tickets (channel masks) can be identified at the very early training "
                 "stage: Early-Bird tickets", "drawn early at large learning rates (abstract; VGG-16, "
                 "PreResNet-101, CIFAR-10/100, 160 epochs)", channels.emerge, channels.emerge_rule,
                 channels.EMERGE_HOW),
        sc.Claim("eb-distance", "The mask distance identifies them without the final ticket: drawn when the "
                 "newest mask is within 0.1 of each of the four before (one an epoch)",
                 "ratios 0.3 / 0.5 / 0.7 (You et al. 2020; their code, GATECH-EIC/Early-Bird-Tickets)",
                 channels.ticket_claim("end", "the ticket drawn at the end"), channels.ticket_rule,
                 "the ticket drawn where the rule fired against the one drawn at the end of the search, both "
                 "trained from the search's theta_0 under their channel masks (test accuracy at the early "
                 "stop, per trial, mean over trials), " + hold),
        sc.Claim("eb-retrain", "Training only the Early-Bird ticket keeps comparable accuracy for less training",
                 "up to 4.7x energy savings (abstract); energy is not measured here",
                 channels.ticket_claim("search", "the dense searched network"), channels.ticket_rule,
                 "the ticket drawn where the rule fired, trained alone, against the dense network the search "
                 "trained (test accuracy at the early stop), " + hold + "; the training saved is the search "
                 "after the draw (the ticket table)"),
    ]


# Frankle & Carbin's LeNet-300-100 settings (the paper's nets are VGG-16 and PreResNet-101): what the run
# shares with You et al.'s rule (paper-claims.md section 7)
PAPER_SETTINGS = {"settle_threshold": 0.1, "settle_window": 4}


def recorded_tables(name: str = RECORDED) -> tuple[pd.DataFrame, pd.DataFrame, dict | None]:
    """(summary, curves, stored config) of the committed run, or empty tables where it is not here."""
    rec = recorded_runs.recorded(name)
    if rec is None:
        return pd.DataFrame(columns=["trial", "level", "control", "density"]), pd.DataFrame(), None
    return rec[1], rec[0], rec[2]["config"]


def scoring_summary(summary: pd.DataFrame | None = None, search=None) -> pd.DataFrame:
    """What the claims are scored on: the unstructured run's summary (default: the recorded one) and the
    structured search's rows with their schedule (`search`: (summary, config), default the recorded search)."""
    summary = recorded_tables()[0] if summary is None else summary
    rows = channels.scored(*(channels.recorded_search() if search is None else search))
    return pd.concat([summary, rows], ignore_index=True) if len(rows) else summary


def bookwide_tables():
    """(curves, summary, run scale) for the book-wide scorecard (lt_core/chapters/catalogue.py)."""
    summary, curves, stored = recorded_tables()
    if stored is None:
        return None, summary, "no recorded run"
    search, config = channels.recorded_search()
    scale = (f"recorded, LeNet-300-100: {summary.trial.nunique()} trial(s) x {int(stored['iterations']):,} "
             f"iterations, {len(summary)} networks")
    if config is not None:
        scale += (f"; ResNet-20 channel search: {search.trial.nunique()} trial(s) x "
                  f"{int(config['iterations']):,} iterations")
    return curves, scoring_summary(summary, (search, config)), scale


def describe(summary, stored):
    """The recorded-run table's own columns (lt_core/book/report.recorded_runs_table)."""
    if stored.get("procedure") == "channel_search":
        return channels.describe(summary, stored)
    reset = f", rewound to iteration {stored['rewind_iteration']:,}" if stored.get("rewind_iteration") else ""
    return summary, {"what": f"IMP with a mask every {stored['mask_every']} steps, early draws at "
                             f"{', '.join(f'{i:,}' for i in stored['early_draws'])}{reset}",
                     "levels": f"0..{stored['levels']}", "steps": f"{int(stored['iterations']):,}"}, ""


def recorded_runs_table(names=(RECORDED, REWOUND, channels.SEARCH)) -> tuple[pd.DataFrame, list[str]]:
    """What the committed runs cover and cost, and the commands that train exactly them."""
    from ..book.report import recorded_runs_table as table
    return table(names, describe)
