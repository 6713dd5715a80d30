"""The prune-and-fine-tune chapter (Han et al. 2015; book/prune_finetune.ipynb): the background the lottery
ticket starts from, measured on the book's engine beside the ticket's controls at the same masks.

The chapter reads one summary in which every row is one network of a prune_finetune run
(lt_core/procedures/prune_finetune.py), with `regularisation` (L2 or L1) and `model` added (`combine`),
and each fine-tuned unit's iteration-0 evaluation as a row of its own, control `pruned` (the pruned network
before any retraining). Accuracy is test accuracy at the early stop (minimum validation loss) for every
method, the book's convention since Frankle & Carbin; Han et al. report the retrained network's error.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..book import scorecard as sc
from ..runs import recorded as recorded_runs

METHODS = {  # control -> (label, colour, line style), in the figure's order
    "finetune": ("prune + fine-tune, iterative (Han)", "tab:red", "-"),
    "oneshot": ("prune + fine-tune, one-shot", "tab:pink", "-."),
    "pruned": ("pruned, not retrained", "tab:gray", ":"),
    "ticket": ("same mask on theta_0 (ticket)", "tab:blue", "-"),
    "reinit": ("same mask, re-initialised", "tab:orange", "--"),
    "scratch": ("same mask, re-initialised, whole budget", "tab:brown", "--"),
}
SHORT = {"lenet_300_100": "LeNet-300-100", "lenet5": "LeNet-5"}
NETS = {model: f"{name} (MNIST)" for model, name in SHORT.items()}
# book/recorded/<name>: (model, regularisation) -> the run; and Frankle & Carbin's IMP run of the same net
RECORDED = {("lenet_300_100", "L2"): "prune_finetune_lenet_l2",
            ("lenet_300_100", "L1"): "prune_finetune_lenet_l1",
            ("lenet5", "L2"): "prune_finetune_lenet5"}
IMP = {"lenet_300_100": "lenet_mnist_paper"}
# Frankle & Carbin's run again, trial 0's tickets only, down to 8.6%, with their masks (lenet_mnist_paper was
# recorded before masks were): the ticket's mask picture beside Han's
IMP_MASKS = {"lenet_300_100": "lenet_mnist_ticket_masks"}
ACC = "early_stop_test_accuracy"

# Han et al. 2015, Tables 1 and 2 (paper-claims.md section 6 [P]): error before -> after pruning, weights
# before -> after, and the share of each layer's weights kept
PAPER = {
    "lenet_300_100": {"error": (1.64, 1.59), "weights": ("267K", "22K"), "compression": 12,
                      "kept": {"fc1.weight": 8, "fc2.weight": 9, "fc3.weight": 26}},
    "lenet5": {"error": (0.80, 0.77), "weights": ("431K", "36K"), "compression": 12,
               "kept": {"conv1.weight": 66, "conv2.weight": 12, "fc1.weight": 8, "fc2.weight": 19}},
}


def regularisation(stored: dict) -> str:
    return "L1" if stored.get("l1_penalty", 0) > 0 else "L2" if stored.get("weight_decay", 0) > 0 else "none"


def regions(first_layer: np.ndarray, border: int = 4) -> tuple[float, float]:
    """(share kept of the first-layer connections from the `border`-pixel frame of the 28x28 image, share
    kept from the centre)."""
    kept = first_layer.mean(axis=0).reshape(28, 28)
    frame = np.ones((28, 28), dtype=bool)
    frame[border:-border, border:-border] = False
    return float(kept[frame].mean()), float(kept[~frame].mean())


def combine(runs: list[tuple]) -> pd.DataFrame:
    """One summary of prune_finetune runs ((summary, stored config[, first-layer masks]) tuples; masks:
    Unit -> array, as lt_core/runs/recorded.first_layers gives them), with model, regularisation,
    `accuracy` (at the early stop), border_kept / centre_kept where a 784-input first-layer mask is known,
    and a `pruned` row per fine-tuned unit (its accuracy before retraining)."""
    parts = []
    for summary, stored, *masks in runs:
        rows = summary.assign(model=stored["model"], regularisation=regularisation(stored),
                              accuracy=pd.to_numeric(summary[ACC], errors="coerce"))
        known = {(u.trial, u.level, u.control): regions(m) for u, m in (masks[0] if masks else {}).items()
                 if m.shape[1] == 784}
        if known:
            keys = list(zip(rows.trial, rows.level, rows.control))
            rows = rows.assign(border_kept=[known.get(k, (math.nan,) * 2)[0] for k in keys],
                               centre_kept=[known.get(k, (math.nan,) * 2)[1] for k in keys])
        pruned = rows[rows.control == "finetune"].assign(
            control="pruned", accuracy=lambda t: pd.to_numeric(t.start_test_accuracy, errors="coerce"))
        parts += [rows, pruned]
    if not parts:
        return pd.DataFrame(columns=["model", "regularisation", "trial", "level", "control", "density", "accuracy"])
    return pd.concat(parts, ignore_index=True)


def recorded_tables(recorded=RECORDED) -> tuple[pd.DataFrame, dict]:
    """The combined summary of the committed runs, and which of them this checkout has (name -> found)."""
    found, runs = {}, []
    for name in recorded.values():
        rec = recorded_runs.recorded(name)
        found[name] = rec is not None
        if rec:
            runs.append((rec[1], rec[2]["config"], recorded_runs.first_layers(folder(name))))
    return combine(runs), found


def folder(name: str):
    return recorded_runs.folder_of(name)


def means(summary: pd.DataFrame, model: str = "lenet_300_100", reg: str = "L2") -> pd.DataFrame:
    """Mean accuracy over trials per level and method (columns), with each level's density; level 0 is
    the dense network (in every method's column, the common starting point)."""
    rows = summary[(summary.model == model) & (summary.regularisation == reg)]
    if rows.empty:
        return pd.DataFrame()
    table = rows.pivot_table(index="level", columns="control", values="accuracy", aggfunc="mean")
    density = rows.groupby("level").density.mean()
    dense = table.loc[0, "dense"] if 0 in table.index and "dense" in table else math.nan
    for control in METHODS:
        if control in table:
            table.loc[0, control] = dense
    return table.drop(columns="dense", errors="ignore").assign(density=density).sort_index()


def last_level(summary: pd.DataFrame, model: str, reg: str = "L2") -> pd.Series | None:
    """The mean row of the last level (the paper's densities), with the dense accuracy beside it."""
    table = means(summary, model, reg)
    if table.empty or table.index.max() == 0:
        return None
    row = table.loc[table.index.max()].copy()
    row["dense"] = table.loc[0, "finetune"] if "finetune" in table else math.nan
    return row


def no_loss(model: str):
    """Measure: fine-tuned accuracy at the paper's densities minus the dense network's (points)."""
    def measure(summary, curves):
        row = last_level(summary, model)
        paper = PAPER[model]
        target = 1 / paper["compression"]
        if row is None or "finetune" not in row or not target / 1.15 <= row.density <= target * 1.15:
            return sc._missing(f"no prune-and-fine-tune run of {NETS[model]} near {100 * target:.1f}% density")
        points = 100 * (row.finetune - row.dense)
        return sc.Measured(points, f"error {100 * (1 - row.dense):.2f}% -> {100 * (1 - row.finetune):.2f}% at "
                                   f"{100 * row.density:.1f}% ({1 / row.density:.1f}x)", fmt="{:+.2f} pts")
    return measure


def no_loss_rule(m) -> str:
    """Reproduced if the fine-tuned network loses at most 0.1 point (the paper's gains are 0.03-0.05 points,
    inside trial noise), partly within 0.5."""
    return sc.REPRODUCED if m.value >= -0.1 else sc.PARTLY if m.value >= -0.5 else sc.NOT


def keep_survivors(model: str = "lenet_300_100"):
    """Measure: fine-tuned accuracy minus the same mask re-initialised and trained for the whole budget,
    and minus re-initialised at the dense budget, at the last level (points)."""
    def measure(summary, curves):
        row = last_level(summary, model)
        if row is None or not {"finetune", "scratch", "reinit"} <= set(row.index) or pd.isna(row.scratch):
            return sc._missing("no re-initialised controls at the last level")
        vs_scratch, vs_reinit = 100 * (row.finetune - row.scratch), 100 * (row.finetune - row.reinit)
        return sc.Measured(vs_scratch, f"{vs_scratch:+.2f} pts vs whole budget, {vs_reinit:+.2f} vs dense budget, "
                                       f"at {100 * row.density:.1f}%", {"reinit": vs_reinit}, "{:+.2f} pts")
    return measure


def keep_survivors_rule(m) -> str:
    """Reproduced if fine-tuning beats both re-initialised controls, partly if one."""
    wins = int(m.value > 0) + int(m.parts["reinit"] > 0)  # (numpy bools add as "or")
    return sc.REPRODUCED if wins == 2 else sc.PARTLY if wins == 1 else sc.NOT


def l2_after_retraining(model: str = "lenet_300_100"):
    """Measure: L2 minus L1, fine-tuned, at the last level (points); before retraining beside it."""
    def measure(summary, curves):
        rows = {reg: last_level(summary, model, reg) for reg in ("L2", "L1")}
        if any(r is None or "finetune" not in r for r in rows.values()):
            return sc._missing("needs an L2 and an L1 run")
        after = 100 * (rows["L2"].finetune - rows["L1"].finetune)
        before = 100 * (rows["L2"].pruned - rows["L1"].pruned)
        return sc.Measured(after, f"L2 - L1: {after:+.2f} pts retrained, {before:+.2f} pts before retraining, "
                                  f"at {100 * rows['L2'].density:.1f}%", fmt="{:+.2f} pts")
    return measure


def centre_share(model: str = "lenet_300_100"):
    """Measure: the share of first-layer connections kept from the 4-pixel border against the centre, for
    the fine-tuned mask at the last level (columns `border_kept`, `centre_kept` set by `with_regions`)."""
    def measure(summary, curves):
        rows = summary[(summary.model == model) & (summary.control == "finetune") & (summary.regularisation == "L2")]
        if rows.empty or "border_kept" not in rows or rows.border_kept.isna().all():
            return sc._missing("no first-layer mask")
        last = rows[rows.level == rows.level.max()]
        border, centre = last.border_kept.mean(), last.centre_kept.mean()
        return sc.Measured(centre / max(border, 1e-9), f"border {100 * border:.1f}% vs centre {100 * centre:.1f}% "
                                                       f"kept", {"border": border}, "{:.1f}x")
    return measure


def claims() -> list[sc.Claim]:
    """Han, Pool, Tran & Dally (2015), paper-claims.md section 6 [P]."""
    return [
        sc.Claim("lenet300-12x", "Pruning LeNet-300-100 to 8% of its weights (12x) and fine-tuning loses no "
                 "accuracy", "error 1.64% -> 1.59% (Table 1)", no_loss("lenet_300_100"), no_loss_rule,
                 "test accuracy at the early stop after the last round of fine-tuning minus the dense "
                 "network's, mean over trials; reproduced if at most 0.1 point lower, partly within 0.5"),
        sc.Claim("lenet5-12x", "Pruning LeNet-5 to 8% of its weights (12x) and fine-tuning loses no accuracy",
                 "error 0.80% -> 0.77% (Table 1)", no_loss("lenet5"), no_loss_rule,
                 "as for LeNet-300-100, on the Caffe LeNet-5"),
        sc.Claim("keep-survivors", "Retraining the survivors from their trained values beats re-initialising "
                 "the pruned network", "better (Sec. 3.2; no number for LeNet)", keep_survivors(),
                 keep_survivors_rule, "fine-tuned minus the same mask re-initialised and trained for the "
                 "whole budget (dense training plus every round), and for the dense budget, at the last "
                 "level; reproduced if both are positive, partly if one"),
        sc.Claim("l2-after-retraining", "L2 regularisation gives the best results after retraining (L1 "
                 "before it)", "L2 best after retraining (Fig. 5, AlexNet)", l2_after_retraining(),
                 lambda m: sc.REPRODUCED if m.value > 0 else sc.PARTLY if m.value > -0.1 else sc.NOT,
                 "L2 minus L1 fine-tuned accuracy at the last level; reproduced if positive, partly within "
                 "0.1 point; measured on LeNet-300-100, the paper's figure is AlexNet's"),
        sc.Claim("first-layer-centre", "The first layer's surviving connections concentrate on the image "
                 "centre, where the digits are", "Fig. 4 (picture)", centre_share(),
                 lambda m: sc.REPRODUCED if m.value >= 5 else sc.PARTLY if m.value > 1 else sc.NOT,
                 "share of first-layer connections kept from the centre over that from the 4-pixel border, "
                 "fine-tuned mask at the last level; reproduced at 5x or more, partly above 1x"),
        sc.Claim("imagenet-9-13x", "AlexNet and VGG-16 prune 9x and 13x without loss on ImageNet",
                 "9x, 13x (Table 1)", lambda s, c: sc._missing("ImageNet is beyond a 2-core CPU"),
                 lambda m: sc.UNMEASURED, "not measured here"),
    ]


def margin_note(claims: list[sc.Claim], summary: pd.DataFrame, claim_id: str = "l2-after-retraining") -> str:
    """A sentence for the page beside a verdict: the claim's margin, how many trials agree, the range over
    trials, and whether that margin is within trial-to-trial noise (the trials' range spans zero, or is
    wider than the margin). The rule gives the verdict; this says how much it rests on."""
    claim = next(c for c in claims if c.id == claim_id)
    m, verdict = sc.judge(claim, summary)
    if math.isnan(m.value):
        return f"{claim_id} is not measured here."
    per = [sc.judge(claim, summary[summary.trial == t]) for t in sorted(summary.trial.unique())]
    per = [(t, v) for t, v in per if not math.isnan(t.value)]
    head = f"{claim_id} reads {verdict} by its rule on a margin of {m.fmt.format(m.value)}"
    if len(per) < 2:
        return head + ", from one trial: how far trials differ is not measured."
    lo, hi = min(t.value for t, _ in per), max(t.value for t, _ in per)
    agree = sum(v == verdict for _, v in per)
    spread = f"{agree} of {len(per)} trials agree ({m.fmt.format(lo)} to {m.fmt.format(hi)} over trials)"
    if (lo < 0 < hi) or abs(m.value) < hi - lo:
        return (f"{head}; {spread}. That margin is within trial-to-trial noise: the verdict follows the rule, "
                "but another trial could turn it.")
    return f"{head}; {spread}. The margin is larger than the spread over trials."


def mask_pictures(model: str = "lenet_300_100", trial: int = 0) -> dict[str, np.ndarray]:
    """Label -> first-layer mask: the fine-tuned network's at the last level of the recorded L2 run, one-shot
    pruning's there, and the IMP ticket's at the nearest density (Han et al.'s Figure 4 beside the ticket)."""
    out = {}
    rec = recorded_runs.recorded(RECORDED[(model, "L2")])
    if rec is None:
        return out
    masks, summary = recorded_runs.first_layers(folder(RECORDED[(model, "L2")])), rec[1]
    own = {u: m for u, m in masks.items() if u.trial == trial}
    last = max((u.level for u in own), default=None)
    if last is None:
        return out
    density = float(summary[(summary.trial == trial) & (summary.level == last)].density.mean())
    for control, label in (("finetune", "Han: iterative"), ("oneshot", "Han: one-shot")):
        unit = next((u for u in own if u.level == last and u.control == control), None)
        if unit is not None:
            out[f"{label}, P_m {100 * density:.1f}%"] = own[unit]
    imp = recorded_runs.recorded(IMP_MASKS.get(model, ""))
    if imp is not None:
        tickets = imp[1][(imp[1].control == "ticket") & (imp[1].trial == trial)]
        if len(tickets):
            row = tickets.iloc[np.abs(np.log(tickets.density / density)).argmin()]
            found = recorded_runs.first_layers(folder(IMP_MASKS[model]))
            unit = next((u for u in found if u.trial == trial and u.level == row.level and u.control == "ticket"), None)
            if unit is not None:
                out[f"IMP ticket (F&C), P_m {100 * row.density:.1f}%"] = found[unit]
    return out


def table1(summary: pd.DataFrame) -> pd.DataFrame:
    """Han et al.'s Table 1 rows for the nets we ran, ours beside theirs: error before and after pruning
    (test error at the early stop, mean over trials), weights before and after, compression."""
    rows = []
    for model, paper in PAPER.items():
        row = last_level(summary, model)
        if row is None:
            continue
        rows.append({"network": NETS[model],
                     "error before -> after (paper)": f"{paper['error'][0]:.2f}% -> {paper['error'][1]:.2f}%",
                     "error before -> after (ours)": f"{100 * (1 - row.dense):.2f}% -> {100 * (1 - row.finetune):.2f}%",
                     "weights (paper)": f"{paper['weights'][0]} -> {paper['weights'][1]}",
                     "density (ours)": f"{100 * row.density:.2f}%",
                     "compression (paper / ours)": f"{paper['compression']}x / {1 / row.density:.1f}x"})
    return pd.DataFrame(rows).set_index("network") if rows else pd.DataFrame()


def table2(summary: pd.DataFrame, model: str = "lenet_300_100", reg: str = "L2") -> pd.DataFrame:
    """Han et al.'s Table 2 for one net: per layer, the share kept (theirs, ours at the last level) and the
    quality parameter q (threshold / std of the survivors) each round of ours amounted to, mean over trials."""
    rows = summary[(summary.model == model) & (summary.regularisation == reg) & (summary.control == "finetune")]
    if rows.empty:
        return pd.DataFrame()
    last = rows[rows.level == rows.level.max()]
    out = []
    for layer, paper in PAPER[model]["kept"].items():
        short = layer.removesuffix(".weight")
        q = rows.groupby("level")[f"quality_{short}"].mean() if f"quality_{short}" in rows else pd.Series(dtype=float)
        out.append({"layer": short, "kept % (paper)": paper,
                    "kept % (ours)": round(100 * last[f"density_{short}"].mean(), 1) if f"density_{short}" in last
                    else math.nan,
                    "quality q per round (ours)": ", ".join(f"{v:.2f}" for v in q.values)})
    return pd.DataFrame(out).set_index("layer")


def methods_table(summary: pd.DataFrame, model: str = "lenet_300_100", reg: str = "L2") -> pd.DataFrame:
    """Test accuracy (%) at the early stop per level and method, mean over trials, with the density."""
    table = means(summary, model, reg)
    if table.empty:
        return table
    cols = [c for c in METHODS if c in table]
    out = (100 * table[cols]).round(2).rename(columns={c: METHODS[c][0] for c in cols})
    return out.assign(**{"density %": (100 * table.density).round(2)})[["density %", *out.columns]]


def against_imp(summary: pd.DataFrame, imp_summary: pd.DataFrame | None, model: str = "lenet_300_100",
                reg: str = "L2") -> pd.DataFrame:
    """Per level: Han's fine-tuned network and Han's mask on theta_0, beside Frankle & Carbin's IMP ticket
    (its own mask, found by retraining from theta_0) and its reinitialisation at the nearest density;
    test accuracy at the early stop (%), means over trials."""
    table = means(summary, model, reg)
    if table.empty or imp_summary is None or imp_summary.empty:
        return pd.DataFrame()
    imp = imp_summary[imp_summary.level > 0]
    by_level = imp.groupby(["level", "control"]).agg(density=("density", "mean"),
                                                     acc=("early_stop_test_accuracy", "mean"))
    tickets = by_level.xs("ticket", level="control")
    rows = []
    for level, row in table[table.index > 0].iterrows():
        nearest = int(tickets.index[np.abs(np.log(tickets.density / row.density)).argmin()])
        reinit = by_level.acc.get((nearest, "reinit"), math.nan)
        rows.append({"level": level, "density %": round(100 * row.density, 1),
                     "Han, fine-tuned %": round(100 * row.get("finetune", math.nan), 2),
                     "Han's mask on theta_0 %": round(100 * row.get("ticket", math.nan), 2),
                     "IMP level": nearest, "IMP density %": round(100 * tickets.density[nearest], 1),
                     "IMP ticket %": round(100 * tickets.acc[nearest], 2), "IMP reinit %": round(100 * reinit, 2)})
    return pd.DataFrame(rows).set_index("level")


def regularisation_table(summary: pd.DataFrame, model: str = "lenet_300_100") -> pd.DataFrame:
    """Per level: accuracy (%) before and after retraining under L2 and under L1 (Han et al.'s Figure 5)."""
    cols = {}
    for reg in ("L2", "L1"):
        table = means(summary, model, reg)
        if table.empty or "finetune" not in table:
            continue
        cols[f"{reg} density %"] = (100 * table.density).round(2)
        cols[f"{reg} before retraining"] = (100 * table.get("pruned")).round(2)
        cols[f"{reg} retrained"] = (100 * table.finetune).round(2)
    return pd.DataFrame(cols)


# Xavier (Gaussian Glorot, Frankle & Carbin's) against Kaiming normal: IMP tickets and their reinitialisations
# on LeNet-300-100 at Frankle & Carbin's settings, init -> recorded run
INIT_RUNS = {"glorot_normal": "lenet_mnist_paper", "kaiming_normal": "lenet_mnist_kaiming"}
INIT_NAMES = {"glorot_normal": "Xavier normal", "kaiming_normal": "Kaiming normal"}


def init_table(runs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per level that every init's run trained a reinit control at (and the dense level): each init's ticket
    and reinit test accuracy at the early stop (%) and the ticket's early-stop iteration, means over trials
    (init -> that run's summary)."""
    parts = {}
    for init, summary in runs.items():
        rows = summary[summary.control.isin(["ticket", "reinit"])]
        table = rows.groupby(["level", "control"]).agg(density=("density", "mean"),
                                                       acc=("early_stop_test_accuracy", "mean"),
                                                       es=("early_stop_iteration", "mean")).unstack("control")
        name = INIT_NAMES.get(init, init)
        parts[init] = pd.DataFrame({"density %": (100 * table["density"]["ticket"]).round(1),
                                    f"{name}: ticket %": (100 * table["acc"]["ticket"]).round(2),
                                    f"{name}: reinit %": (100 * table["acc"].get("reinit")).round(2)
                                    if "reinit" in table["acc"] else math.nan,
                                    f"{name}: ticket early stop": table["es"]["ticket"].round(0)})
    if not parts:
        return pd.DataFrame()
    reinit_levels = [set(t.index[t.iloc[:, 2].notna()]) | {0} for t in parts.values()]
    levels = sorted(set.intersection(*reinit_levels))
    first = next(iter(parts.values()))
    out = first.loc[levels, ["density %"]]
    for table in parts.values():
        out = out.join(table.loc[levels].drop(columns="density %"))
    return out


# What Han et al. state of the procedure (paper-claims.md section 6 [P]); the rest is "not stated" in our
# sources, and the dense training is Frankle & Carbin's (params/lenet_mnist.yaml) so that the ticket is theirs
PAPER_SETTINGS = {"procedure": "prune_finetune", "dataset": "mnist", "model": "lenet_300_100",
                  "finetune_lr_factor": 0.1, "target_density": {"fc1.weight": 0.08, "fc2.weight": 0.09,
                                                                "fc3.weight": 0.26}}


def recorded_runs_table(names) -> tuple[pd.DataFrame, list[str]]:
    """What each committed run covers and cost, and the command that trains exactly it."""
    from ..book.report import recorded_runs_table as table

    def describe(summary, stored):
        reg = regularisation(stored)
        strength = stored.get("l1_penalty") if reg == "L1" else stored.get("weight_decay")
        finetune = f" + {int(stored['finetune_iterations']):,} a round" if "finetune_iterations" in stored else ""
        procedure = "IMP (Frankle & Carbin)" if stored.get("procedure", "imp") == "imp" else "Han et al."
        return summary, {
            "network": NETS.get(stored["model"], stored["model"]),
            "what": f"{procedure}; {INIT_NAMES.get(stored['init'], stored['init'])}; "
                    + (f"{reg} {strength:g}" if reg != "none" else "no regularisation"),
            "levels": summary.level.max(), "methods": ", ".join(sorted(summary.control.unique())),
            "steps": f"{int(stored['iterations']):,}{finetune}"}, ""
    return table(names, describe)


def bookwide_tables():
    """(curves, summary, run scale) for the book-wide scorecard (lt_core/chapters/catalogue.py)."""
    summary, found = recorded_tables()
    runs = summary[summary.control != "pruned"]
    if runs.empty:
        return None, summary, "no recorded prune-and-fine-tune run"
    parts = ", ".join(f"{SHORT.get(model, model)} {reg} {g.trial.nunique()} trial(s)"
                      for (model, reg), g in runs.groupby(["model", "regularisation"], sort=False))
    return None, summary, f"recorded: {parts}; {len(runs)} networks"
