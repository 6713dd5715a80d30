"""Figures of the edge-popup chapter (book/edge_popup.ipynb): accuracy against k per initialisation beside the
trained dense networks (the paper's Figure 3 layout), and one position of the k slider. Each takes tables and
returns a matplotlib Figure; nothing is read from disk.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..book.plots import iteration_axis, zoom
from .edge_popup import COLORS, INITS, NETS, by_keep, dense_accuracies, dense_accuracy


def accuracy_vs_keep(summary: pd.DataFrame, model: str, run: str = "") -> Figure:
    """Test accuracy of edge-popup subnetworks against k, one line per init, the trained dense network a
    dashed line (the paper's Figure 3 layout): the whole range, and zoomed on the top few points."""
    fig = Figure(figsize=(9.0, 3.5), layout="constrained")
    axes = fig.subplots(1, 2)
    dense = dense_accuracy(summary, model)
    lines = {init: by_keep(summary, model, init) for init in INITS}
    lines = {init: acc for init, acc in lines.items() if len(acc)}
    for ax in axes:
        for init, acc in lines.items():
            ax.plot(100 * acc.index, 100 * acc.values, "o-", color=COLORS[init], label=INITS[init], ms=4)
        for optimizer, acc in dense_accuracies(summary, model).items():
            ax.axhline(100 * acc, color="k", ls="--" if optimizer == "adam" else ":", lw=1,
                       label=f"dense, trained weights ({'Adam' if optimizer == 'adam' else 'SGD'})")
        ax.set_xlabel("% of weights kept in each layer (k)")
        ax.set_ylabel("test accuracy (%)")
    if not lines:
        axes[0].text(0.5, 0.5, "no edge-popup run of this network\nin this checkout", ha="center", va="center",
                     transform=axes[0].transAxes)
    else:
        axes[0].legend(fontsize=7)
        best = max(acc.max() for acc in lines.values())  # zoom on the subnetworks' best and the dense line
        zoom(axes, 100 * best - 3, 100 * max(best, 0 if math.isnan(dense) else dense) + 0.5,
             "zoomed: 3 points below the best subnetwork and up")
    fig.suptitle(f"{NETS.get(model, model)}{': ' + run if run else ''}", fontsize=9)
    return fig


def k_view(curves: dict[str, pd.DataFrame], first_layer: np.ndarray | None, shares: pd.DataFrame, k: float) -> Figure:
    """One slider position k: test accuracy while the scores train, per init (`curves`: init -> curves);
    each layer's share kept, edge-popup (k in every layer) against the IMP ticket of the nearest overall
    density; and which input pixels the first layer of the first init's subnetwork keeps."""
    fig = Figure(figsize=(9.6, 2.9), layout="constrained")
    left, middle, right = fig.subplots(1, 3, width_ratios=[2.0, 1.5, 1.0])
    level = round(k * 1000)
    for init, table in curves.items():
        test = table[(table.split == "test") & (table.level == level)].groupby("iteration").accuracy.mean()
        if len(test):
            left.plot(test.index, 100 * test.values, color=COLORS.get(init, "k"), label=INITS.get(init, init))
    iteration_axis(left, "score-training step")
    left.set_ylabel("test accuracy (%)")
    left.set_title(f"k = {k:g}: accuracy while the mask is learned", fontsize=8)
    left.legend(fontsize=7)
    nearest = shares.iloc[np.abs(np.log(shares.density / k)).argmin()]
    layers = [c for c in shares.columns if c != "density"]
    x = np.arange(len(layers))
    middle.bar(x - 0.2, [100 * k] * len(layers), 0.4, color="tab:red", label=f"edge-popup, k = {k:g}")
    middle.bar(x + 0.2, [100 * nearest[c] for c in layers], 0.4, color="tab:blue",
               label=f"IMP ticket, P_m = {100 * nearest.density:.1f}%")
    middle.set_xticks(x, [c.removesuffix(".weight") for c in layers], fontsize=7)
    middle.set_ylabel("% of the layer's weights kept")
    middle.set_title("share kept per layer", fontsize=8)
    middle.legend(fontsize=6)
    if first_layer is not None and first_layer.shape[1] == 784:
        right.imshow(first_layer.mean(axis=0).reshape(28, 28), cmap="magma", vmin=0, vmax=min(1.0, 3 * k))
        right.set_title("first layer: share kept per pixel", fontsize=8)
    right.set_axis_off()
    return fig
