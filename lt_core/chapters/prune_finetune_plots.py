"""Figures of the prune-and-fine-tune chapter (book/prune_finetune.ipynb): accuracy against density for every
method (Han et al.'s pipeline and the ticket's controls at its masks), L1 against L2 before and after
retraining (their Figure 5), the first layer's mask beside the winning ticket's (their Figure 4), and one
slider position. Each takes tables and returns a matplotlib Figure; nothing is read from disk.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..book.plots import density_axis, iteration_axis, zoom
from .prune_finetune import METHODS, NETS, means


def _density_axis(ax, densities) -> None:
    """The lottery-ticket chapters' axis (log, dense on the left, ticks at measured densities)."""
    if len(densities):
        density_axis(ax, np.asarray(densities, dtype=float), ticks_per_span=5)
    ax.set_ylabel("test accuracy at early stop (%)")


def imp_tickets(imp_summary: pd.DataFrame | None) -> pd.Series:
    """density -> mean early-stop test accuracy of Frankle & Carbin's IMP tickets (their own masks)."""
    if imp_summary is None or imp_summary.empty:
        return pd.Series(dtype=float)
    rows = imp_summary[imp_summary.control == "ticket"]
    table = rows.groupby("level").agg(density=("density", "mean"), acc=("early_stop_test_accuracy", "mean"))
    return table.set_index("density").acc.sort_index(ascending=False)


def accuracy_vs_density(summary: pd.DataFrame, imp_summary: pd.DataFrame | None = None,
                        model: str = "lenet_300_100", reg: str = "L2", run: str = "") -> Figure:
    """Every method's accuracy against density, the whole range and zoomed on the top two points; the IMP
    tickets of Frankle & Carbin's run (their masks, found by retraining from theta_0) dotted black."""
    fig = Figure(figsize=(9.4, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    table = means(summary, model, reg)
    tickets = imp_tickets(imp_summary)
    for ax in axes:
        for control, (label, color, ls) in METHODS.items():
            if control in table and table[control].notna().sum() > 1:
                line = table[[control, "density"]].dropna()
                ax.plot(line.density, 100 * line[control], marker="o", ms=3, color=color, ls=ls, label=label)
        if len(tickets):
            shown = tickets[tickets.index >= table.density.min() / 1.5] if len(table) else tickets
            ax.plot(shown.index, 100 * shown.values, "k:", marker=".", lw=1, label="IMP ticket, its own mask (F&C run)")
        _density_axis(ax, table.density if len(table) else tickets.index)
    if table.empty:
        axes[0].text(0.5, 0.5, "no run in this checkout", ha="center", va="center", transform=axes[0].transAxes)
    else:
        best = 100 * np.nanmax(table[[c for c in METHODS if c in table and c != "pruned"]].to_numpy())
        zoom(axes, best - 2.0, best + 0.3, "zoomed: 2 points below the best and up; grey line: dense")
        axes[1].axhline(100 * table.loc[0, "finetune"], color="k", lw=0.6, alpha=0.5)
        axes[0].legend(fontsize=6.5, loc="lower left")
    fig.suptitle(f"{NETS.get(model, model)}, {reg}{': ' + run if run else ''}", fontsize=9)
    return fig


def regularisation_figure(summary: pd.DataFrame, model: str = "lenet_300_100", run: str = "") -> Figure:
    """L1 and L2, before and after retraining, against density (Han et al.'s Figure 5 on our net)."""
    fig = Figure(figsize=(5.2, 3.5), layout="constrained")
    ax = fig.subplots()
    styles = {("L2", "pruned"): ("tab:blue", ":"), ("L2", "finetune"): ("tab:blue", "-"),
              ("L1", "pruned"): ("tab:green", ":"), ("L1", "finetune"): ("tab:green", "-")}
    for (reg, control), (color, ls) in styles.items():
        table = means(summary, model, reg)
        if table.empty or control not in table:
            continue
        ax.plot(table.density, 100 * table[control], marker="o", ms=3, color=color, ls=ls,
                label=f"{reg}, {'before retraining' if control == 'pruned' else 'retrained'}")
    densities = [x for line in ax.lines for x in line.get_xdata()]
    _density_axis(ax, densities)
    if ax.lines:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no run in this checkout", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"{NETS.get(model, model)}: L1 against L2{' (' + run + ')' if run else ''}", fontsize=9)
    return fig


def mask_pair(masks: dict[str, np.ndarray]) -> Figure:
    """label -> a 300 x 784 first-layer mask: the share of each pixel's connections kept, side by side on
    one colour scale."""
    fig = Figure(figsize=(2.6 * len(masks) + 0.8, 2.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(masks)))
    top = max(m.mean(axis=0).max() for m in masks.values())
    for ax, (label, m) in zip(axes, masks.items()):
        image = ax.imshow(m.mean(axis=0).reshape(28, 28), cmap="magma", vmin=0, vmax=top)
        ax.set_title(label, fontsize=8)
        ax.set_axis_off()
    fig.colorbar(image, ax=list(axes), shrink=0.85, label="share of 300 kept")
    return fig


def level_view(curves: pd.DataFrame, mask: np.ndarray | None, level: int, density: float) -> Figure:
    """One slider position: test accuracy while each method trains at this level, and the fine-tuned first
    layer's mask."""
    fig = Figure(figsize=(8.6, 2.9), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[2.3, 1])
    test = curves[(curves.split == "test") & (curves.level == level)]
    for control, (label, color, ls) in METHODS.items():
        runs = test[test.control == control]
        if len(runs):
            mean = runs.groupby("iteration").accuracy.mean()
            left.plot(mean.index, 100 * mean.values, color=color, ls=ls, marker=".", ms=2, label=label)
    iteration_axis(left, "training iteration (fine-tuning starts from the trained weights)")
    left.set_ylabel("test accuracy (%)")
    left.set_title(f"level {level}, P_m = {100 * density:.1f}%", fontsize=8)
    if len(test):
        top = 100 * test.accuracy.max()
        left.set_ylim(top - 4, top + 0.5)
        left.legend(fontsize=6.5, loc="lower right")
    if mask is not None and mask.shape[1] == 784:
        right.imshow(mask.mean(axis=0).reshape(28, 28), cmap="magma", vmin=0)
        right.set_title("fine-tuned first layer: share kept per pixel", fontsize=8)
    right.set_axis_off()
    return fig
