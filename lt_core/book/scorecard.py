"""The scorecard engine: a paper's claims as data, with verdicts computed from our tables.

The claims themselves (the paper's sentences and numbers) live in each chapter's module
(lt_core/chapters/); the measures and rules here are built for any network of the Frankle-Carbin family.

A Claim holds the paper's sentence and number, a `measure(summary, curves) -> Measured` that
computes ours, and a `rule(Measured) -> verdict`. `scorecard` runs them into a table.

Shared conventions (also in each claim's `how`):
- Every comparison is with the dense network (ticket, level 0) of the *same trial*; per-trial
  numbers are then averaged over trials. Reinit draws are averaged within a trial first.
- A paper density is read at our level nearest to it on a log scale, and the density used is
  printed. It counts as measured only if it lies within our levels' range (widened by a factor
  REACH, about half a 20 % pruning step); otherwise the verdict is "not measured".
- Size tolerance: a claim of an effect "about X" is reproduced when ours goes the paper's way
  with at least half of X, "partly" when only the direction holds.
- "Keeps accuracy" (claims 4, 7): test accuracy at early stop, mean over trials, no more than
  HOLD points below dense at this level and at every denser level (contiguous from the top, so a
  lucky sparse level cannot count).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from .plots import density_label as lab, per_trial

REPRODUCED, PARTLY, NOT, UNMEASURED = "reproduced", "partly", "not reproduced", "not measured"
REACH = 1.15
HOLD = 0.5  # points: within this below dense counts as "keeps accuracy" (absorbs trial noise)
ES, ACC = "early_stop_iteration", "early_stop_test_accuracy"


class Measured(NamedTuple):
    value: float        # headline number; NaN means not measured
    shown: str          # the `ours` cell, naming the density actually used
    parts: dict = {}    # components a compound rule needs
    fmt: str = "{:.2f}"  # how `value` reads alone (the spread over trials prints it)


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    paper_value: str
    measure: Callable[[pd.DataFrame, pd.DataFrame], Measured]
    rule: Callable[[Measured], str]
    how: str = ""


def _missing(why: str) -> Measured:
    return Measured(math.nan, f"not measured: {why}")


def _runs(summary, control):
    """Per-trial rows of `control` (levels > 0), or None when the control was not run."""
    if not (summary.control == control).any():
        return None
    t = per_trial(summary, control)
    return t[t.level > 0]


def _dense(summary):
    return per_trial(summary, "ticket").query("level == 0")


def _at(summary, control, target):
    """Per-trial rows at the level nearest `target`, or None if outside the measured range."""
    t = _runs(summary, control)
    if t is None or t.empty or not t.density.min() / REACH <= target <= t.density.max() * REACH:
        return None
    ds = t.density.to_numpy()
    return t[t.density == ds[np.abs(np.log(ds / target)).argmin()]]


def _vs(rows, base, col):
    """Align two per-trial tables on trial -> (ours, base) arrays."""
    m = rows.merge(base, on="trial", suffixes=("", "_b"))
    return m[col].to_numpy(float), m[col + "_b"].to_numpy(float)


def _holds_to(summary, control, tol=HOLD):
    """Lowest density down to which `control` keeps accuracy (see module docstring)."""
    levels = _runs(summary, control).groupby("density")[ACC].mean().sort_index(ascending=False)
    ok = levels >= _dense(summary)[ACC].mean() - tol / 100
    kept = ok.cummin()  # contiguous from the densest level
    return float(levels.index[kept].min()) if kept.any() else 1.0, bool(kept.all())


def scale(v, half, ok=lambda v: v > 0):
    return REPRODUCED if v >= half else PARTLY if ok(v) else NOT


def es_earlier(target):
    def measure(summary, curves):
        rows = _at(summary, "ticket", target)
        if rows is None:
            return _missing(f"no level near {lab(target)}")
        ours, dense = _vs(rows, _dense(summary), ES)
        v = float(np.mean(1 - ours / dense))
        word = "earlier" if v >= 0 else "later"
        return Measured(v, f"{abs(v):.0%} {word} at {lab(rows.density.iloc[0])}", fmt="{:.0%}")
    return measure


def acc_gain(control, target):
    def measure(summary, curves):
        rows = _at(summary, control, target)
        if rows is None:
            return _missing(f"no level near {lab(target)}")
        ours, dense = _vs(rows, _dense(summary), ACC)
        v = float(np.mean(ours - dense) * 100)
        return Measured(v, f"{v:+.2f} pts at {lab(rows.density.iloc[0])}", fmt="{:+.2f} pts")
    return measure


def ticket_vs_reinit(target):
    """Measure: ES(reinit)/ES(ticket) and ticket minus reinit accuracy at the level nearest `target`."""
    def measure(summary, curves):
        t, r = _at(summary, "ticket", target), _at(summary, "reinit", target)
        if t is None or r is None:
            return _missing(f"ticket or reinit not measured near {lab(target)}")
        es_t, es_r = _vs(t, r, ES)
        acc_t, acc_r = _vs(t, r, ACC)
        speed, gain = float(np.mean(es_r / es_t)), float(np.mean(acc_t - acc_r) * 100)
        pace = f"{speed:.2f}x faster" if speed >= 1 else f"{1 / speed:.2f}x slower"
        return Measured(speed, f"{pace}, {gain:+.2f} pts at {lab(t.density.iloc[0])}",
                        {"speedup": speed, "gain": gain}, "{:.2f}x")
    return measure


def ticket_vs_reinit_rule(speedup, gain):
    """Reproduced with at least the given speed-up and accuracy gain, partly if either goes that way."""
    def rule(m):
        if m.parts["speedup"] >= speedup and m.parts["gain"] >= gain:
            return REPRODUCED
        return PARTLY if m.parts["speedup"] > 1 or m.parts["gain"] > 0 else NOT
    return rule


def reinit_range(ticket_to):
    """Measure: the lowest densities ticket and reinit keep accuracy to; needs both pruned to `ticket_to`."""
    def measure(summary, curves):
        if _at(summary, "ticket", ticket_to) is None or _at(summary, "reinit", ticket_to) is None:
            return _missing(f"ticket or reinit not pruned to about {lab(ticket_to)}")
        (d_t, _), (d_r, _) = _holds_to(summary, "ticket"), _holds_to(summary, "reinit")
        return Measured(d_r / d_t, f"ticket holds to {lab(d_t)}, reinit to {lab(d_r)}",
                        {"ticket": d_t, "reinit": d_r}, "{:.1f}x denser")
    return measure


def reinit_range_rule(ticket_to, reinit_to):
    """Reproduced if the ticket keeps accuracy to <= 1.5 x ticket_to and reinit stops at least half the
    paper's gap (in log) denser; partly if reinit stops denser at all."""
    def rule(m):
        d_t, d_r = m.parts["ticket"], m.parts["reinit"]
        if d_t <= ticket_to * 1.5 and d_r / d_t >= math.sqrt(reinit_to / ticket_to):
            return REPRODUCED
        return PARTLY if d_r > d_t else NOT
    return rule


