"""Figures of the finding-tickets-early chapter (book/early_bird.ipynb): You et al.'s distance-matrix figure
for their channel masks and for magnitude masks, each round's mask distance against iteration with where it
settled, the tickets drawn early against the one drawn at the end (accuracy against P_m), and one slider
position (a draw iteration). Each takes tables (lt_core/chapters/early_bird.py, early_bird_channels.py) and
returns a matplotlib Figure; nothing is read from disk.
"""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..book.plots import density_axis, density_label, iteration_axis
from . import early_bird_channels as channels
from .early_bird import END, SETTLED, draw_order, draws, trajectories, trajectory_matrix

DRAW_STYLE = {END: ("tab:blue", "-", "ticket drawn at the end (IMP)"),
              SETTLED: ("tab:red", "-", "drawn where the mask settled")}
FIXED = ["tab:olive", "tab:purple", "tab:pink", "tab:cyan"]  # draws at fixed iterations, earliest first
REINIT = ("tab:orange", "--", "end mask, fresh weights (reinit)")
# where the rule fired on a heat map: a white star edged in black, which neither the colour map nor the book's
# 128-colour palette PNGs (lt_core/book/views.figure_png) can swallow, as they did a red dot
FIRED = {"marker": "*", "ls": "none", "ms": 13, "mfc": "white", "mec": "black", "mew": 1.0, "label": "rule fired"}


def _style(name: str, order: list[str]):
    if name in DRAW_STYLE:
        return DRAW_STYLE[name]
    fixed = [d for d in order if d not in DRAW_STYLE]
    return FIXED[fixed.index(name) % len(FIXED)], ":", f"drawn at {name}"


def _heatmap(ax, matrix, iterations, threshold: float, label=lambda i: f"{i / 1000:.0f}k" if i >= 1000 else str(i)):
    """One distance matrix (iteration against iteration), the cells under `threshold` outlined in white."""
    if not iterations:
        ax.text(0.5, 0.5, "no trajectory", ha="center", va="center", transform=ax.transAxes)
        return None
    image = ax.imshow(matrix, cmap="viridis_r", vmin=0, vmax=max(float(matrix.max()), threshold * 1.5),
                      origin="lower")
    ax.contour(matrix, levels=[threshold], colors="white", linewidths=0.8)
    ticks = np.linspace(0, len(iterations) - 1, min(5, len(iterations))).round().astype(int)
    ax.set_xticks(ticks, [label(iterations[t]) for t in ticks], fontsize=7)
    ax.set_yticks(ticks, [label(iterations[t]) for t in ticks], fontsize=7)
    return image


def matrices(summary: pd.DataFrame, levels, threshold: float = 0.1, trial: int = 0) -> Figure:
    """One heat map per level: the distance between every two masks recorded while the previous ticket
    trained (iteration against iteration); the cells under `threshold` outlined by a contour."""
    levels = list(levels)
    fig = Figure(figsize=(3.1 * max(len(levels), 1) + 0.6, 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(levels), 1)))
    densities = summary[summary.control == "ticket"].groupby("level").density.mean()
    image = None
    for ax, level in zip(axes, levels):
        image = _heatmap(ax, *trajectory_matrix(summary, level, trial), threshold) or image
        ax.set_xlabel("iteration", fontsize=8)
        known = level in densities.index
        ax.set_title(f"masks of P_m {density_label(densities[level])}" if known else f"masks of level {level}",
                     fontsize=8)
    axes[0].set_ylabel("iteration", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="fraction of the trained weights that differ")
    fig.suptitle(f"Mask distance matrices (trial {trial}); white: distance {threshold}", fontsize=9)
    return fig


def channel_matrices(rows: pd.DataFrame, ratios=(0.3, 0.5, 0.7), threshold: float = 0.1, trial: int = 0) -> Figure:
    """You et al.'s own figure: per pruning ratio, the distance between the channel masks of every two
    epochs of the search (`early_bird_channels.scored` rows), the cells under `threshold` outlined, the
    epoch at which the rule fired marked, and the first learning-rate drop dashed."""
    fig = Figure(figsize=(3.1 * len(ratios) + 0.6, 3.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(ratios)))
    per_epoch = float(rows.epoch_iterations.iloc[0]) if "epoch_iterations" in rows and len(rows) else 0
    epoch = (lambda i: f"{i / per_epoch:.0f}") if per_epoch else str
    settle = channels.settling(rows) if len(rows) else pd.DataFrame()
    image = None
    for ax, ratio in zip(axes, ratios):
        matrix, iterations = channels.channel_matrix(rows, ratio, trial)
        image = _heatmap(ax, matrix, iterations, threshold, epoch) or image
        drop = int(rows.first_lr_drop.iloc[0]) if "first_lr_drop" in rows and len(rows) else None
        if drop in iterations and drop != iterations[-1]:  # the last mask trained at the first rate
            for line in (ax.axvline, ax.axhline):
                line(iterations.index(drop) + 0.5, color="white", ls="--", lw=0.7)
        at = settle[(settle.trial == trial) & np.isclose(settle.ratio, ratio)] if len(settle) else settle
        if len(at) and not np.isnan(at.settled_iteration.iloc[0]):
            e = iterations.index(int(at.settled_iteration.iloc[0]))
            ax.plot([e], [e], **FIRED)
            ax.legend(fontsize=7, loc="upper left")
        ax.set_xlabel("epoch" if per_epoch else "iteration", fontsize=8)
        ax.set_title(f"{ratio:.0%} of the channels removed", fontsize=8)
    axes[0].set_ylabel("epoch" if per_epoch else "iteration", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="fraction of all channels that differ")
    fig.suptitle(f"Channel-mask distance matrices, ResNet-20 on CIFAR-10 (trial {trial}); white: distance "
                 f"{threshold}; dashed: the first learning-rate drop; star: where the rule fired", fontsize=9)
    return fig


