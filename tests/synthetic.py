"""Synthetic `curves` / `summary` tables in the engine's schema, with known structure.

Each run's curves are drawn so that the minimum validation loss sits exactly at a chosen
early-stop iteration and test accuracy peaks there at a chosen value. A *profile* maps each
control to two functions of x = ln(1/density) -- (early-stop factor vs dense, accuracy change vs
dense) -- so a test can build tables that satisfy (PAPER) or contradict (CONTRADICT) every
scorecard claim, and truncate the levels to leave paper densities unmeasured.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

DENSE_ES = 2000        # dense network's early-stop iteration
DENSE_ACC = 0.980      # dense network's test accuracy at early stop
STEP, LAST = 50, 8000  # evaluation grid; early stops are rounded onto it

# Frankle & Carbin's LeNet-300-100: hidden layers pruned 20 % per level, output layer 10 %.
_HIDDEN, _OUTPUT = 784 * 300 + 300 * 100, 100 * 10


def lenet_density(level: int) -> float:
    """P_m after `level` rounds of the paper's iterative pruning (100, 80.1, 64.3, 51.5, ...)."""
    kept = _HIDDEN * 0.8 ** level + _OUTPUT * 0.9 ** level
    return kept / (_HIDDEN + _OUTPUT)


# Profiles: control -> (early-stop multiplier f(x), accuracy offset g(x)); x = ln(1/density).
PAPER = {
    # tickets: up to ~50 % earlier mid-range, +0.5 pts around 13-20 %, back to dense near 3.6 %
    "ticket": (lambda x: 1 - 0.5 * x * (3.6 - x) / 1.8 ** 2,
               lambda x: 0.005 * x * (3.4 - x) / 1.7 ** 2),
    # reinit: ever slower, below dense by > 0.5 pts from ~17 % on
    "reinit": (lambda x: 1 + 0.35 * x, lambda x: -0.0018 * x ** 2),
    # random sparse: slower and less accurate the sparser
    "random": (lambda x: 1 + 0.6 * x, lambda x: -0.004 * x ** 2),
    # one-shot: earlier than dense in 67.5-17.6 %, accurate only down to ~4 %
    "oneshot": (lambda x: 1 - 0.3 * x * (3.0 - x) / 1.5 ** 2,
                lambda x: 0.004 * x * (2.6 - x) / 1.3 ** 2),
}
CONTRADICT = {
    "ticket": (lambda x: 1 + 0.3 * x, lambda x: -0.004 * x ** 2),
    "reinit": (lambda x: 1 + 0.1 * x, lambda x: -0.001 * x ** 2),
    "random": (lambda x: 1 - 0.1 * x, lambda x: 0.001 * x),
    "oneshot": (lambda x: 1 + 0.2 * x, lambda x: -0.002 * x ** 2),
}
FIRST_LEVEL = {"ticket": 0, "reinit": 1, "random": 1, "oneshot": 2}


def _run_curves(es: int, acc: float, iterations: np.ndarray) -> dict[str, np.ndarray]:
    """Val/test loss with a U at `es`; test accuracy rising to `acc` at `es`, then easing 0.1 pt."""
    t = iterations.astype(float)
    u = ((t - es) / LAST) ** 2
    rise = np.clip(1 - t / max(es, 1), 0, None) ** 2
    fall = np.clip((t - es) / max(LAST - es, 1), 0, None)
    test_acc = acc - 0.5 * rise - 0.001 * fall
    return {"val_loss": 0.05 + (1 - acc) + u, "test_loss": 0.06 + (1 - acc) + u,
            "val_acc": test_acc - 0.001, "test_acc": test_acc}


def make_curves(profile: dict = PAPER, *, levels: int = 19, trials: int = 2, draws: int = 1,
                controls=("ticket", "reinit", "random", "oneshot"), noise: float = 0.0002,
                seed: int = 0, experiment: str = "lenet-synthetic") -> pd.DataFrame:
    """Tidy `curves` for levels 0..levels-1; `noise` is the per-run accuracy jitter (0.02 pts)."""
    rng = np.random.default_rng(seed)
    iterations = np.arange(0, LAST + 1, STEP)
    parts = []
    for control in controls:
        es_fn, acc_fn = profile[control]
        for level in range(FIRST_LEVEL[control], levels):
            density = lenet_density(level)
            x = math.log(1 / density)
            for trial in range(trials):
                for draw in range(draws if control == "reinit" else 1):
                    es = int(round(DENSE_ES * es_fn(x) / STEP)) * STEP
                    es = min(max(es, STEP), LAST - STEP)
                    acc = DENSE_ACC + acc_fn(x) + noise * rng.standard_normal()
                    c = _run_curves(es, acc, iterations)
                    for split in ("val", "test"):
                        parts.append(pd.DataFrame({
                            "experiment": experiment, "trial": trial, "level": level,
                            "density": density, "control": control, "draw": draw,
                            "iteration": iterations, "split": split,
                            "loss": c[f"{split}_loss"], "accuracy": c[f"{split}_acc"]}))
    return pd.concat(parts, ignore_index=True)


RUN = ["experiment", "trial", "level", "density", "control", "draw"]


def summarise(curves: pd.DataFrame) -> pd.DataFrame:
    """The engine's `summary` definition: early stop = iteration of minimum validation loss."""
    val = curves[curves.split == "val"]
    test = curves[curves.split == "test"].set_index(RUN + ["iteration"])["accuracy"]
    best = val.loc[val.groupby(RUN, sort=False)["loss"].idxmin()]
    last = val.loc[val.groupby(RUN, sort=False)["iteration"].idxmax()]
    out = best[RUN].copy()
    out["early_stop_iteration"] = best["iteration"].to_numpy()
    out["early_stop_val_loss"] = best["loss"].to_numpy()
    out["early_stop_test_accuracy"] = test.loc[
        list(zip(*[best[c] for c in RUN + ["iteration"]]))].to_numpy()
    out["final_iteration"] = last["iteration"].to_numpy()
    out["final_test_accuracy"] = test.loc[
        list(zip(*[last[c] for c in RUN + ["iteration"]]))].to_numpy()
    return out.reset_index(drop=True)


def make_tables(profile: dict = PAPER, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, summary) for a profile; kwargs as in `make_curves`."""
    curves = make_curves(profile, **kwargs)
    return curves, summarise(curves)


def make_masks(densities=(1.0, 0.5, 0.1), seed: int = 0) -> dict[float, np.ndarray]:
    """First-layer masks (300, 784) whose keep-rate is higher at the image centre, like MNIST's."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    centre = np.exp(-((yy - 13.5) ** 2 + (xx - 13.5) ** 2) / 80.0).ravel()
    out = {}
    for d in densities:
        keep = d ** (0.3 + 2 * (1 - centre))  # border pixels lose connections first; d=1 keeps all
        out[d] = rng.random((300, 784)) < keep
    return out