def oneshot_earlier(lo, hi):
    """Measure: the share of one-shot levels in [lo, hi] whose mean early stop comes before dense's."""
    def measure(summary, curves):
        rows = _runs(summary, "oneshot")
        if rows is None or not (rows.density.min() <= lo * REACH and rows.density.max() >= hi / REACH):
            return _missing(f"one-shot levels do not span {lab(hi)}-{lab(lo)}")
        # 2 % slack: our level densities need not hit the paper's printed bounds exactly
        inside = rows[rows.density.between(lo / 1.02, hi * 1.02)].groupby("density")[ES].mean()
        earlier = int((inside < _dense(summary)[ES].mean()).sum())
        return Measured(earlier / len(inside), f"{earlier}/{len(inside)} levels earlier "
                        f"({lab(inside.index.max())}-{lab(inside.index.min())})", fmt="{:.0%}")
    return measure


def iterative_smaller(summary, curves):
    if _runs(summary, "oneshot") is None:
        return _missing("no one-shot runs")
    (d_t, all_t), (d_o, all_o) = _holds_to(summary, "ticket"), _holds_to(summary, "oneshot")
    if all_t and all_o:
        return _missing("both keep accuracy at every measured level")
    return Measured(d_o / d_t, f"iterative holds to {lab(d_t)}, one-shot to {lab(d_o)}", fmt="{:.1f}x")


