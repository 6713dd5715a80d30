"""Figures of the LeNet chapter (Frankle & Carbin 2019, Figures 1, 3, 4 and a mask picture).

Every function takes the tables (`curves`, `summary`, `masks`) and returns a matplotlib Figure;
nothing is read from disk. Lines are means over trials and bands span min-max over trials, as
the paper's error bars do. Reinit draws are averaged within a trial first, so each trial counts
once. The dense network (ticket, level 0) is the common 100 % point of every control: all
controls start from the same dense network, so its run is their reference.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

CONTROLS = ("ticket", "reinit", "random", "oneshot")
STYLE = {"ticket": ("tab:blue", "-"), "reinit": ("tab:orange", "--"),
         "random": ("tab:green", ":"), "oneshot": ("tab:purple", "-.")}
RUN = ["trial", "level", "density"]
METRICS = ["loss", "accuracy", "early_stop_iteration", "early_stop_val_loss",
           "early_stop_test_accuracy", "final_iteration", "final_test_accuracy"]


def density_label(d: float) -> str:
    """0.2107 -> '21.1%' (the paper prints P_m with one decimal)."""
    return f"{100 * d:.1f}%"


def per_trial(table: pd.DataFrame, control: str, extra=()) -> pd.DataFrame:
    """Rows of one control plus the dense run, with reinit draws averaged within each trial.

    Numeric columns are averaged; text (provenance such as code_version) is dropped. Metric
    columns are coerced first: a metric that is None for some run would otherwise make the whole
    column `object` and vanish from the result.
    """
    table = table.assign(**{c: pd.to_numeric(table[c], errors="coerce")
                            for c in METRICS if c in table.columns})
    dense = table[(table.control == "ticket") & (table.level == 0)]
    rows = table[(table.control == control) & (table.level > 0)]
    cols = [c for c in table.columns if c not in RUN + ["control", "draw", "experiment", *extra]
            and pd.api.types.is_numeric_dtype(table[c])]
    out = pd.concat([dense, rows]).groupby(RUN + list(extra), as_index=False)[cols].mean()
    # one density per level, so trials whose masks differ by a rounding error group together
    out["density"] = out.groupby("level")["density"].transform("mean")
    return out


def band(frame: pd.DataFrame, by, value: str) -> pd.DataFrame:
    """Mean, min and max over trials of `value` per `by` group (densities run dense -> sparse)."""
    out = frame.groupby(by)[value].agg(["mean", "min", "max"]).reset_index()
    return out.iloc[::-1].reset_index(drop=True) if by == "density" else out


def nearest_levels(frame: pd.DataFrame, densities) -> list[int]:
    """For each requested density, the level whose density is nearest on a log scale (unique)."""
    avail = frame[["level", "density"]].drop_duplicates().sort_values("density", ascending=False)
    picked = []
    for d in densities:
        i = np.abs(np.log(avail.density.to_numpy()) - np.log(d)).argmin()
        if (level := int(avail.level.iloc[i])) not in picked:
            picked.append(level)
    return picked


def iteration_axis(ax, label: str = "training iteration") -> None:
    """An x axis of iterations: at most six ticks, written 12,500: matplotlib's own choice put eight
    five-digit numbers under a half-width panel, where they ran into one another."""
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set_xlabel(label)


def zoom(axes, low: float, high: float, title: str) -> None:
    """The right panel of a whole-and-zoomed pair: [low, high] cut to the left panel's range (where every
    point lies above `low`, a window from `low` would show more than the whole range does), titled `title`
    and, when the cut leaves the whole range, saying so."""
    full = axes[0].get_ylim()
    window = (max(low, full[0]), min(high, full[1]))
    axes[1].set_ylim(*window)
    axes[1].set_title(title + ("\n(here the whole range: every point lies in it)" if window == full else ""),
                      fontsize=8)


def density_axis(ax, densities, ticks_per_span: int = 6) -> None:
    """Log x axis, reversed so sparser goes right, ticks at measured densities spread evenly (about
    `ticks_per_span` of them: fewer on narrow panels)."""
    ds = np.sort(np.unique(np.round(densities, 6)))[::-1]
    # greedy, dense to sparse: a tick needs >= 1/ticks_per_span of the log span (and >= x1.5) from the
    # last, else the labels of neighbouring levels (80.0%, 64.1%, ...) print over each other
    gap = max(np.log(ds[0] / ds[-1]) / ticks_per_span, np.log(1.5))
    ticks = [ds[0]]
    for d in ds[1:]:
        if np.log(ticks[-1] / d) >= gap:
            ticks.append(d)
    if ticks[-1] != ds[-1]:  # always label the sparsest level, dropping a too-close neighbour
        if len(ticks) > 1 and np.log(ticks[-1] / ds[-1]) < gap:
            ticks.pop()
        ticks.append(ds[-1])
    ax.set_xscale("log")
    ax.set_xlim(ds.max() * 1.15, ds.min() / 1.15)  # reversed: high density on the left
    ax.set_xticks(ticks, [density_label(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())  # log minor ticks would repeat unlabeled clutter
    ax.set_xlabel("weights remaining (P_m)")


def _line(ax, b: pd.DataFrame, x: str, color, ls, label) -> None:
    ax.plot(b[x], b["mean"], color=color, ls=ls, marker="o", ms=3, label=label)
    ax.fill_between(b[x], b["min"], b["max"], color=color, alpha=0.2, lw=0)


def _figure(ncols: int, width: float = 4.2, height: float = 3.4) -> tuple[Figure, list]:
    with sns.axes_style("whitegrid"):  # local style: never touch the notebook's global rcParams
        fig = Figure(figsize=(width * ncols, height), layout="constrained")
        axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


ES_PANELS = [("early_stop_iteration", "early-stop iteration"),
             ("early_stop_test_accuracy", "test accuracy at early stop"),
             ("final_test_accuracy", "test accuracy at end of training")]


def _title(fig: Figure, what: str, run: str) -> None:
    """The figure's title names the run it plots (the recorded run and this execution look alike)."""
    fig.suptitle(f"{run}: {what}" if run else what, fontsize=10)


