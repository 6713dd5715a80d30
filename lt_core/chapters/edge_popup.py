"""The edge-popup chapter (Ramanujan et al. 2020; book/edge_popup.ipynb): subnetworks of random weights,
found by learning only which weights to keep.

The chapter reads several runs at once: one edge-popup run per (network, initialisation), and the trained
dense network each is set against (the level-0 network of a Frankle-Carbin run of the same net). `combine`
stacks them into one summary with the columns `model`, `init`, `keep` and `accuracy` (edge-popup: test
accuracy at the end of its cosine schedule, as the paper reports; dense: at its early stop, as Frankle &
Carbin report). The dense rows keep control "ticket" and level 0, so the scorecard engine
(lt_core/book/scorecard.py) finds them as every chapter's dense network. The figures are in edge_popup_plots.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..book import scorecard as sc
from ..runs import recorded as recorded_runs

INITS = {  # the paper's names, in its order of merit (paper-claims.md section 4, unconfirmed ordering)
    "signed_kaiming_constant_scaled": "scaled signed constant",
    "kaiming_normal_scaled": "scaled Kaiming normal",
    "kaiming_normal": "Kaiming normal",
    "glorot_normal": "Xavier normal",
    "signed_kaiming_constant": "signed constant",
    "kaiming_uniform": "Kaiming uniform",
}
COLORS = dict(zip(INITS, ("tab:red", "tab:purple", "tab:blue", "tab:green", "tab:orange", "tab:brown")))
NETS = {"lenet_300_100": "LeNet-300-100 (MNIST)", "conv2": "Conv-2 (CIFAR-10)", "conv4": "Conv-4 (CIFAR-10)",
        "conv6": "Conv-6 (CIFAR-10)", "conv8": "Conv-8 (CIFAR-10)"}

# book/recorded/<name>: (model, init) -> the edge-popup run; model -> the run whose level 0 is the trained net
RECORDED = {
    ("lenet_300_100", "signed_kaiming_constant_scaled"): "edge_popup_lenet_signed_constant_scaled",
    ("lenet_300_100", "kaiming_normal_scaled"): "edge_popup_lenet_kaiming_normal_scaled",
    ("lenet_300_100", "kaiming_normal"): "edge_popup_lenet_kaiming_normal",
    ("lenet_300_100", "glorot_normal"): "edge_popup_lenet_glorot_normal",
    ("conv2", "signed_kaiming_constant_scaled"): "edge_popup_conv2_signed_constant_scaled",
    # its k = 0.9, recorded apart (2026-12-03, another machine): in one folder the five k's masks pass 2 MB
    ("conv2", "signed_kaiming_constant_scaled", 0.9): "edge_popup_conv2_signed_constant_scaled_k09",
    ("conv2", "kaiming_normal"): "edge_popup_conv2_kaiming_normal",
    ("conv4", "signed_kaiming_constant_scaled"): "edge_popup_conv4_signed_constant_scaled",
}
# the trained dense networks: Frankle & Carbin's Adam protocol, and (conv nets) the edge-popup SGD recipe
# (Frankle & Carbin's Conv-2 protocol, params/conv_cifar.yaml, is not recorded yet: issue 14's run)
DENSE = {"lenet_300_100": "lenet_mnist_paper", "conv2 sgd": "conv_dense_sgd_conv2", "conv4 sgd": "conv_dense_sgd_conv4"}


def combine(edge_popup: list[tuple[pd.DataFrame, dict]], dense: list[tuple[pd.DataFrame, dict]]) -> pd.DataFrame:
    """One summary of edge-popup runs and trained dense networks: (summary, stored config) pairs of each.
    A dense network's trials are not the edge-popup runs' trials (other experiments, other seeds), so each
    net's dense row is the mean over its trials (`dense_trials` of them), repeated for every edge-popup
    trial: the spread over trials is then the edge-popup runs' alone."""
    parts = []
    for summary, stored in edge_popup:
        rows = summary[summary.control == "supermask"]
        parts.append(rows.assign(model=stored["model"], init=stored["init"], accuracy=rows.final_test_accuracy,
                                 epochs=stored["iterations"] * stored["batch_size"] / _train_size(stored)))
    trials = sorted(set().union(*(set(p.trial) for p in parts))) if parts else [0]
    for summary, stored in dense:
        rows = summary[(summary.control == "ticket") & (summary.level == 0)]
        if rows.empty:
            continue
        # Frankle & Carbin read a network at its early stop; a cosine schedule is read at its end, as the
        # edge-popup paper reads its own
        at_end = stored.get("lr_schedule") == "cosine"
        accuracy = (rows.final_test_accuracy if at_end else rows.early_stop_test_accuracy).mean()
        epochs = (stored["iterations"] if at_end else rows.early_stop_iteration.mean()) * stored["batch_size"] / _train_size(stored)
        mean = {"model": stored["model"], "init": stored["init"], "keep": 1.0, "density": 1.0, "control": "ticket",
                "level": 0, "accuracy": accuracy, "dense_trials": len(rows),
                "epochs": epochs, "iterations": stored["iterations"], "optimizer": stored["optimizer"]}
        parts.append(pd.DataFrame([{**mean, "trial": t} for t in trials]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["model", "init", "keep", "accuracy", "control", "level", "trial"])


def _train_size(stored: dict) -> int:
    return {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000}[stored["dataset"]] - stored["val_size"]


def recorded_tables(recorded=RECORDED, dense=DENSE) -> tuple[pd.DataFrame, dict]:
    """The combined summary of the committed runs, and which of them this checkout has (name -> found)."""
    found, tables = {}, {"edge_popup": [], "dense": []}
    for kind, names in (("edge_popup", recorded.values()), ("dense", dense.values())):
        for name in names:
            rec = recorded_runs.recorded(name)
            found[name] = rec is not None
            if rec:
                tables[kind].append((rec[1], rec[2]["config"]))
    return combine(tables["edge_popup"], tables["dense"]), found


def by_keep(summary: pd.DataFrame, model: str, init: str) -> pd.Series:
    """Mean accuracy over trials per kept fraction k of one (model, init)'s edge-popup runs."""
    rows = summary[(summary.control == "supermask") & (summary.model == model) & (summary.init == init)]
    return rows.groupby("keep").accuracy.mean().sort_index()


def dense_accuracies(summary: pd.DataFrame, model: str) -> pd.Series:
    """optimizer -> mean test accuracy of `model` trained dense that way (adam: Frankle & Carbin's protocol,
    at its early stop; sgd: the edge-popup recipe, at the end)."""
    rows = summary[(summary.control == "ticket") & (summary.level == 0) & (summary.model == model)]
    if rows.empty:
        return pd.Series(dtype=float)
    return rows.groupby(rows.get("optimizer", pd.Series("adam", index=rows.index))).accuracy.mean()


def dense_accuracy(summary: pd.DataFrame, model: str) -> float:
    """The trained network an untrained subnetwork is set against: the better of the dense baselines."""
    accs = dense_accuracies(summary, model)
    return float(accs.max()) if len(accs) else math.nan


def gap(summary: pd.DataFrame, model: str, init: str) -> float:
    """Best edge-popup accuracy over k minus the trained dense network's, in points (NaN if either is missing)."""
    acc, dense = by_keep(summary, model, init), dense_accuracy(summary, model)
    return math.nan if acc.empty else 100 * (acc.max() - dense)


def best_k(model: str, init: str, lo: float = 0.3, hi: float = 0.7):
    """Measure: the k of highest accuracy, and the best accuracy inside [lo, hi]. Measured only where the
    sweep has at least three k, inside and outside the range."""
    def measure(summary, curves):
        acc = by_keep(summary, model, init)
        inside = acc[(acc.index >= lo - 1e-9) & (acc.index <= hi + 1e-9)]
        if len(acc) < 3 or inside.empty or len(inside) == len(acc):
            return sc._missing(f"no k sweep of {NETS.get(model, model)}, {INITS.get(init, init)} "
                               f"around [{lo:g}, {hi:g}]")
        k = float(acc.idxmax())
        edge = k in (acc.index.min(), acc.index.max())  # the peak may lie beyond the sweep
        return sc.Measured(k, f"k = {k:g} ({100 * acc.max():.1f}%) of {', '.join(f'{x:g}' for x in acc.index[::-1])}"
                           f"{', at the edge of the sweep' if edge else ''}; {NETS.get(model, model)}",
                        {"best": float(acc.max()), "inside": float(inside.max()), "lo": lo, "hi": hi, "edge": edge},
                        "{:g}")
    return measure


def best_k_rule(m) -> str:
    """Reproduced if the best k lies in [lo, hi] and inside the sweep (a best k at the sweep's edge may have
    a better one beyond it: partly); partly if the best k inside [lo, hi] is within 1 point of the best."""
    if m.parts["lo"] - 1e-9 <= m.value <= m.parts["hi"] + 1e-9:
        return sc.PARTLY if m.parts["edge"] else sc.REPRODUCED
    return sc.PARTLY if m.parts["best"] - m.parts["inside"] <= 0.01 else sc.NOT


def gap_to_dense(model: str, init: str):
    """Measure: best edge-popup accuracy over k minus the trained dense network's, in points."""
    def measure(summary, curves):
        points = gap(summary, model, init)
        if math.isnan(points):
            return sc._missing(f"no edge-popup run or no trained dense {NETS.get(model, model)}")
        acc, dense = by_keep(summary, model, init), dense_accuracy(summary, model)
        return sc.Measured(points, f"{points:+.1f} pts ({100 * acc.max():.1f}% at k = {acc.idxmax():g} vs trained "
                                   f"{100 * dense:.1f}%); {NETS.get(model, model)}", {"gap": points}, "{:+.1f} pts")
    return measure


def gap_rule(paper_gap: float):
    """Reproduced within 2 points of the paper's gap, partly within 5."""
    def rule(m):
        off = abs(m.value - paper_gap)
        return sc.REPRODUCED if off <= 2 else sc.PARTLY if off <= 5 else sc.NOT
    return rule


def init_order(model: str, order=("signed_kaiming_constant_scaled", "kaiming_normal_scaled", "kaiming_normal",
                                  "glorot_normal")):
    """Measure: each init's best accuracy over k on `model`, in the paper's order of merit."""
    def measure(summary, curves):
        best = {init: by_keep(summary, model, init).max() for init in order}
        if any(pd.isna(v) for v in best.values()):
            return sc._missing(f"not every init of {', '.join(INITS[i] for i in order)} was run")
        shown = " / ".join(f"{100 * best[i]:.1f}" for i in order)
        return sc.Measured(float(best[order[0]] - best[order[-1]]) * 100,
                        f"{shown} (best over k, %; {NETS.get(model, model)})", {"best": best},
                        "{:+.1f} pts first - last")
    return measure


def init_order_rule(m) -> str:
    """signed constant >= scaled Kaiming > Kaiming > Xavier (ties for >= within 0.1 point): reproduced
    if all hold; partly if both scaled inits beat both unscaled ones and Kaiming beats Xavier."""
    sc_, sk, k, x = (m.parts["best"][i] for i in ("signed_kaiming_constant_scaled", "kaiming_normal_scaled",
                                                 "kaiming_normal", "glorot_normal"))
    if sc_ >= sk - 0.001 and sk > k > x:
        return sc.REPRODUCED
    return sc.PARTLY if min(sc_, sk) > max(k, x) and k > x else sc.NOT


def gap_at(summary: pd.DataFrame, model: str, init: str, keeps) -> float:
    """Best edge-popup accuracy over the kept fractions `keeps` minus the trained dense network's (points)."""
    acc, dense = by_keep(summary, model, init), dense_accuracy(summary, model)
    acc = acc[acc.index.isin(list(keeps))]
    return math.nan if acc.empty else 100 * (acc.max() - dense)


def deeper_closes_gap(shallow: str = "conv2", deep: str = "conv4", init: str = "signed_kaiming_constant_scaled"):
    """Measure: gap to dense of the deeper net minus that of the shallower (points; > 0 closes the gap), each
    the best over the k values both nets were run at (a net run at fewer k is compared at those)."""
    def measure(summary, curves):
        common = sorted(set(by_keep(summary, shallow, init).index) & set(by_keep(summary, deep, init).index))
        gaps = {model: gap_at(summary, model, init, common) for model in (shallow, deep)}
        for model, points in gaps.items():
            if math.isnan(points):
                return sc._missing(f"no edge-popup run at a common k with its trained dense {NETS.get(model, model)}")
        closed = gaps[deep] - gaps[shallow]
        at = f"k = {common[0]:g}" if len(common) == 1 else f"best of k = {', '.join(f'{k:g}' for k in common[::-1])}"
        return sc.Measured(closed, f"gap {gaps[shallow]:+.1f} ({NETS[shallow].split(' ')[0]}) -> {gaps[deep]:+.1f} pts "
                                   f"({NETS[deep].split(' ')[0]}), {at}", fmt="{:+.1f} pts")
    return measure


# the paper column's mark for what a third party read off Figure 3 (paper-claims.md section 4: unconfirmed)
FIG3 = "(read off Fig. 3 by a third party, unconfirmed)"


def not_measured(why: str):
    return lambda summary, curves: sc._missing(why)



def claims() -> list[sc.Claim]:
    """Ramanujan et al. (2020), paper-claims.md section 4; the CIFAR-10 numbers, the best k range, the closing
    gap and the order of the inits are a third party's reading of Figure 3 (the text gives no table) and are
    marked unconfirmed there, and so in the paper column (FIG3); the ImageNet ones are the paper's and the
    README's."""
    return [
        sc.Claim("best-k", "The best subnetwork keeps k between 30% and 70% of each layer's weights "
                 "(Conv-2, scaled signed constant)", f"k in [0.3, 0.7] {FIG3}",
                 best_k("conv2", "signed_kaiming_constant_scaled"), best_k_rule,
                 "k of the highest test accuracy at the end, mean over trials; reproduced if in [0.3, 0.7] and "
                 "not at the edge of the sweep (else partly: the peak may lie beyond), partly if the best k "
                 "inside is within 1 point of it; needs k values inside and outside"),
        sc.Claim("conv2-gap", "An untrained Conv-2 subnetwork comes within about 2 points of the trained "
                 "dense Conv-2", f"77.5% vs 79.5% {FIG3}",
                 gap_to_dense("conv2", "signed_kaiming_constant_scaled"), gap_rule(-2.0),
                 "best edge-popup accuracy over k minus the better trained dense Conv-2 (Frankle & Carbin's "
                 "Adam protocol at its early stop, or SGD with the scores' recipe but its own learning rate, "
                 "at its end); reproduced within 2 points of the paper's -2, partly within 5"),
        sc.Claim("init-order", "Scaled signed constant >= scaled Kaiming normal > Kaiming normal > Xavier normal",
                 f"signed constant >= scaled Kaiming normal > Kaiming normal > Xavier normal {FIG3}",
                 init_order("lenet_300_100"), init_order_rule,
                 "best accuracy over k per init, measured on LeNet-300-100 (the paper's order is on its conv "
                 "nets); reproduced if the order holds (>= within 0.1 point), partly if both scaled inits "
                 "beat both unscaled and Kaiming beats Xavier"),
        sc.Claim("deeper-closes-gap", "Deeper random networks close the gap to the trained network "
                 "(Conv-2 to Conv-4)", f"gap ~-2 -> ~-0.5 pts {FIG3}", deeper_closes_gap(),
                 lambda m: sc.scale(m.value, 0.75),
                 "Conv-4's gap minus Conv-2's (points), each the best over the k both were run at; reproduced if "
                 "it closes by >= 0.75 (half the paper's 1.5), partly if it closes at all"),
        sc.Claim("imagenet-wide-resnet", "A random Wide ResNet-50 hides a subnetwork (k = 0.3) that "
                 "matches a trained ResNet-34 on ImageNet", "73.3% top-1 (signed constant)",
                 not_measured("ImageNet is beyond a 2-core CPU"), lambda m: sc.UNMEASURED,
                 "not measured here"),
    ]


def best_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per network and init: the best k, its accuracy, the trained dense network's and the gap."""
    rows = []
    for (model, init), group in summary[summary.control == "supermask"].groupby(["model", "init"]):
        acc, trained, points = by_keep(summary, model, init), dense_accuracies(summary, model), gap(summary, model, init)
        rows.append({"network": NETS.get(model, model), "init": INITS.get(init, init),
                     "k swept": ", ".join(f"{k:g}" for k in acc.index[::-1]),
                     "epochs": f"{group.epochs.iloc[0]:.0f}", "best k": f"{acc.idxmax():g}",
                     "accuracy %": f"{100 * acc.max():.1f}",  # as the scorecard prints it
                     "trained dense %": ", ".join(f"{100 * a:.1f} ({'Adam' if o == 'adam' else 'SGD'})"
                                                  for o, a in trained.items()) or "not run",
                     "gap (pts)": "" if math.isnan(points) else round(points, 1)})
    return pd.DataFrame(rows)


def against_tickets(summary: pd.DataFrame, imp_summary: pd.DataFrame, init: str,
                    model: str = "lenet_300_100") -> pd.DataFrame:
    """Per k of one init's edge-popup sweep: the untrained subnetwork's test accuracy beside the IMP ticket
    (weights trained), its reinitialisation and a random sparse net of Frankle & Carbin's run at the nearest
    overall density (IMP prunes the output layer at half the rate, so the densities differ a little)."""
    rows = summary[(summary.control == "supermask") & (summary.model == model) & (summary.init == init)]
    mean = lambda frame, col: 100 * frame[col].mean() if len(frame) else math.nan
    out = []
    for keep, group in rows.groupby("keep"):
        tickets = imp_summary[(imp_summary.control == "ticket") & (imp_summary.level > 0)]
        level = int(tickets.level.iloc[np.abs(np.log(tickets.density / group.density.mean())).argmin()])
        at = imp_summary[imp_summary.level == level]
        out.append({"k": keep, "edge-popup density %": round(100 * group.density.mean(), 1),
                    "edge-popup %": round(mean(group, "accuracy"), 1), "IMP level": level,
                    "IMP density %": round(100 * at.density.iloc[0], 1),
                    **{f"{c} %": round(mean(at[at.control == c], "early_stop_test_accuracy"), 1)
                       for c in ("ticket", "reinit", "random")}})
    return pd.DataFrame(out).sort_values("k", ascending=False).set_index("k")


def recorded_first_layers(name: str, trial: int = 0) -> dict[float, np.ndarray]:
    """k -> the first layer's mask of a recorded edge-popup run (book/recorded/<name>/masks.zip)."""
    masks = recorded_runs.first_layers(recorded_runs.folder_of(name))
    return {unit.level / 1000: m for unit, m in masks.items() if unit.trial == trial and unit.control == "supermask"}


def first_layers(cfg, root=None, trial: int = 0) -> dict[float, np.ndarray]:
    """k -> the first layer's mask of each finished edge-popup unit of `cfg` in the run store."""
    from ..runs import results
    return {unit.level / 1000: m for unit, (m, _) in results.first_layers(cfg, root).items() if unit.trial == trial}


def imp_layer_shares(imp_cfg) -> pd.DataFrame:
    """Per IMP level of `imp_cfg` (Frankle & Carbin's counting rule, before anything is trained): the overall
    density and each layer's share of its weights kept."""
    from ..book.chapter import describe
    counts = describe(imp_cfg)
    layers = [c for c in counts.columns if c != "density %"]
    shares = counts[layers] / counts.loc[0, layers]
    return shares.assign(density=counts["density %"] / 100)


def pixel_regions(masks: dict[float, np.ndarray], constant: np.ndarray, k_digits: int = 3) -> pd.DataFrame:
    """Per k: the share of first-layer connections kept from input pixels that are constant over the training
    set (`constant`: 784 bools) and from the others; uniform choice would keep k of both."""
    rows = []
    for k in sorted(masks, reverse=True):
        kept = masks[k].mean(axis=0)
        rows.append({"k": round(k, k_digits), "constant pixels kept %": round(100 * kept[constant].mean(), 1),
                     "other pixels kept %": round(100 * kept[~constant].mean(), 1)})
    return pd.DataFrame(rows).set_index("k")


# The official CIFAR-10 recipe for the scores (paper-claims.md section 4 [P]; allenai/hidden-networks
# configs): what chapter.settings sets a run against. The paper trains no fully connected net: for LeNet
# these are the settings carried over.
PAPER_SETTINGS = {
    "procedure": "edge_popup", "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0001,
    "batch_size": 128, "schedule": "cosine", "val_size": 0,
}
# the shared training fields edge-popup does not read: its scores' rate follows `schedule` alone
# (lt_core/training/supermask.py: cfg.lr, cosine-annealed or constant)
UNUSED = ("lr_schedule", "lr_drops", "lr_drop_factor", "warmup_iterations")


def settings(cfg) -> pd.DataFrame:
    """The run's settings against the paper's (lt_core/book/chapter.settings), without the fields edge-popup
    does not read (UNUSED): a `lr_schedule steps` beside `schedule cosine` would read as two schedules."""
    from ..book.chapter import settings as table
    return table(cfg, PAPER_SETTINGS).drop(index=list(UNUSED), errors="ignore")


def dense_lrs(dense=DENSE, recorded=RECORDED) -> dict[str, str]:
    """The learning rates of the recorded conv runs: {"scores": the edge-popup runs', "dense": the SGD-trained
    dense nets'} (each the distinct values, as text), so the page says what its baselines were trained at."""
    found = {"scores": set(), "dense": set()}
    for kind, names in (("scores", [n for key, n in recorded.items() if key[0] != "lenet_300_100"]),
                        ("dense", [n for key, n in dense.items() if key.endswith(" sgd")])):
        for name in names:
            rec = recorded_runs.recorded(name)
            if rec is not None:
                found[kind].add(float(rec[2]["config"]["lr"]))
    return {kind: ", ".join(f"{lr:g}" for lr in sorted(lrs)) or "not recorded" for kind, lrs in found.items()}


def recorded_runs_table(names) -> tuple[pd.DataFrame, list[str]]:
    """What each committed run behind the chapter covers and cost, and the commands that train exactly
    those runs (resumable; `--resume-from book/recorded/<name>` restores one without training)."""
    from ..book.report import recorded_runs_table as table

    def describe(summary, stored):
        dense = stored.get("procedure", "imp") != "edge_popup"
        summary = summary[(summary.control == "ticket") & (summary.level == 0)] if dense else summary
        return summary, {
            "network": NETS.get(stored["model"], stored["model"]),
            "what": (f"dense, trained ({'Adam' if stored['optimizer'] == 'adam' else 'SGD'}, level 0)" if dense
                     else f"edge-popup, {INITS.get(stored['init'])}"),
            "k": "" if dense else ", ".join(f"{k:g}" for k in sorted(summary.keep, reverse=True)),
            "steps": f"{int(stored['iterations']):,}",
            "epochs": f"{stored['iterations'] * stored['batch_size'] / _train_size(stored):.0f}",
        }, (" --set levels=0" if dense and stored.get("levels") else "" if dense else _untrained(summary, stored))
    return table(names, describe)


def _untrained(summary: pd.DataFrame, stored: dict) -> str:
    """A shell comment after a recorded run's command when its recording holds fewer k than the command names
    (a run stopped early): the command trains those too."""
    held = {round(float(k), 6) for k in summary.keep}
    missing = [k for k in sorted(stored.get("keep", ()), reverse=True) if round(float(k), 6) not in held]
    if not missing:
        return ""
    return (f"  # recorded: k = {', '.join(f'{k:g}' for k in sorted(held, reverse=True))} only (stopped before "
            f"k = {', '.join(f'{k:g}' for k in missing)}, which this command trains too)")


def bookwide_tables():
    """(curves, summary, run scale) for the book-wide scorecard (lt_core/chapters/catalogue.py)."""
    summary, found = recorded_tables()
    runs = summary[summary.control == "supermask"]
    nets = ", ".join(f"{NETS.get(m, m).split(' ')[0]} {g.epochs.iloc[0]:.0f} epochs x {g.init.nunique()} init(s)"
                     for m, g in runs.groupby("model", sort=False))
    return None, summary, (f"recorded, {runs.trial.nunique()} trial(s): {nets}; {len(runs)} networks"
                           if len(runs) else "no recorded edge-popup run")
