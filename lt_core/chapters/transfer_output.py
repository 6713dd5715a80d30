"""The transfer chapter's output-layer comparison (book/transfer.ipynb): the transferred LeNet ticket with its
output layer transferred (the book's rule: its shape fits, both datasets have ten classes) against the same
ticket with a fresh, unpruned output layer (`output_layer: fresh`, Morcos et al.'s replacement where classes
differ in meaning: digits and garments).

Both variants of a direction train the same masks on the same theta_k: the recorded source's (its masks,
from an Intel Xeon) with its dense network trained again on the machine of the comparison for theta_k
(`run --resume-from book/recorded/<source> --other-machine`, since weights are never recorded). Their
difference is therefore paired. That theta_k is not the recorded transfer runs' own, so the variant with the
output layer transferred, which repeats the recorded run's settings, also measures how far another machine's
theta_k moves a LeNet transfer.
"""
from __future__ import annotations

import math

import pandas as pd

from ..runs import recorded as recorded_runs
from ..runs.results import whole_trials
from . import transfer
from .transfer import OUTPUT_LAYER as RUNS
from .transfer import OUTPUT_LAYER_NAMES as NAMES
from .transfer import SOURCES, SPARSE, combine, direction, label


def recorded_runs_table(names) -> tuple[pd.DataFrame, list[str]]:
    """The chapter's recorded-runs table (transfer.recorded_runs_table) with the comparison's commands
    completed: each resumes its recorded source, whose dense network trains again for theta_k."""
    words = {name: f" --resume-from book/recorded/{SOURCES[source]} --other-machine"
             for (source, _), variants in RUNS.items() for name in variants.values()}
    return transfer.recorded_runs_table(names, words)


def recorded_rows(runs=RUNS) -> pd.DataFrame:
    """The transferred tickets of the comparison's recordings (combine's columns, with `output_layer`)."""
    frames = []
    for variants in runs.values():
        for output_layer, name in variants.items():
            rec = recorded_runs.recorded(name)
            if rec is not None:
                frame = combine([(whole_trials(rec[1]), rec[2]["config"])])
                frames.append(frame[frame.control == "transfer"].assign(output_layer=output_layer))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _per_level(rows: pd.DataFrame, source: str, target: str) -> pd.DataFrame:
    """Per level: the density and the accuracy of each output-layer variant (columns transfer, fresh, and
    density_transfer, density_fresh)."""
    mine = direction(rows, source, target) if len(rows) else rows
    if mine.empty:
        return pd.DataFrame()
    table = mine.pivot_table(index="level", columns="output_layer", values="accuracy", aggfunc="mean")
    density = mine.pivot_table(index="level", columns="output_layer", values="density", aggfunc="mean")
    table = table.join(density.add_prefix("density_"))  # a fresh output layer is unpruned: more weights left
    return table.assign(density=table.get("density_transfer", mine.groupby("level").density.mean())).sort_index()


def _trials(rows: pd.DataFrame, source: str, target: str) -> list[int]:
    return sorted(direction(rows, source, target).trial.unique()) if len(rows) else []


def _recorded_same_trials(rec_summary: pd.DataFrame, source: str, target: str, trials: list) -> pd.Series:
    """The recorded transfer run's transferred ticket per level, mean over `trials` (the comparison's: the
    same masks)."""
    if rec_summary is None or rec_summary.empty or not trials:
        return pd.Series(dtype=float)
    mine = direction(rec_summary, source, target)
    mine = mine[(mine.control == "transfer") & mine.trial.isin(trials)]
    return mine.groupby(mine.level.astype(int)).accuracy.mean()


def level_table(rows: pd.DataFrame, rec_summary: pd.DataFrame, source: str, target: str) -> pd.DataFrame:
    """Test accuracy at the early stop (%) per level, mean over trials: output layer transferred, fresh,
    their difference (points), and the recorded run over the same trials (the same masks on the recorded
    theta_k); with P_m both ways, since the fresh output layer keeps all its weights."""
    table = _per_level(rows, source, target)
    if table.empty or not {"transfer", "fresh"} <= set(table):
        return pd.DataFrame()
    out = pd.DataFrame({"P_m %": (100 * table.density).round(2),
                        "P_m % with it fresh": (100 * table.density_fresh).round(2),
                        "output transferred": (100 * table.transfer).round(2),
                        "output fresh": (100 * table.fresh).round(2),
                        "fresh - transferred": (100 * (table.fresh - table.transfer)).round(2)})
    recorded = _recorded_same_trials(rec_summary, source, target, _trials(rows, source, target))
    if not recorded.empty:
        out["recorded run, same trials"] = (100 * recorded.reindex(out.index)).round(2)
    return out


