"""The ticket-transfer chapter (Morcos et al. 2019; book/transfer.ipynb): tickets found on one dataset trained
on another, beside the target's own ticket, the transferred mask on fresh weights and a random ticket.

The chapter reads one summary (`combine`) in which every row is one network: the transfer runs' units
(lt_core/procedures/transfer.py: controls transfer, transfer_reinit, random) and the source IMP runs' tickets
as control `own`, each with `source_data` and `target_data` (the datasets it was found on and trained on;
equal for own tickets) and `train_fraction` of the source. A source IMP run on one dataset is the other
direction's own ticket: MNIST's tickets are transferred to Fashion-MNIST and are MNIST's own. Accuracy is test
accuracy at the early stop (minimum validation loss), the book's convention since Frankle & Carbin.
"""
from __future__ import annotations

import json
import math

import pandas as pd

from .. import config
from ..book import scorecard as sc
from ..procedures.transfer import source_config
from ..runs import recorded as recorded_runs
from ..runs.results import whole_trials

DATA = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
CONTROLS = {  # control -> (label, colour, line style), in the figure's order
    "own": ("the target's own ticket", "tab:blue", "-"),
    "transfer": ("transferred ticket (mask + theta_k)", "tab:red", "-"),
    "transfer_reinit": ("transferred mask, fresh weights", "tab:orange", "--"),
    "random": ("random ticket (random mask, fresh weights)", "tab:gray", ":"),
}
# book/recorded/<name>: the transfer runs, (source data, target data) -> name, and their source IMP runs
RECORDED = {("mnist", "fashion_mnist"): "transfer_lenet_mnist_fmnist",
            ("fashion_mnist", "mnist"): "transfer_lenet_fmnist_mnist"}
# across optimizers on MNIST, (source optimizer, target optimizer) -> the transfer run
OPTIMIZERS = {("adam", "sgd"): "transfer_lenet_adam_sgd_mnist", ("sgd", "adam"): "transfer_lenet_sgd_adam_mnist"}
SOURCES = {"mnist": "transfer_source_mnist", "fashion_mnist": "transfer_source_fashion_mnist",
           "mnist_sgd": "transfer_source_mnist_sgd"}
# a ticket found on a tenth of MNIST trained on all of it (params/transfer_lenet_subset.yaml), and its source
OPTIMIZER_PAIRS = tuple(("mnist", "mnist", *pair) for pair in OPTIMIZERS)
SUBSET = {"target": "transfer_lenet_subset_mnist", "source": "transfer_source_mnist_tenth"}
# the output-layer comparison (transfer_output): (source data, target data) -> {output layer: book/recorded/<name>}
OUTPUT_LAYER = {("mnist", "fashion_mnist"): {"transfer": "transfer_lenet_mnist_fmnist_epyc",
                                             "fresh": "transfer_lenet_mnist_fmnist_fresh"},
                ("fashion_mnist", "mnist"): {"transfer": "transfer_lenet_fmnist_mnist_epyc",
                                             "fresh": "transfer_lenet_fmnist_mnist_fresh"}}
OUTPUT_LAYER_NAMES = [name for runs in OUTPUT_LAYER.values() for name in runs.values()]
ACC = "early_stop_test_accuracy"
SPARSE = (0.015, 0.22)  # the P_m range the verdicts average over: where tickets and random tickets part


def label(source: str, target: str, source_optimizer: str = "adam", optimizer: str = "adam") -> str:
    """'MNIST -> Fashion-MNIST', or 'MNIST, Adam -> SGD' across optimizers."""
    if source_optimizer != optimizer:
        names = {"adam": "Adam", "sgd": "SGD"}
        where = DATA.get(target, target) if source == target else label(source, target)
        return f"{where}, {names.get(source_optimizer, source_optimizer)} -> {names.get(optimizer, optimizer)}"
    return f"{DATA.get(source, source)} -> {DATA.get(target, target)}"


def experiment_label(cfg) -> str:
    """'MNIST, SGD -> Adam' or 'MNIST -> MNIST (found on a tenth)': what a transfer experiment moves."""
    src = source_config(cfg)
    tenth = " (found on a tenth)" if src.train_fraction < 1 else ""
    return label(src.dataset, cfg.dataset, src.optimizer, cfg.optimizer) + tenth