def _spearman(a, b) -> float:
    """Rank correlation (scipy-free: Pearson of average ranks); 0 when a side is constant."""
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    return 0.0 if ra.std() == 0 or rb.std() == 0 else float(np.corrcoef(ra, rb)[0, 1])


def random_trend(summary, curves):
    if _runs(summary, "random") is None:
        return _missing("no random sparse runs")
    by = per_trial(summary, "random").groupby("density")[[ES, ACC]].mean()  # dense included
    if len(by) < 4:
        return _missing("fewer than 4 densities")
    slow, acc = -_spearman(by.index, by[ES]), _spearman(by.index, by[ACC])
    return Measured(min(slow, acc), f"rank corr. with density: iteration {-slow:+.2f}, "
                    f"accuracy {acc:+.2f} ({len(by)} densities)", {"slow": slow, "acc": acc}, "{:+.2f}")


def random_trend_rule(m):
    slow, acc = m.parts["slow"], m.parts["acc"]
    return REPRODUCED if min(slow, acc) >= 0.7 else PARTLY if max(slow, acc) >= 0.7 else NOT


def judge(claim: Claim, summary: pd.DataFrame, curves: pd.DataFrame | None = None) -> tuple[Measured, str]:
    """The claim's measurement on these tables and its verdict."""
    has_dense = (summary.level == 0).any()  # level 0 is the dense network in every procedure's tables
    m = claim.measure(summary, curves) if has_dense else _missing("no dense run")
    return m, (UNMEASURED if math.isnan(m.value) else claim.rule(m))


def _one_trial(table, trial):
    return None if table is None else table[table.trial == trial]


def spread(claim: Claim, summary: pd.DataFrame, curves: pd.DataFrame | None = None) -> dict:
    """The claim measured on each trial alone: the range of its headline number over trials and how
    many trials on their own give the verdict that the mean over trials gives. Only the trials that
    measure the claim count: a chapter's runs may have different numbers of trials (a 3-trial LeNet run
    beside a 1-trial search), and a trial without the claim's run neither agrees nor disagrees."""
    _, verdict = judge(claim, summary, curves)
    trials = sorted(int(t) for t in summary.trial.unique())
    per = [judge(claim, _one_trial(summary, t), _one_trial(curves, t)) for t in trials]
    measured = [(m, v) for m, v in per if not math.isnan(m.value)]
    if len(measured) < 2:
        return {"over trials": "one trial" if len(trials) < 2 or measured else "not measured per trial",
                "trials agreeing": ""}
    values = [m for m, _ in measured]
    lo, hi = min(values, key=lambda m: m.value), max(values, key=lambda m: m.value)
    agree = sum(v == verdict for _, v in measured)
    return {"over trials": f"{lo.fmt.format(lo.value)} to {hi.fmt.format(hi.value)}",
            "trials agreeing": f"{agree} of {len(measured)}"}


def scorecard(claims, summary: pd.DataFrame, curves: pd.DataFrame | None = None,
              rules: bool = False, trials: bool = False) -> pd.DataFrame:
    """One row per claim: claim, paper, ours, verdict (+ rule text if `rules`; + the spread over trials
    if `trials`, see `spread`), indexed by id."""
    rows = []
    for c in claims:
        m, verdict = judge(c, summary, curves)
        rows.append({"id": c.id, "claim": c.text, "paper": c.paper_value, "ours": m.shown,
                     **(spread(c, summary, curves) if trials else {}),
                     "verdict": verdict, **({"rule": c.how} if rules else {})})
    return pd.DataFrame(rows).set_index("id")