def effect(rows: pd.DataFrame, rec_summary: pd.DataFrame, runs=RUNS, span=SPARSE) -> pd.DataFrame:
    """Per direction (points): fresh less transferred output layer, mean over the sparse levels (`span`), at
    the dense level and at the sparsest; and the mean absolute difference between this machine's output-transferred tickets
    and the recorded run's over the same trials, over every level (another machine's theta_k, the same
    masks)."""
    found = []
    for source, target in runs:
        table = _per_level(rows, source, target)
        if table.empty or not {"transfer", "fresh"} <= set(table):
            continue
        gap = 100 * (table.fresh - table.transfer)
        sparse = gap[(table.index > 0) & table.density.between(*span)]
        trials = _trials(rows, source, target)
        recorded = _recorded_same_trials(rec_summary, source, target, trials).reindex(table.index)
        machine = (100 * (table.transfer - recorded).abs()).mean() if recorded.notna().any() else math.nan
        found.append({"transfer": label(source, target), "trials": len(trials), "levels": int(gap.notna().sum()),
                      f"fresh - transferred, P_m {100 * span[1]:.0f}% to {100 * span[0]:.1f}%": round(float(sparse.mean()), 2),
                      "fresh - transferred, dense": round(float(gap.get(0, math.nan)), 2),
                      "fresh - transferred, sparsest": round(float(gap.dropna().iloc[-1]), 2),
                      "sparsest P_m %, transferred / fresh": f"{100 * table.density.iloc[-1]:.2f} / "
                                                             f"{100 * table.density_fresh.iloc[-1]:.2f}",
                      "|this machine - recorded run|, every level": round(float(machine), 2)})
    return pd.DataFrame(found).set_index("transfer") if found else pd.DataFrame()


def sentence(table: pd.DataFrame) -> str:
    """The comparison in words for the chapter's text ('not recorded ...' without it)."""
    if table.empty:
        return f"not recorded in this checkout (book/recorded/{', '.join(NAMES)})"
    sparse = next(c for c in table.columns if c.startswith("fresh - transferred, P_m"))
    parts = "; ".join(f"{name} {row[sparse]:+.2f} points" for name, row in table.iterrows())
    trials = int(table.trials.min())
    sparsest = table["sparsest P_m %, transferred / fresh"].iloc[0].split(" / ")
    machine = table["|this machine - recorded run|, every level"]
    size = (table[sparse].abs() <= machine)
    word = ("within" if size.all() else "beyond" if not size.any() else
            "within one way and beyond the other of")  # a mixed result said as such
    at_end = table["fresh - transferred, sparsest"]
    largest = all(row["fresh - transferred, sparsest"] >= row[sparse] for _, row in table.iterrows())
    return (f"a fresh output layer moves the transferred ticket by {parts} on average over "
            f"{sparse.split(', ', 1)[1]} ({trials} trial{'s' * (trials > 1)} each way), {word} the "
            f"{' / '.join(f'{m:.2f}' for m in machine)} points by which another machine's theta_k alone moves the "
            f"same tickets (mean over every level); {'largest' if largest else 'and'} at the sparsest level "
            f"({'; '.join(f'{name} {g:+.2f}' for name, g in at_end.items())} points), where, unpruned, it also "
            f"leaves more weights (P_m {sparsest[1]}% against {sparsest[0]}%)")


def trials_phrase(rows: pd.DataFrame, rec_summary: pd.DataFrame, runs=RUNS) -> str:
    """Which of the recorded transfer runs' trials the comparison trained again ('both trials', 'the first 1
    of the 2 trials'), the fewest over directions; '' without the comparison."""
    shares = []
    for source, target in runs:
        again = len(_trials(rows, source, target))
        mine = direction(rec_summary, source, target) if rec_summary is not None and len(rec_summary) else rec_summary
        of = int(mine[mine.control == "transfer"].trial.nunique()) if mine is not None and len(mine) else 0
        if again:
            shares.append((again, of))
    if not shares:
        return ""
    again, of = min(shares)
    if again >= of:
        return "both trials" if of == 2 else "the one trial" if of == 1 else f"all {of} trials"
    return f"the first {again} of the {of} trials"
