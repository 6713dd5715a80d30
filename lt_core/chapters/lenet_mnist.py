"""The LeNet-300-100 chapter (Frankle & Carbin 2019, Section 2, Figures 1, 3, 4; book/lenet_mnist.ipynb):
the paper's claims with their numbers, and the figures that only a 28x28 fully connected network has
(the first layer's mask as a picture of the input pixels, the slider's view of one level).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..book import plots
from ..book import scorecard as sc
from ..book.plots import density_label

# the P_m the paper's Figure 3 plots (the chapter's figures use the levels nearest to them)
PAPER_DENSITIES = [1.0, 0.513, 0.211, 0.07, 0.036, 0.019]


def claims() -> list[sc.Claim]:
    """Frankle & Carbin (2019), LeNet-300-100 on MNIST (Section 2 and Figures 1, 3, 4)."""
    return [
        sc.Claim("ticket-earlier-21", "At P_m = 21.1% the winning ticket reaches minimum validation "
              "loss earlier than the dense network", "38% earlier", sc.es_earlier(0.211),
              lambda m: sc.scale(m.value, 0.19),
              "1 - ES(ticket)/ES(dense) per trial, mean; reproduced if >= 19% (half of 38%), "
              "partly if > 0"),
        sc.Claim("ticket-accuracy-13.5", "At P_m = 13.5% test accuracy at early stop rises above "
              "the dense network's", "> +0.3 pts", sc.acc_gain("ticket", 0.135),
              lambda m: sc.REPRODUCED if m.value > 0.3 else sc.scale(m.value, math.inf),
              "ticket minus dense accuracy at early stop, points, mean over trials; reproduced "
              "if > 0.3 (the paper's own bound), partly if > 0"),
        sc.Claim("ticket-accuracy-3.6", "At P_m = 3.6% the winning ticket's test accuracy is back "
              "to the dense network's", "back to dense (no number)", sc.acc_gain("ticket", 0.036),
              lambda m: sc.REPRODUCED if abs(m.value) <= 0.3 else
              sc.PARTLY if abs(m.value) <= 1.0 else sc.NOT,
              "ticket minus dense accuracy at early stop; reproduced if within ±0.3 pts (our "
              "tolerance: the paper gives no number), partly if within ±1.0"),
        sc.Claim("reinit-loses-accuracy", "Reinitialised tickets lose accuracy from about 21% on, "
              "winning tickets keep it down to about 2.9%", "reinit ~21%, ticket ~2.9%",
              sc.reinit_range(0.029), sc.reinit_range_rule(0.029, 0.21),
              f"lowest density kept within {sc.HOLD} pts of dense (contiguous); reproduced if the "
              "ticket keeps to <= 4.35% (1.5 x 2.9%) and reinit stops >= 2.7x denser (half the "
              "paper's 21/2.9 gap in log), partly if reinit stops denser at all"),
        sc.Claim("ticket-vs-reinit-21", "At P_m ≈ 21% a winning ticket reaches minimum validation "
              "loss faster than when reinitialised, and is more accurate", "2.51x, +0.5 pts",
              sc.ticket_vs_reinit(0.211), sc.ticket_vs_reinit_rule(1.755, 0.25),
              "ES(reinit)/ES(ticket) and ticket minus reinit accuracy, per trial, mean; "
              "reproduced if >= 1.755x and >= +0.25 pts (half of each), partly if either goes "
              "the paper's way"),
        sc.Claim("oneshot-earlier", "One-shot tickets reach early stop earlier than the dense "
              "network for 67.5% >= P_m >= 17.6%", "all of 67.5%-17.6%", sc.oneshot_earlier(lo=0.176, hi=0.675),
              lambda m: sc.REPRODUCED if m.value >= 0.8 else sc.PARTLY if m.value >= 0.5 else sc.NOT,
              "share of one-shot levels in the range whose mean ES is below dense's; reproduced "
              "if >= 80%, partly if >= 50%"),
        sc.Claim("iterative-smaller", "Iterative pruning finds smaller winning tickets than "
              "one-shot pruning", "iterative < one-shot", sc.iterative_smaller,
              lambda m: sc.REPRODUCED if m.value > 1 else sc.PARTLY if m.value == 1 else sc.NOT,
              f"lowest density each keeps accuracy to (within {sc.HOLD} pts of dense, contiguous); "
              "reproduced if iterative's is lower, partly if equal"),
        sc.Claim("random-sparse-worse", "Random sparse subnetworks learn slower and reach lower "
              "accuracy the sparser they are", "monotonic (Figure 1)", sc.random_trend,
              sc.random_trend_rule,
              "rank correlation with density over the densities (dense included) of mean ES "
              "(should be negative: sparser learns slower) and of accuracy (should be positive); "
              "reproduced if both go the paper's way by at least 0.7 (ES's -0.95 counts as 0.95), "
              "partly if one does; the range over trials is of the weaker of the two in each trial"),
    ]


def mask_picture(masks: dict, shared_scale: bool = True) -> Figure:
    """Per density, a 28x28 map of the fraction of first-layer connections each pixel keeps.

    shared_scale=True puts every panel on 0..1 (comparable across densities); False scales each
    panel to its own maximum, which shows where the few survivors sit at very low densities.
    """
    ds = sorted(masks, reverse=True)
    fig = Figure(figsize=(2.3 * len(ds) + 0.8, 2.8), layout="constrained")
    axes = fig.subplots(1, len(ds), squeeze=False)[0]
    for ax, d in zip(axes, ds):
        m = np.asarray(masks[d], dtype=bool)
        # mean over hidden units (rows) = share of the 300 outgoing connections a pixel keeps
        kept = m.mean(axis=0).reshape(28, 28)
        vmax = 1.0 if shared_scale else max(kept.max(), 1e-9)
        img = ax.imshow(kept, cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(density_label(d))
        ax.set_axis_off()
        if not shared_scale:
            fig.colorbar(img, ax=ax, shrink=0.8)
    if shared_scale:
        fig.colorbar(img, ax=list(axes), shrink=0.85, label="fraction of 300 kept")
    return fig


def level_view(curves: pd.DataFrame, masks: dict, density: float) -> Figure:
    """One slider position: the ticket's first-layer mask and test accuracy of every control there."""
    fig = Figure(figsize=(8.0, 2.9), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1, 2.2])
    m = masks[density]
    left.imshow(m.mean(axis=0).reshape(28, 28), cmap="magma", vmin=0, vmax=1)
    left.set_title(f"first layer kept per pixel, P_m={plots.density_label(density)}", fontsize=8)
    left.set_axis_off()
    test = curves[curves.split == "test"]
    level = int(test[(test.control == "ticket") & (abs(test.density - density) < 1e-9)].level.iloc[0])
    for control, (color, ls) in plots.STYLE.items():
        runs = test[(test.control == control) & (test.level == level)]
        if runs.empty:
            continue
        mean = runs.groupby("iteration").accuracy.mean()
        right.plot(mean.index, mean.values, color=color, ls=ls, label=control)
    dense = test[(test.control == "ticket") & (test.level == 0)].groupby("iteration").accuracy.mean()
    right.plot(dense.index, dense.values, color="k", lw=0.8, alpha=0.6, label="dense")
    top = dense.max()
    right.set_ylim(top - 0.06, top + 0.015)
    plots.iteration_axis(right)
    right.set_ylabel("test accuracy")
    right.legend(fontsize=8, ncol=2)
    return fig