def distances(summary: pd.DataFrame, threshold: float = 0.1, trial: int = 0) -> Figure:
    """Left: each round's mask against the final one, by iteration, one line per P_m (colour), the settle
    point marked. Right: against the mask one interval before, with the threshold. Only the levels trained
    are drawn (as in `settle_table`): not the mask the last ticket's training points to."""
    traj = trajectories(summary)
    # the levels trained: the last ticket's trajectory is the mask of a level that was not, which the settle
    # tables leave out too
    traj = traj[(traj.trial == trial) & traj.density.notna()]
    fig = Figure(figsize=(9.4, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    if traj.empty:
        left.text(0.5, 0.5, "no trajectory in this run", ha="center", va="center", transform=left.transAxes)
        return fig
    levels = sorted(traj.level.unique())
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(levels)))
    settled = summary[(summary.control == "ticket") & (summary.trial == trial)].set_index("level")
    for color, level in zip(colors, levels):
        line = traj[traj.level == level]
        name = f"P_m {density_label(line.density.iloc[0])}"
        left.plot(line.iteration, line.to_final, color=color, lw=1.1, label=name)
        right.plot(line.iteration, line.to_previous, color=color, lw=1.1)
        at = settled.get("mask_settled_iteration", pd.Series(dtype=float)).get(level - 1)
        if at is not None and not pd.isna(at):
            point = line[line.iteration == int(at)]
            left.plot(point.iteration, point.to_final, "o", color=color, ms=4, mec="black", mew=0.5)
    right.axhline(threshold, color="black", ls="--", lw=0.8, label=f"threshold {threshold}")
    left.set_ylabel("distance to the final mask\n(fraction of the trained weights)")
    right.set_ylabel("distance to the mask before")
    for ax in (left, right):
        iteration_axis(ax, "iteration of the previous ticket's training")
        ax.grid(alpha=0.3)
    left.legend(fontsize=6, ncol=2, title="mask of", title_fontsize=6)
    right.legend(fontsize=7)
    fig.suptitle(f"How the next round's mask moves while a ticket trains (trial {trial}); dots: where it "
                 "settled", fontsize=9)
    return fig


def _draw_lines(ax, summary: pd.DataFrame, shown: list[str], reinit: bool = True) -> None:
    table = draws(summary)
    order = draw_order(table)
    for name in shown:
        part = table[table.draw == name]
        if part.empty:
            continue
        color, ls, label = _style(name, order)
        stats = part.groupby("level").agg(density=("density", "mean"), mean=("accuracy", "mean"),
                                          low=("accuracy", "min"), high=("accuracy", "max"))
        ax.plot(stats.density, 100 * stats["mean"], color=color, ls=ls, marker="o", ms=3, label=label)
        ax.fill_between(stats.density, 100 * stats.low, 100 * stats.high, color=color, alpha=0.15, lw=0)
    fresh = summary[(summary.control == "reinit") & summary.level.isin(table.level.unique())]
    if reinit and len(fresh):
        stats = fresh.groupby("level").agg(density=("density", "mean"),
                                           mean=("early_stop_test_accuracy", "mean"))
        color, ls, label = REINIT
        ax.plot(stats.density, 100 * stats["mean"], color=color, ls=ls, marker="o", ms=3, label=label)
    if len(table):
        density_axis(ax, table.density.to_numpy(), ticks_per_span=5)
    ax.set_ylabel("test accuracy at early stop (%)")
    ax.grid(alpha=0.3)


def early_vs_end(summary: pd.DataFrame, run: str = "") -> Figure:
    """Every draw's mean test accuracy at the early stop against P_m (band: lowest to highest trial), with
    the end mask on fresh weights; and each draw's distance to the end mask."""
    table = draws(summary)
    order = draw_order(table)
    fig = Figure(figsize=(9.4, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    _draw_lines(left, summary, order)
    for name in order:
        part = table[table.draw == name]
        if name == END or part.empty:
            continue
        color, ls, label = _style(name, order)
        stats = part.groupby("level").agg(density=("density", "mean"), far=("to_final", "mean"))
        right.plot(stats.density, 100 * stats.far, color=color, ls=ls, marker="o", ms=3, label=label)
    if len(table):
        density_axis(right, table.density.to_numpy(), ticks_per_span=5)
        left.legend(fontsize=6.5, loc="lower left")
        right.legend(fontsize=6.5)
    right.set_ylabel("positions differing from the end mask (%)")
    right.grid(alpha=0.3)
    fig.suptitle(f"LeNet-300-100 on MNIST{': ' + run if run else ''}; tickets drawn early against the end, "
                 "all from theta_0", fontsize=9)
    return fig


def draw_view(summary: pd.DataFrame, name: str) -> Figure:
    """One slider position: the ticket drawn at `name` against the one drawn at the end and the reinit control."""
    fig = Figure(figsize=(5.2, 3.3), layout="constrained")
    ax = fig.subplots()
    _draw_lines(ax, summary, [name] + ([END] if name != END else []))
    ax.legend(fontsize=6.5, loc="lower left")
    ax.set_title(f"ticket drawn at {name}" if name not in DRAW_STYLE else DRAW_STYLE[name][2], fontsize=9)
    return fig