def paper_marks(ax, frame: pd.DataFrame, column: str, marks) -> None:
    """The paper's numbers for `column`, drawn where the paper places them: each mark is (column, density,
    how, value, text); `how` "times" puts it at our dense mean x value (the paper's claims are relative to
    its dense network: "38% earlier" is times 0.62), "plus" at our dense mean + value."""
    dense = frame[frame.level == 0][column].mean()
    mine = [m for m in marks or () if m[0] == column]
    for i, (_, density, how, value, text) in enumerate(mine if np.isfinite(dense) else []):
        y = dense * value if how == "times" else dense + value
        ax.plot([density], [y], marker="D", mfc="none", mec="k", ms=7, ls="",
                label="paper, relative to our dense" if i == 0 else None)
        ax.annotate(text, (density, y), textcoords="offset points", xytext=(4, 6), fontsize=8)


def random_sparse_curves(summary: pd.DataFrame, densities=None, run: str = "") -> Figure:
    """Figure 1: random sparse subnetworks' early-stop iteration and accuracy vs density, from each network's
    summary (its early stop found on every evaluation), not from the curves: a recording keeps every fifth
    evaluation of them, and an early stop found there is another one."""
    runs = per_trial(summary, "random")
    if densities is not None:  # keep the dense anchor plus the levels nearest to the request
        runs = runs[runs.level.isin(nearest_levels(runs, densities) + [0])]
    fig, axes = _figure(2)
    color, ls = STYLE["random"]
    for ax, (col, title) in zip(axes, ES_PANELS[:2]):
        _line(ax, band(runs, "density", col), "density", color, ls, "random sparse")
        dense = band(runs[runs.level == 0], "density", col)
        ax.plot(dense.density, dense["mean"], "k*", ms=10, label="dense (100%)")
        density_axis(ax, runs.density)
        ax.set_ylabel(title)
    axes[0].legend(loc="best", fontsize=8)
    _title(fig, "random sparse subnetworks, mean over trials, band = min-max", run)
    return fig


def accuracy_during_training(curves: pd.DataFrame, densities,
                             controls=("ticket", "reinit"), run: str = "") -> Figure:
    """Figure 3: test accuracy vs iteration, one line per density nearest to each requested one."""
    test = curves[curves.split == "test"]
    fig, axes = _figure(len(controls), width=4.2, height=3.4)
    palette = sns.color_palette("viridis", len(densities))
    for ax, control in zip(axes, controls):
        runs = per_trial(test, control, extra=("iteration",))
        for color, level in zip(palette, nearest_levels(runs, densities)):
            one = runs[runs.level == level]
            _line(ax, band(one, "iteration", "accuracy"), "iteration", color, "-",
                  density_label(one.density.iloc[0]))
            ax.lines[-1].set_marker("")  # dense evaluation grids: markers would blot the line
        ax.set_title(control)
        iteration_axis(ax)
        ax.set_ylabel("test accuracy")
    # one legend under the panels (a density has one colour in both): inside, it covered the sparsest
    # reinit lines, which end lowest, in the corner a legend would take
    handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}
    fig.legend(list(handles.values()), list(handles), title="P_m", loc="outside lower center",
               ncol=len(handles), fontsize=8)
    # zoom on the top, as the paper does: the first iterations' low accuracy would otherwise
    # squeeze the differences between densities (tenths of a point) into one flat line
    peaks = [np.nanmax(ln.get_ydata()) for ax in axes for ln in ax.lines]
    if peaks:
        margin = max(0.02, max(peaks) - min(peaks))
        for ax in axes:
            ax.set_ylim(min(peaks) - margin, max(peaks) + margin / 4)
    _title(fig, "test accuracy during training, mean over trials, band = min-max", run)
    return fig


def early_stop_vs_density(summary: pd.DataFrame, run: str = "", marks=()) -> Figure:
    """Figure 4: early-stop iteration, accuracy at early stop and at the end vs density; `marks` are the
    paper's numbers (see `paper_marks`)."""
    fig, axes = _figure(3, width=3.1, height=3.0)
    present = [c for c in CONTROLS if (summary.control == c).any()]
    for control in present:
        runs = per_trial(summary, control)
        color, ls = STYLE[control]
        for ax, (col, _) in zip(axes, ES_PANELS):
            _line(ax, band(runs, "density", col), "density", color, ls, control)
    tickets = per_trial(summary, "ticket")
    for ax, (col, title) in zip(axes, ES_PANELS):
        paper_marks(ax, tickets, col, marks)
        density_axis(ax, summary.density, ticks_per_span=4)  # three panels side by side: narrow
        ax.set_ylabel(title)
    # one legend under the panels: inside them it covered the lines (the early-stop panel has no empty corner)
    handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=len(handles), fontsize=8)
    _title(fig, "mean over trials, band = min-max (reinit draws averaged first)", run)
    return fig