def pixel_regions(masks: dict, border: int = 4) -> pd.DataFrame:
    """Per density, the share of first-layer connections kept by the `border`-pixel frame of the 28x28
    image (almost always 0 in MNIST) and by the centre, to read the mask picture by numbers."""
    rows = []
    for density in sorted(masks, reverse=True):
        kept = masks[density].mean(axis=0).reshape(28, 28)
        frame = np.ones((28, 28), dtype=bool)
        frame[border:-border, border:-border] = False
        rows.append({"density %": round(100 * density, 1), "border kept %": round(100 * kept[frame].mean(), 1),
                     "centre kept %": round(100 * kept[~frame].mean(), 1)})
    return pd.DataFrame(rows).set_index("density %")


# What the paper states of its LeNet setting (Section 2, Figure 2's table, Appendix; paper-claims.md [P]).
# The settings table sets a run against these; a parameter missing here is "not stated".
PAPER_SETTINGS = {
    "dataset": "mnist", "val_size": 5000, "model": "lenet_300_100", "init": "glorot_normal",
    "optimizer": "adam", "lr": 0.0012, "batch_size": 60, "iterations": 50000, "eval_every": 100,
    "pruning": "layerwise", "rates": {"fc": 0.2, "output": 0.1}, "rewind_iteration": 0, "trials": 5,
    "reinit_draws": 3, "controls": ["ticket", "reinit", "random", "oneshot"],
}

# The paper's numbers drawn on Figure 4 (plots.paper_marks): relative to the dense network, as the paper
# states them.
PAPER_MARKS = [
    ("early_stop_iteration", 0.211, "times", 0.62, "38% earlier"),
    ("early_stop_test_accuracy", 0.135, "plus", 0.003, "+0.3 pts"),
    ("early_stop_test_accuracy", 0.036, "plus", 0.0, "back to dense"),
]


def constant_pixels(splits) -> dict:
    """The input pixels that hold one value over all training images (`splits`: data.datasets.Splits):
    their share and count, and the value the network sees there after standardisation.

    A pixel that is 0 in every raw image becomes (0 - mean) / std, about -0.42 for MNIST, not 0: its
    first-layer weights do get a gradient, that value times the hidden unit's bias gradient, so they move
    like extra bias terms instead of keeping their initial values (tests/test_statements.py checks both).
    """
    flat = splits.x_train.reshape(len(splits.x_train), -1)
    constant = (flat == flat[:1]).all(dim=0)
    raw = flat[0, constant].float() / 255
    seen = (raw - splits.mean[0]) / splits.std[0]
    return {"share": float(constant.float().mean()), "count": int(constant.sum()),
            "value": float(seen.mean()) if len(seen) else float("nan"), "mask": constant}