def _tag(frame: pd.DataFrame, stored: dict) -> pd.DataFrame:
    """Rows of one run (summary or curves) with source_data, target_data, train_fraction and optimizer; a
    source IMP run's tickets as control `own`."""
    if stored.get("procedure") == "transfer":
        cfg = config.make(stored)
        src = source_config(cfg)
        return frame.assign(source_data=src.dataset, target_data=cfg.dataset, train_fraction=src.train_fraction,
                            source_optimizer=src.optimizer, optimizer=cfg.optimizer)
    own = frame[frame.control == "ticket"]
    return own.assign(control="own", source_data=stored["dataset"], target_data=stored["dataset"],
                      train_fraction=stored.get("train_fraction", 1.0), source_optimizer=stored["optimizer"],
                      optimizer=stored["optimizer"])


def unique_runs(runs: list[tuple]) -> list[tuple]:
    """(table, stored config) pairs with each run once: a source IMP run that two targets name (MNIST's is the
    source of MNIST -> Fashion-MNIST and of Adam -> SGD) is loaded for each, and counted twice its rows would
    be drawn twice (a curve that doubles back) and weigh twice in a mean."""
    seen, out = set(), []
    for table, stored in runs:
        key = json.dumps(stored, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append((table, stored))
    return out


def combine(runs: list[tuple]) -> pd.DataFrame:
    """One summary of transfer runs and source IMP runs ((summary, stored config) pairs, each run once), with
    `accuracy`."""
    runs = unique_runs(runs)
    if not runs:
        return pd.DataFrame(columns=["trial", "level", "control", "density", "accuracy", "source_data",
                                     "target_data", "train_fraction", "source_optimizer", "optimizer"])
    out = pd.concat([_tag(summary, stored) for summary, stored in runs], ignore_index=True)
    return out.assign(accuracy=pd.to_numeric(out[ACC], errors="coerce"))


def combine_curves(runs: list[tuple]) -> pd.DataFrame:
    """The same for curves ((curves, stored config) pairs, each run once)."""
    runs = unique_runs(runs)
    return pd.concat([_tag(curves, stored) for curves, stored in runs], ignore_index=True) if runs else pd.DataFrame()


def recorded_tables(names=(*RECORDED.values(), *OPTIMIZERS.values(), *SOURCES.values(), *SUBSET.values())) -> tuple[pd.DataFrame, dict]:
    """The combined summary of the committed runs (their whole trials), and which of them this checkout has
    (name -> found)."""
    found, runs = {}, []
    for name in names:
        rec = recorded_runs.recorded(name)
        found[name] = rec is not None
        if rec:
            runs.append((whole_trials(rec[1]), rec[2]["config"]))
    return combine(runs), found


def direction(summary: pd.DataFrame, source: str, target: str, source_optimizer: str = "adam",
              optimizer: str = "adam", fraction: float = 1.0) -> pd.DataFrame:
    """The rows of one transfer (found on `source` with `source_optimizer`, on `fraction` of its training
    set; trained on `target` with `optimizer`) with the target's own tickets (found on all of the target's
    data with the target's optimizer)."""
    same = (summary.target_data == target) & (summary.optimizer == optimizer)
    moved = same & (summary.source_data == source) & (summary.source_optimizer == source_optimizer)
    moved &= (summary.control != "own") & ((summary.train_fraction - fraction).abs() < 1e-9)
    own = same & (summary.control == "own") & (summary.train_fraction == 1.0)
    return summary[moved | own]


def means(rows: pd.DataFrame, stat: str = "mean") -> pd.DataFrame:
    """Per level: accuracy of each control (columns, `stat` over trials) and the density. Level 0 is the
    dense network: the own ticket's there is the target's dense network from its own init, which is what
    the fresh-weight controls start from too, so it fills their level 0; the transferred one is dense from
    the source's theta_k."""
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(level=rows.level.astype(int))
    table = rows.pivot_table(index="level", columns="control", values="accuracy", aggfunc=stat)
    table = table.assign(density=rows.groupby("level").density.mean())
    if 0 in table.index and "own" in table:
        for control in ("transfer_reinit", "random"):
            if control in table:
                table.loc[0, control] = table.loc[0, "own"]
    return table.sort_index()


def gaps(rows: pd.DataFrame, against: str, span=SPARSE) -> tuple[float, str, int]:
    """Mean over the levels in `span` (P_m) where both were trained of (transfer - `against`) accuracy, in
    points, with which levels those were (a run that stops short of the span: its sparsest such level) and
    the number of trials."""
    table = means(rows)
    if table.empty or "transfer" not in table or against not in table:
        return math.nan, "", 0
    both = table[table.index > 0][["transfer", against, "density"]].dropna()
    shared = both[both.density.between(*span)]
    if shared.empty and len(both):
        shared = both.tail(1)
    if shared.empty:
        return math.nan, "", 0
    where = (f"{len(shared)} levels, P_m {100 * shared.density.max():.0f}% to {100 * shared.density.min():.1f}%"
             if len(shared) > 1 else f"P_m {100 * shared.density.iloc[0]:.1f}% only")
    trials = int(rows[rows.control == "transfer"].trial.nunique())
    return float(100 * (shared.transfer - shared[against]).mean()), where, trials


def both_ways(against: str, pairs=tuple(RECORDED)):
    """Measure: (transfer - `against`) over the sparse levels in each direction (pairs: the arguments of
    `direction`); the headline is the worse."""
    def measure(summary, curves):
        found = {pair: gaps(direction(summary, *pair), against) for pair in pairs}
        found = {pair: g for pair, g in found.items() if not math.isnan(g[0])}
        if not found:
            return sc._missing(f"no transfer run with {CONTROLS[against][0]}")
        shown = "; ".join(f"{label(*pair)} {g:+.2f} pts" for pair, (g, _, _) in found.items())
        worst = min(g for g, _, _ in found.values())
        return sc.Measured(worst, f"{shown} (mean over {next(iter(found.values()))[1]})",
                           {"directions": len(found), "best": max(g for g, _, _ in found.values())},
                           "{:+.2f} pts")
    return measure


def _span(span=SPARSE) -> str:
    return f"{100 * span[1]:.0f}% to {100 * span[0]:.1f}%"


def close_rule(m) -> str:
    """Within 1 point of the own ticket in both directions: reproduced; within 2.5: partly."""
    if m.parts.get("directions", 0) < 2:
        return sc.PARTLY if m.value >= -1 else sc.NOT
    return sc.REPRODUCED if m.value >= -1 else sc.PARTLY if m.value >= -2.5 else sc.NOT


def beats_rule(m) -> str:
    """Above the random ticket by half a point or more in both directions: reproduced; above it in one: partly."""
    if m.value >= 0.5 and m.parts.get("directions", 0) >= 2:
        return sc.REPRODUCED
    return sc.PARTLY if m.parts.get("best", m.value) > 0 else sc.NOT


def larger_source(fraction: float = 0.1, data: str = "mnist"):
    """Measure: own ticket (found on all of the data) minus the ticket found on `fraction` of it, both trained
    on all of it, over the sparse levels (points): positive = the larger source transfers better."""
    def measure(summary, curves):
        gap, where, _ = gaps(direction(summary, data, data, fraction=fraction), "own")
        if math.isnan(gap):
            return sc._missing(f"no run of a ticket found on {100 * fraction:.0f}% of {DATA[data]}")
        return sc.Measured(-gap, f"{-gap:+.2f} pts: all of {DATA[data]} minus {100 * fraction:.0f}% of it "
                                 f"(mean over {where})", fmt="{:+.2f} pts")
    return measure


def claims() -> list[sc.Claim]:
    """Morcos, Yu, Paganini & Tian (2019), paper-claims.md section 5."""
    return [
        sc.Claim("close-to-own", "A ticket found on one dataset trains on another nearly as well as the "
                 "target's own ticket", "often close to same-dataset tickets (abstract; VGG-19, ResNet-50 as a secondary source reads the setup)",
                 both_ways("own"), close_rule,
                 f"transferred minus own ticket, test accuracy at the early stop, mean over trials and over "
                 f"the levels at P_m {_span()}, in each direction; reproduced if both are within 1 point, "
                 "partly within 2.5"),
        sc.Claim("beats-random", "Transferred tickets train better than random tickets (random mask, fresh "
                 "weights)", "far above random tickets (the ReScience replication, not the paper's text: VGG-19 on CIFAR-10 "
                 "at 99.88% pruned, a CIFAR-100 ticket 77.87% and CIFAR-10's own 80.60% against a random "
                 "ticket's 10%)", both_ways("random"), beats_rule,
                 f"transferred minus random ticket, as above; reproduced if at least half a point in both "
                 "directions, partly if positive in one"),
        sc.Claim("larger-source", "Tickets found on larger datasets transfer better",
                 "larger-dataset tickets transfer better (abstract)", larger_source(),
                 lambda m: sc.REPRODUCED if m.value >= 0.5 else sc.PARTLY if m.value > 0 else sc.NOT,
                 "ticket found on all of MNIST minus one found on 10% of it (a tenth of each class), "
                 "both trained on all of MNIST; reproduced at half a point or more, partly if positive"),
        sc.Claim("across-optimizers", "Tickets found with one optimizer train with another (Adam and SGD with "
                 "momentum) nearly as well as that optimizer's own ticket", "generalise across optimizers "
                 "(abstract)", both_ways("own", OPTIMIZER_PAIRS), close_rule,
                 "as close-to-own, on MNIST: Adam's tickets trained with SGD against SGD's own, and the "
                 "reverse; reproduced if both are within 1 point, partly within 2.5"),
        sc.Claim("natural-images", "Tickets transfer across SVHN, CIFAR-10/100, ImageNet and Places365",
                 "VGG-19 and ResNet-50 tickets transfer (abstract; the networks as a secondary source reads the setup)",
                 lambda s, c: sc._missing("only MNIST, Fashion-MNIST and CIFAR-10 are here; CIFAR-10's halves "
                                          "with Conv-2 (params/transfer_conv2_*.yaml) not run: ~5-9 CPU-h a "
                                          "source trial, 8-13 its transfer"),
                 lambda m: sc.UNMEASURED, "not measurable here: the datasets are not available"),
    ]


def level_table(summary: pd.DataFrame, *pair, fraction: float = 1.0) -> pd.DataFrame:
    """Test accuracy at the early stop (%) per level and control, mean over trials, with the density (pair:
    the arguments of `direction`)."""
    table = means(direction(summary, *pair, fraction=fraction))
    if table.empty:
        return table
    cols = [c for c in CONTROLS if c in table]
    out = (100 * table[cols]).round(2).rename(columns={c: CONTROLS[c][0] for c in cols})
    return out.assign(**{"P_m %": (100 * table.density).round(2)})[["P_m %", *out.columns]]


def what_transfers(summary: pd.DataFrame, pairs=tuple(RECORDED)) -> pd.DataFrame:
    """Per direction, over the sparse levels (points, mean): transferred ticket minus own ticket, minus the
    transferred mask on fresh weights (what the weights add), and that mask minus a random ticket (what the
    mask adds); with how many levels each mean covers (the fresh-weight controls train at control_levels
    only: `levels: fresh weights` counts the levels where both are trained)."""
    rows = []
    for pair in pairs:
        rows_ = direction(summary, *pair)
        table = means(rows_)
        if table.empty or "transfer" not in table:
            continue
        sparse = table[(table.index > 0) & table.density.between(*SPARSE)]
        sparse = sparse if len(sparse) else table[table.index > 0].tail(1)  # a run short of the span
        diff = lambda a, b: round(float(100 * (sparse[a] - sparse[b]).mean()), 2) if {a, b} <= set(sparse) else math.nan
        count = lambda a, b: int(sparse[[a, b]].notna().all(axis=1).sum()) if {a, b} <= set(sparse) else 0
        rows.append({"transfer": label(*pair), "levels: ticket - own": count("transfer", "own"),
                     "levels: fresh weights": count("transfer_reinit", "random"),
                     "trials": int(rows_[rows_.control == "transfer"].trial.nunique()),
                     "ticket - own": diff("transfer", "own"),
                     "ticket - mask on fresh weights (the weights)": diff("transfer", "transfer_reinit"),
                     "mask on fresh weights - random (the mask)": diff("transfer_reinit", "random")})
    return pd.DataFrame(rows).set_index("transfer") if rows else pd.DataFrame()


SWEEP = [f"transfer_sgd_sweep_lr{lr}" for lr in ("0.001", "0.003", "0.01", "0.03", "0.1")]


def sweep_table(names=SWEEP) -> pd.DataFrame:
    """The SGD learning-rate sweep behind the optimizer transfers (params/transfer_sgd_sweep.yaml): per rate,
    the dense network's early stop, validation loss and test accuracy there."""
    rows = []
    for name in names:
        rec = recorded_runs.recorded(name)
        if rec is None:
            continue
        row, stored = rec[1].iloc[0], rec[2]["config"]
        rows.append({"lr": stored["lr"], "early stop (iteration)": int(row.early_stop_iteration),
                     "validation loss there": round(float(row.early_stop_val_loss), 4),
                     "test accuracy there %": round(100 * float(row.early_stop_test_accuracy), 2),
                     "test accuracy at 20,000 %": round(100 * float(row.final_test_accuracy), 2)})
    return pd.DataFrame(rows).set_index("lr") if rows else pd.DataFrame()


# What Morcos et al. state of the procedure (paper-claims.md section 5 [S]: a secondary source's reading); the
# LeNet's settings are Frankle & Carbin's. The late resetting (about epoch 1) is the source's setting
# (source.rewind_iteration), which the table shows inside `source`.
PAPER_SETTINGS = {"procedure": "transfer", "model": "VGG-19, ResNet-50 (a secondary source's reading)"}


def describe(summary, stored):
    """The recorded-runs table's own columns (lt_core/book/report.recorded_runs_table)."""
    if stored.get("procedure") == "transfer":
        cfg = config.make(stored)
        src = source_config(cfg)
        tenth = f" (found on {100 * src.train_fraction:.0f}% of it)" if src.train_fraction < 1 else ""
        fresh = ", output layer fresh" if cfg.output_layer == "fresh" else ""
        what = f"transfer {label(src.dataset, cfg.dataset, src.optimizer, cfg.optimizer)}{tenth}{fresh}"
        levels = f"0..{src.levels}"
    elif int(stored.get("levels", 0)) == 0:  # the SGD sweep: one dense network a rate
        what = f"dense network, {stored['optimizer']}, lr {stored['lr']:g} (the SGD sweep)"
        levels = "0"
    else:
        share = stored.get("train_fraction", 1.0)
        data = DATA.get(stored["dataset"], stored["dataset"])
        what = (f"IMP on {data if share == 1 else f'{100 * share:.0f}% of ' + data}, {stored['optimizer']}, lr "
                f"{stored['lr']:g} (source{'; own ticket' if share == 1 else ''})")
        levels = f"0..{stored['levels']}"
    return summary, {"what": what, "levels": levels, "controls": ", ".join(sorted(summary.control.unique())),
                     "steps": f"{int(stored['iterations']):,}"}, ""


def recorded_runs_table(names, words: dict[str, str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """What each committed run covers and cost, and the command that trains exactly it (a source IMP run is
    trained by the transfer runs that name it; `words`: what a run's command adds, report.recorded_runs_table)."""
    from ..book.report import recorded_runs_table as table
    return table(names, describe, words)


def bookwide_tables():
    """(curves, summary, run scale) for the book-wide scorecard (lt_core/chapters/catalogue.py); the scale
    counts every network of the chapter's recorded runs, as its recorded-runs table does, the output-layer
    comparison's and the SGD sweep's apart from those the verdicts read."""
    summary, found = recorded_tables()
    moved = summary[summary.control != "own"]
    if moved.empty:
        return None, summary, "no recorded transfer run"
    keys = ["source_data", "target_data", "source_optimizer", "optimizer", "train_fraction"]
    parts = ", ".join(f"{label(*key[:4])}{' (a tenth)' if key[4] < 1 else ''} {g.trial.nunique()} trial(s)"
                      for key, g in moved.groupby(keys, sort=False))
    extra = sum(len(rec[1]) for rec in map(recorded_runs.recorded, [*OUTPUT_LAYER_NAMES, *SWEEP]) if rec is not None)
    total = f"{len(summary) + extra} networks ({len(summary)} in these verdicts' runs, {extra} in the " \
            "output-layer comparison and the SGD sweep)" if extra else f"{len(summary)} networks"
    return None, summary, f"recorded, LeNet-300-100: {parts}; {total}"
