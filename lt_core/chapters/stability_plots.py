"""Figures of the late-resetting chapter (book/stability.ipynb): the error along the path between two
copies, the barrier against density and against k, the ticket against its controls per k, and the
distance to the dense network. Each takes a combined summary (lt_core/chapters/stability.combined) and
returns a matplotlib Figure; nothing is read from disk.
"""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..book.plots import density_axis
from .stability import (ACC, MATCH_POINTS, RESNET, RESNET_IMP, STABLE_POINTS, barriers, column, late_resetting, path,
                        select)

CONTROLS = {"ticket": ("ticket (rewound to k)", "C0", "-"), "reinit": ("reinitialised", "C3", "--"),
            "random": ("random mask, rewound", "C2", ":")}


def _empty(ax, what="no run in this checkout"):
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, fontsize=8)


def paths(summary: pd.DataFrame, run_label: str = "", resnet: bool = True) -> Figure:
    """Left: test error along the line from the ticket (alpha 0) to its twin (alpha 1), LeNet at k = 0,
    one line per level with twins; right: the dense ResNet-20's paths, one line per k (trial 0). Without
    `resnet` (an execution that trains LeNet alone), the LeNet panel only."""
    fig = Figure(figsize=(9.4, 3.5) if resnet else (5.2, 3.5), layout="constrained")
    left, right = fig.subplots(1, 2) if resnet else (fig.subplots(), None)
    panels = [(left, select(summary, "LeNet-300-100", 0), "level")]
    if resnet:
        panels.append((right, select(summary, "ResNet-20", runs=RESNET), "k"))
    for ax, run, by in panels:
        table = barriers(run) if len(run) else None
        if table is not None and by == "k":
            table = table[table.level == 0]  # the dense network's twins
        if table is None or table.empty:
            _empty(ax)
            continue
        table = table[table.trial == 0]
        colors = iter(matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(table))))
        for _, row in table.iterrows():
            line = path(run, int(row.level), 0, int(row.draw))
            name = f"P_m {row['density %']:.1f}%" if by == "level" else f"k = {int(row.k):,}"
            ax.plot(line.alpha, line["test error %"], color=next(colors), lw=1.2, label=name)
        ax.set_xlabel("alpha (0: the copy, 1: its twin)", fontsize=8)
        ax.set_ylabel("test error (%)", fontsize=8)
        ax.legend(fontsize=6.5, ncol=2)
    left.set_title("LeNet-300-100, k = 0: ticket and twin per level", fontsize=9)
    if right is not None:
        right.set_title("dense ResNet-20: twins from iteration k", fontsize=9)
    fig.suptitle(f"Error along the straight line between two copies{': ' + run_label if run_label else ''}", fontsize=9)
    return fig


