"""Figures of the ticket-transfer chapter (book/transfer.ipynb): the paper's figure (target test accuracy
against P_m for the own ticket, the transferred ticket and its controls, bands over trials) and one slider
position (test accuracy while each control trains at one level). Each takes tables and returns a matplotlib
Figure; nothing is read from disk.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..book.plots import density_axis, iteration_axis
from .transfer import CONTROLS, DATA, direction, label, means


def accuracy_vs_density(summary: pd.DataFrame, pairs, run: str = "") -> Figure:
    """One panel per transfer (source -> target): each control's mean test accuracy at the early stop against
    P_m, the band from the lowest to the highest trial."""
    pairs = list(pairs)
    fig = Figure(figsize=(4.7 * max(len(pairs), 1), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(pairs), 1)))
    for ax, pair in zip(axes, pairs):
        rows = direction(summary, *pair)
        mean, low, high = means(rows), means(rows, "min"), means(rows, "max")
        if mean.empty:
            ax.text(0.5, 0.5, "no run in this checkout", ha="center", va="center", transform=ax.transAxes)
            continue
        for control, (name, color, ls) in CONTROLS.items():
            if control not in mean or mean[control].notna().sum() < 2:
                continue
            line = mean[[control, "density"]].dropna()
            ax.plot(line.density, 100 * line[control], marker="o", ms=3, color=color, ls=ls, label=name)
            ax.fill_between(line.density, 100 * low.loc[line.index, control], 100 * high.loc[line.index, control],
                            color=color, alpha=0.15, lw=0)
        density_axis(ax, mean.density.to_numpy(), ticks_per_span=5)
        ax.set_ylabel(f"{DATA.get(pair[1], pair[1])} test accuracy at early stop (%)", fontsize=8)
        ax.set_title(f"tickets of {label(*pair)}", fontsize=9)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=6.5, loc="lower left")
    fig.suptitle(f"LeNet-300-100{': ' + run if run else ''}; band: lowest to highest trial", fontsize=9)
    return fig


def level_view(curves: pd.DataFrame, pairs, level: int, density: float) -> Figure:
    """At one level: test accuracy while each control trains (trial 0), one panel per transfer."""
    pairs = list(pairs)
    fig = Figure(figsize=(4.2 * max(len(pairs), 1), 2.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(pairs), 1), sharey=True))
    for ax, pair in zip(axes, pairs):
        rows = direction(curves, *pair) if len(curves) else curves
        rows = rows[(rows.level == level) & (rows.trial == 0) & (rows.split == "test")] if len(rows) else rows
        for control, (name, color, ls) in CONTROLS.items():
            line = rows[rows.control == control] if len(rows) else rows
            if len(line):
                ax.plot(line.iteration, 100 * line.accuracy, color=color, ls=ls, lw=1.2, label=name)
        ax.set_title(f"{label(*pair)}, P_m {100 * density:.1f}%", fontsize=8)
        iteration_axis(ax, "iteration")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=6, loc="lower right")
    return fig