def barrier_vs(summary: pd.DataFrame) -> Figure:
    """Left: each LeNet run's error barrier against P_m (one line per k); right: the dense networks'
    barrier against k (LeNet: one run per k; ResNet-20: one run, a twin per k). Means over trials."""
    fig = Figure(figsize=(9.4, 3.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    lenet = select(summary, "LeNet-300-100")
    dense_k = []
    for k in sorted(lenet.rewind.unique()) if len(lenet) else []:
        table = barriers(lenet[lenet.rewind == k]).groupby("level").mean(numeric_only=True)
        left.plot(table["density %"] / 100, table["error barrier (points)"], marker="o", ms=3, label=f"k = {k:,}")
        if 0 in table.index:
            dense_k.append((k, table.loc[0, "error barrier (points)"]))
    if dense_k:
        density_axis(left, lenet.density.to_numpy(), ticks_per_span=5)
        left.legend(fontsize=6.5)
        right.plot(*zip(*[(max(k, 10), b) for k, b in dense_k]), marker="o", label="LeNet-300-100")
    else:
        _empty(left)
    resnet = select(summary, "ResNet-20", runs=RESNET)
    table = barriers(resnet) if len(resnet) else pd.DataFrame()
    if len(table):
        table = table[table.level == 0].groupby("k").mean(numeric_only=True)
        right.plot([max(k, 10) for k in table.index], table["error barrier (points)"], marker="s", label="ResNet-20")
    for ax in (left, right):
        ax.axhline(STABLE_POINTS, color="grey", ls="--", lw=0.8)
        ax.set_ylabel("error barrier (points)", fontsize=8)
    right.set_xscale("log")
    right.set_xlabel("k, the iteration the copies start from (k = 0 drawn at 10)", fontsize=8)
    right.legend(fontsize=6.5)
    left.set_title("IMP subnetworks and their twins, LeNet-300-100", fontsize=9)
    right.set_title("the dense networks", fontsize=9)
    fig.suptitle("Instability: the error barrier between two copies (dashed: 2 points, the paper's 'stable')", fontsize=9)
    return fig


def controls_vs_density(summary: pd.DataFrame) -> Figure:
    """One panel per LeNet k: test accuracy at the early stop of the ticket, the reinitialised ticket and
    the random mask, all rewound alike, against P_m (band: lowest to highest trial)."""
    lenet = select(summary, "LeNet-300-100")
    ks = sorted(lenet.rewind.unique()) if len(lenet) else []
    fig = Figure(figsize=(2.6 * max(len(ks), 1) + 1, 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(ks), 1), sharey=True))
    if not ks:
        _empty(axes[0])
    for ax, k in zip(axes, ks):
        run = lenet[(lenet.rewind == k) & (lenet.level > 0)]
        for control, (name, color, ls) in CONTROLS.items():
            rows = run[run.control == control].groupby("level").agg(density=("density", "mean"), mean=(ACC, "mean"),
                                                                     low=(ACC, "min"), high=(ACC, "max"))
            if len(rows) < 2:
                continue
            ax.plot(rows.density, 100 * rows["mean"], color=color, ls=ls, marker="o", ms=2.5, label=name)
            ax.fill_between(rows.density, 100 * rows.low, 100 * rows.high, color=color, alpha=0.15, lw=0)
        density_axis(ax, run.density.to_numpy(), ticks_per_span=3)
        ax.set_title(f"k = {k:,}", fontsize=9)
    axes[0].set_ylabel("test accuracy at early stop (%)", fontsize=8)
    axes[0].legend(fontsize=6.5, loc="lower left")
    fig.suptitle("LeNet-300-100: the ticket against Liu et al.'s controls, rewound alike", fontsize=9)
    return fig


def resnet_late_resetting(summary: pd.DataFrame) -> Figure:
    """Left: ResNet-20 IMP at lr 0.1, the early-stop test accuracy of the ticket reset to k = 0 and rewound
    to a later k, and of their reinitialised twins, against P_m, with the dense network's (band: within
    MATCH_POINTS of it); right: the tickets' distance to the trained dense network on their survivors."""
    fig = Figure(figsize=(9.4, 3.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    table = late_resetting(summary)
    if table.empty or 0 not in table.index:
        _empty(left, "no ResNet-20 IMP run in this checkout")
        _empty(right, "no ResNet-20 IMP run in this checkout")
        return fig
    imp = select(summary, runs=RESNET_IMP)
    ks = sorted(int(k) for k in imp.rewind.unique())
    colors = {k: f"C{i}" for i, k in enumerate(ks)}
    dense = table.loc[0, column("ticket", ks[0])]
    left.axhspan(dense - MATCH_POINTS, dense + MATCH_POINTS, color="grey", alpha=0.12, lw=0)
    left.axhline(dense, color="grey", lw=0.8, label=f"dense, {dense:.2f}%")
    sparse = table[table.index > 0]
    for control in ("ticket", "reinit"):
        ticket = control == "ticket"
        for k in ks:
            rows = sparse[column(control, k)].dropna() if column(control, k) in sparse else ()
            if len(rows):
                left.plot(sparse.loc[rows.index, "density %"] / 100, rows, color=colors[k], ls="-" if ticket else "none",
                          marker="o" if ticket else "x", ms=3 if ticket else 6, label=column(control, k))
    density_axis(left, table["density %"].to_numpy() / 100, ticks_per_span=3)
    left.set_ylabel("test accuracy at early stop (%)", fontsize=8)
    left.legend(fontsize=6.5, loc="lower left")
    left.set_title("ResNet-20, lr 0.1: reset to 0 against rewound to k", fontsize=9)
    imp = imp[(imp.level > 0) & (imp.control == "ticket")]
    if "stability_distance" in imp and imp.stability_distance.notna().any():
        imp = imp.assign(relative=imp.stability_distance.astype(float) / imp.stability_norm.astype(float))
        for k in sorted(imp.rewind.unique()):
            rows = imp[imp.rewind == k].groupby("level").mean(numeric_only=True)
            right.plot(rows.density, rows.relative, marker="o", ms=3, color=colors[int(k)], label=column("ticket", k))
        density_axis(right, imp.density.to_numpy(), ticks_per_span=3)
        right.legend(fontsize=6.5)
    else:
        _empty(right, "no stability distance recorded")
    right.set_ylabel("distance to the dense net / its norm", fontsize=8)
    right.set_title("ResNet-20: stability to pruning", fontsize=9)
    fig.suptitle("Late resetting on ResNet-20 (schedule at a tenth; grey band: within "
                 f"{MATCH_POINTS:g} point of the dense network)", fontsize=9)
    return fig


def distances(summary: pd.DataFrame) -> Figure:
    """Stability to pruning: each unit's distance to the trained dense network on its survivors over the
    dense weights' norm there, against P_m; tickets per k, the controls at k = 0 (LeNet, mean over trials)."""
    fig = Figure(figsize=(5.6, 3.6), layout="constrained")
    ax = fig.subplots()
    lenet = select(summary, "LeNet-300-100")
    lenet = lenet[(lenet.level > 0) & (lenet.control != "barrier")] if len(lenet) else lenet
    if "stability_distance" not in lenet or lenet.empty:
        _empty(ax)
        return fig
    relative = lenet.stability_distance.astype(float) / lenet.stability_norm.astype(float)
    lenet = lenet.assign(relative=relative)
    for k in sorted(lenet.rewind.unique()):
        rows = lenet[(lenet.rewind == k) & (lenet.control == "ticket")].groupby("level").mean(numeric_only=True)
        ax.plot(rows.density, rows.relative, marker="o", ms=2.5, label=f"ticket, k = {k:,}")
    for control in ("reinit", "random"):
        rows = lenet[(lenet.rewind == 0) & (lenet.control == control)].groupby("level").mean(numeric_only=True)
        if len(rows):
            ax.plot(rows.density, rows.relative, color="grey", ls=CONTROLS[control][2], marker="x", ms=3,
                    label=f"{CONTROLS[control][0]}, k = 0")
    density_axis(ax, lenet.density.to_numpy(), ticks_per_span=5)
    ax.set_ylabel("distance to the dense net / its norm", fontsize=8)
    ax.legend(fontsize=6.5)
    ax.set_title("Stability to pruning, LeNet-300-100", fontsize=9)
    return fig


def path_view(summary: pd.DataFrame, level: int) -> Figure:
    """One slider position: the path at one level of a run (trial 0), with its barrier."""
    fig = Figure(figsize=(4.8, 3.0), layout="constrained")
    ax = fig.subplots()
    line = path(summary, level)
    ax.plot(line.alpha, line["test error %"], marker="o", ms=2.5)
    ends = line["test error %"].iloc[[0, -1]].mean()
    ax.axhline(ends, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("alpha (0: ticket, 1: twin)", fontsize=8)
    ax.set_ylabel("test error (%)", fontsize=8)
    density = 100 * summary[(summary.control == "ticket") & (summary.level == level)].density.iloc[0]
    ax.set_title(f"P_m {density:.1f}%: barrier {line['test error %'].max() - ends:.2f} points", fontsize=9)
    return fig
