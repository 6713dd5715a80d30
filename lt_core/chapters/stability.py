"""Tables of the late-resetting chapter's stability measures (issue 15), read from IMP summaries with
twins, barriers and the stability distance (lt_core/procedures/imp.py, rewind_schedule continue):

- `barriers`: per trial, level and twin draw, the error barrier between the ticket and its twin (Frankle et al.
  2020's instability: the path's highest test error less the mean of its ends, in points), whether it is
  under the paper's 2 points, and the two copies' distance relative to the ticket's norm on the survivors;
- `path`: the test error at each alpha of one level's path (the chapter's slider);
- `pruning_stability`: per level and control, the distance of the trained weights to the trained dense
  network's on the survivors, relative to the dense weights' norm there (Frankle et al. 2019), beside the
  test accuracy at the early stop.
Each takes one run's summary (one rewind_iteration k); the chapter sets runs of several k side by side.
Below them: the recorded runs combined, and the chapter's claims scored on them. What the recorded runs
cover and cost, and the units trained on two machines, are in `stability_runs`.
"""
from __future__ import annotations

import pandas as pd

from ..book import scorecard as sc
from ..runs.results import listed, whole_trials

ACC = "early_stop_test_accuracy"
STABLE_POINTS = 2.0  # Frankle et al. 2020: a network is stable when its error barrier is under 2 points


def _level(summary: pd.DataFrame, control: str) -> pd.DataFrame:
    return summary[summary.control == control].set_index(["trial", "level"])


END_ACCURACY = ("ticket % at end", "twin % at end")  # barriers' accuracy columns: the path's ends


def barriers(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per barrier unit: density, k (where its twin started), barrier in points, stable, the copies'
    test accuracy (%) at the end of training (the final weights the path joins: the barrier's ends, not the
    early stop) and their distance relative to the ticket's weights."""
    columns = ["trial", "level", "draw", "density %", "k", "error barrier (points)", "stable", *END_ACCURACY,
               "copies' distance / norm"]
    cut = summary[summary.control == "barrier"].set_index(["trial", "level", "draw"])
    if cut.empty:
        return pd.DataFrame(columns=columns)
    tickets = _level(summary, "ticket")
    twins = summary[summary.control == "twin"].set_index(["trial", "level", "draw"]).reindex(cut.index)
    ticket_acc = tickets.final_test_accuracy.reindex(cut.index.droplevel("draw"))
    out = pd.DataFrame({
        "density %": 100 * cut.density,
        "k": twins.start_iteration.astype(int),
        "error barrier (points)": 100 * cut.error_barrier.astype(float),
        END_ACCURACY[0]: 100 * ticket_acc.to_numpy(),
        END_ACCURACY[1]: 100 * twins.final_test_accuracy,
        "copies' distance / norm": cut.copies_distance.astype(float) / cut.copies_norm.astype(float),
    }, index=cut.index)
    out.insert(3, "stable", out["error barrier (points)"] < STABLE_POINTS)
    return out.reset_index().sort_values(["trial", "level", "k"]).reset_index(drop=True)[columns]


def path(summary: pd.DataFrame, level: int, trial: int = 0, draw: int = 0) -> pd.DataFrame:
    """alpha and test error (%) along one level's path from the ticket (alpha 0) to its twin (alpha 1)."""
    row = summary[(summary.control == "barrier") & (summary.level == level) & (summary.trial == trial)
                  & (summary.draw == draw)]
    if row.empty:
        raise KeyError(f"no barrier unit at trial {trial}, level {level}; levels with one: "
                       f"{sorted(int(v) for v in summary[summary.control == 'barrier'].level.unique())}")
    row = row.iloc[0]
    return pd.DataFrame({"alpha": listed(row.alphas), "test error %": [100 * e for e in listed(row.path_test_errors)]})


def pruning_stability(summary: pd.DataFrame) -> pd.DataFrame:
    """Per trial, level and trained control of level >= 1: density, relative distance to the trained dense
    network on the survivors, and test accuracy at the early stop (%)."""
    cut = summary[(summary.level > 0) & (summary.control != "barrier")]
    if "stability_distance" not in cut:
        raise KeyError("this run records no stability distance: run it with stability_distance true")
    out = cut[["trial", "level", "control"]].copy()
    out["density %"] = 100 * cut.density
    out["distance / norm"] = cut.stability_distance.astype(float) / cut.stability_norm.astype(float)
    out["accuracy % at early stop"] = 100 * cut[ACC]
    return out.sort_values(["trial", "level", "control"]).reset_index(drop=True)


# --- the recorded runs, combined, and the claims scored on them -------------------------------------------

# book/recorded/<name> of the runs this chapter quotes; each one's rewind iteration k is read from its recording
LENET = ("stability_lenet_k0", "stability_lenet_k100", "stability_lenet_k500", "stability_lenet_k2000")
RESNET = "stability_resnet20_short"  # the dense ResNet-20 and its twins against k
RESNET_IMP = ("stability_resnet20_imp_k0", "stability_resnet20_imp_k500")  # IMP, lr 0.1, rewound to k = 0 and 500
NETS = {**{name: "LeNet-300-100" for name in LENET}, RESNET: "ResNet-20",
        **{name: "ResNet-20" for name in RESNET_IMP}}
# ResNet-20's IMP as first recorded (levels 0-3, on an Intel Xeon, at 52c8ac0), against the same runs trained
# again on an AMD EPYC: k = 0 resumed (its dense network and level-3 ticket trained again, weights being never
# recorded); k = 500 resumed alike first (`_mixed`: the Xeon's masks on the EPYC's W_500), then trained afresh
# from the EPYC's dense network. `two_machines` sets the units trained twice side by side.
TRAINED_TWICE = (("stability_resnet20_imp_k0_xeon", "stability_resnet20_imp_k0"),
                 ("stability_resnet20_imp_k500_xeon", "stability_resnet20_imp_k500_mixed"),
                 ("stability_resnet20_imp_k500_xeon", "stability_resnet20_imp_k500"))


def combined(runs: list[tuple[str, pd.DataFrame | None, str, int]]) -> pd.DataFrame:
    """(name, summary, network, rewind iteration) of each run, in one frame: each row with its run's name,
    network (`net`) and rewind iteration (`rewind`: where its level >= 1 units start). None adds nothing."""
    frames = [summary.assign(run=name, net=net, rewind=rewind) for name, summary, net, rewind in runs
              if summary is not None and not summary.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["trial", "level", "control", "draw", "density", "run", "net", "rewind"])


def recorded_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(combined summary, combined curves) of the committed runs this chapter quotes (their whole trials:
    a trial stopped midway stays in its recording, to resume from, but out of the tables)."""
    from ..runs import recorded as recorded_runs
    runs, curves = [], []
    for name in NETS:
        rec = recorded_runs.recorded(name)
        if rec is not None:
            runs.append((name, whole_trials(rec[1]), NETS[name], int(rec[2]["config"]["rewind_iteration"])))
            curves.append(rec[0].assign(run=name))
    return combined(runs), (pd.concat(curves, ignore_index=True) if curves else pd.DataFrame())


def select(summary: pd.DataFrame, net: str | None = None, rewind: int | None = None,
           runs: tuple[str, ...] | str | None = None) -> pd.DataFrame:
    """The rows of a combined summary of one network (`net`), rewind iteration and run name(s); None: any."""
    cut = summary[summary.net == net] if net is not None and "net" in summary else summary
    if runs is not None and "run" in cut:
        cut = cut[cut.run.isin([runs] if isinstance(runs, str) else list(runs))]
    return cut if rewind is None else cut[cut.rewind == rewind]


def _mean_barriers(summary: pd.DataFrame) -> pd.DataFrame:
    """barriers() of one run, averaged over trials per level and k."""
    table = barriers(summary)
    return table.groupby(["level", "k"], as_index=False)[["density %", "error barrier (points)"]].mean()


def lenet_stable_at_init(summary, curves=None) -> sc.Measured:
    rows = _mean_barriers(select(summary, "LeNet-300-100", 0))
    dense = rows[(rows.level == 0) & (rows.k == 0)]
    if dense.empty:
        return sc._missing("no LeNet run with twins at k = 0")
    value = float(dense["error barrier (points)"].iloc[0])
    return sc.Measured(value, f"dense LeNet-300-100, k = 0: barrier {value:.2f} points")


MATCHING_POINTS = 0.2  # Frankle et al. 2020 [S]: a subnetwork is matching within 0.2 points of the dense network


def matching(run: pd.DataFrame, levels, accuracy: str = ACC) -> tuple[int, float, int]:
    """Of the tickets at `levels` (one run, mean over its trials), how many are within MATCHING_POINTS of the
    dense network's `accuracy` (the early stop's by default; final_test_accuracy: at the end of training),
    the lowest of their gaps to it in points and the level of that gap."""
    tickets = run[run.control == "ticket"].groupby("level")[accuracy].mean()
    gaps = {int(level): 100 * float(tickets[level] - tickets.get(0)) for level in levels}
    worst = min(gaps, key=gaps.get)
    return sum(g >= -MATCHING_POINTS for g in gaps.values()), gaps[worst], worst


def imp_lenet_stable(summary, curves=None) -> sc.Measured:
    run = select(summary, "LeNet-300-100", 0)
    rows = _mean_barriers(run)
    sparse = rows[rows.level > 0]
    if sparse.empty:
        return sc._missing("no sparse LeNet level with twins at k = 0")
    worst = float(sparse["error barrier (points)"].max())
    matched = matching(run, sparse.level)[0]
    where = (f"{len(sparse)} levels (P_m {sparse['density %'].max():.0f}% to {sparse['density %'].min():.1f}%)"
             if len(sparse) > 1 else f"1 level (P_m {sparse['density %'].iloc[0]:.1f}%)")
    return sc.Measured(worst, f"largest barrier {worst:.2f} points over {where}; {matched} of {len(sparse)} within "
                              f"{MATCHING_POINTS} points below the dense network at the early stop",
                       {"matching": matched, "levels": len(sparse)})


def imp_lenet_rule(m) -> str:
    if m.value >= STABLE_POINTS:
        return sc.NOT
    return sc.REPRODUCED if m.parts["matching"] == m.parts["levels"] else sc.PARTLY


def resnet_dense_stable(summary, curves=None) -> sc.Measured:
    rows = _mean_barriers(select(summary, "ResNet-20", runs=RESNET)).query("level == 0").sort_values("k")
    if rows.empty:
        return sc._missing("no dense ResNet-20 run with twins in these tables")
    if len(rows) < 2 or 0 not in set(rows.k):
        return sc._missing("the dense ResNet-20's barriers are recorded at k = "
                           f"{', '.join(f'{k:,}' for k in rows.k)} only so far")
    shown = ", ".join(f"k {k:,}: {b:.1f}" for k, b in zip(rows.k, rows["error barrier (points)"]))
    stable = rows[rows["error barrier (points)"] < STABLE_POINTS]
    first = int(stable.k.min()) if len(stable) else -1
    head = f"first stable at k = {first:,}" if first >= 0 else "unstable at every k measured"
    return sc.Measured(first, f"{head} (barrier in points: {shown}; schedule at a tenth)",
                       {"at_0": float(rows["error barrier (points)"].iloc[0]), "largest_k": int(rows.k.max())},
                       "{:.0f}")


def resnet_dense_rule(m) -> str:
    if m.parts["at_0"] < STABLE_POINTS:
        return sc.PARTLY  # stable from the start: no onset to place
    if 0 < m.value <= 2000:
        return sc.REPRODUCED
    return sc.NOT if m.parts["largest_k"] >= 2000 else sc.UNMEASURED


def distances_by_k(summary: pd.DataFrame) -> pd.DataFrame:
    """The LeNet tickets' distance / norm to the trained dense network (levels >= 1), mean over levels: one
    row per trial, one column per rewind iteration k; NaN where a trial has no run at that k."""
    lenet = select(summary, "LeNet-300-100")
    if "stability_distance" not in lenet:
        return pd.DataFrame()
    run = lenet[(lenet.control == "ticket") & (lenet.level > 0) & lenet.stability_distance.notna()]
    if run.empty:
        return pd.DataFrame()
    run = run.assign(relative=run.stability_distance.astype(float) / run.stability_norm.astype(float),
                     rewind=run.rewind.astype(int))
    return run.pivot_table(index="trial", columns="rewind", values="relative", aggfunc="mean")


def _change(table: pd.DataFrame, a: int, b: int) -> tuple[float, list[int]]:
    """The distance at k = b less at k = a, within each trial that has both, mean over those trials (and
    the trials); the two k's means over their own trials where no trial has both."""
    both = table[[a, b]].dropna()
    if len(both):
        return float((both[b] - both[a]).mean()), [int(t) for t in both.index]
    return float(table[b].mean() - table[a].mean()), []


def later_reset_stabler(summary, curves=None) -> sc.Measured:
    table = distances_by_k(summary)
    if table.shape[1] < 2:
        return sc._missing("fewer than two LeNet runs with the stability distance")
    ks = sorted(table.columns)
    falling = all(_change(table, a, b)[0] <= 0 for a, b in zip(ks, ks[1:]))
    change, trials = _change(table, ks[0], ks[-1])  # within a trial: a trial without the latest k stays out
    within = (f"trial{'s' if len(trials) > 1 else ''} {', '.join(map(str, trials))}" if trials
              else "no trial has both")
    return sc.Measured(change, "tickets' distance / norm, mean over levels: " +
                       ", ".join(f"k {k:,}: {table[k].mean():.3f}" for k in ks) +
                       f"; k {ks[0]:,} to {ks[-1]:,} within {within}: {change:+.3f}", {"falling": falling}, "{:+.3f}")


def trial_notes(summary: pd.DataFrame) -> str:
    """What the scorecard's per-trial columns compare for two claims, in a sentence each (the page's note
    under the verdicts): imp-lenet-stable's matching per trial at the early stop (the claim's accuracy) and
    at the end of training (the barrier tables'), and the k later-reset-stabler compares in each trial."""
    notes = []
    run = select(summary, "LeNet-300-100", 0)
    sparse = sorted(int(v) for v in run[(run.control == "barrier") & (run.level > 0)].level.unique()) if len(run) \
        else []
    trials = sorted(int(t) for t in run.trial.unique()) if len(run) else []
    if sparse and len(trials) > 1:
        density = run[run.control == "ticket"].groupby("level").density.mean()
        whole = {}  # accuracy -> per trial, whether every level matches

        def per_trial(accuracy):
            parts = []
            for t in trials:
                n, gap, level = matching(run[run.trial == t], sparse, accuracy)
                whole.setdefault(accuracy, []).append(n == len(sparse))
                parts.append(f"trial {t}: {n} of {len(sparse)}" + (
                    f" (its ticket at P_m {100 * density[level]:.1f}% is {gap:+.2f} points from it)"
                    if n < len(sparse) else ""))
            return ", ".join(parts)
        early, end = per_trial(ACC), per_trial("final_test_accuracy")
        notes.append(f"imp-lenet-stable counts a ticket as matching when its test accuracy at the early stop (the "
                     f"book's accuracy throughout) is no more than {MATCHING_POINTS} points below its trial's dense network; "
                     f"per trial, {early}; so {sum(whole[ACC])} of {len(trials)} trials match at every level on "
                     f"their own. At the end of training (the accuracy of the barrier tables, whose paths join the "
                     f"final weights) it would be {end}.")
    table = distances_by_k(summary)
    if table.shape[1] >= 2 and len(table) > 1:
        first = min(table.columns)
        has = {int(t): [int(k) for k in row.dropna().index] for t, row in table.iterrows()}
        latest = {t: max(ks) for t, ks in has.items() if first in ks and max(ks) > first}
        if len(set(latest.values())) > 1:
            listed_k = lambda ks: ", ".join(f"{k:,}" for k in ks[:-1]) + f" and {ks[-1]:,}"
            top = max(latest.values())
            notes.append("later-reset-stabler: " + "; ".join(f"trial {t} has runs at k = {listed_k(ks)}"
                                                             for t, ks in has.items()) +
                         ". Each trial alone compares k = 0 with its own latest k (" +
                         ", ".join(f"{k:,} in trial {t}" for t, k in latest.items()) +
                         f"), so the trials' range is not of one comparison; the headline is the change from k = 0 "
                         f"to {top:,} within the trial{'s' if sum(v == top for v in latest.values()) > 1 else ''} "
                         f"that {'have' if sum(v == top for v in latest.values()) > 1 else 'has'} both.")
    return " ".join(notes)


def later_reset_rule(m) -> str:
    return sc.REPRODUCED if m.value < 0 and m.parts["falling"] else sc.PARTLY if m.value < 0 else sc.NOT


def reinit_until_80(summary, curves=None) -> sc.Measured:
    run = select(summary, "LeNet-300-100", 0)
    per = run[run.control.isin(["ticket", "reinit"])].groupby(["level", "control"])[ACC].mean().unstack()
    per = per.dropna()
    per = per[per.index > 0]
    if per.empty:
        return sc._missing("no LeNet reinit control at k = 0")
    density = run[run.control == "ticket"].groupby("level").density.mean()
    near = (density[per.index] - 0.2).abs().idxmin()
    sparsest = per.index.max()
    gap = lambda level: 100 * float(per.loc[level, "reinit"] - per.loc[level, "ticket"])
    shown = (f"reinit minus ticket: {gap(near):+.2f} points at P_m {100 * density[near]:.0f}%, {gap(sparsest):+.2f} "
             f"at {100 * density[sparsest]:.1f}%" if near != sparsest else
             f"reinit minus ticket: {gap(near):+.2f} points at P_m {100 * density[near]:.1f}%, the one control "
             "level: nearest 20% and sparsest")
    return sc.Measured(gap(sparsest), shown, {"near_20": gap(near)}, "{:+.2f}")


def reinit_rule(m) -> str:
    if m.value < -0.5:
        return sc.REPRODUCED if abs(m.parts["near_20"]) <= 0.5 else sc.PARTLY
    return sc.NOT


MATCH_POINTS = 1.0  # one ResNet-20 trial: a ticket "matches" the dense network within 1 point of it


def column(control: str, k: int) -> str:
    """late_resetting's column of one control rewound to k, e.g. "ticket, k = 500"."""
    return f"{control}, k = {int(k):,}"


def late_resetting(summary: pd.DataFrame) -> pd.DataFrame:
    """The ResNet-20 IMP runs (RESNET_IMP) per level: density % and the early-stop test accuracy (%) of the
    ticket and of the reinitialised ticket per rewind iteration k (`column`: tickets first, k rising),
    mean over trials; level 0 is the dense network. Empty where neither run is recorded."""
    run = select(summary, runs=RESNET_IMP)
    run = run[run.control.isin(["ticket", "reinit"])]
    if run.empty:
        return pd.DataFrame(columns=["density %"])
    means = run.groupby(["level", "control", "rewind"])[ACC].mean().mul(100).unstack(["control", "rewind"])
    means = means.sort_index(axis=1, level=["control", "rewind"], ascending=[False, True])
    means.columns = [column(control, k) for control, k in means.columns]
    density = run[run.control == "ticket"].groupby("level").density.mean().mul(100)
    return pd.concat([density.rename("density %"), means], axis=1).rename_axis("level")


def resnet_late_resetting(summary, curves=None) -> sc.Measured:
    ks = sorted(int(k) for k in select(summary, runs=RESNET_IMP).rewind.unique()) if "rewind" in summary else []
    if not ks:
        return sc._missing("no ResNet-20 IMP run in these tables; the claim needs one reset to k = 0 and one "
                           "rewound to a later k")
    if len(ks) < 2 or 0 not in ks:
        return sc._missing("ResNet-20 IMP is recorded rewound to k = "
                           f"{', '.join(f'{k:,}' for k in ks)} only so far; the claim needs k = 0 and a later k")
    table = late_resetting(summary)
    early, late, reinit = column("ticket", ks[0]), column("ticket", ks[-1]), column("reinit", ks[0])
    dense = table.loc[0, early] if 0 in table.index else float("nan")
    common = table[(table.index > 0)].dropna(subset=[early, late])
    if common.empty or pd.isna(dense) or common["density %"].min() > 30:
        reached = f"{common['density %'].min():.1f}%" if len(common) else "no sparse level"
        return sc._missing(f"both ResNet-20 IMP runs reach {reached} so far; the claim is read at P_m 30% or below")
    at = common.loc[common.index.max()]  # the sparsest level both reach
    gain = float(at[late] - at[early])
    vs_reinit = float(at[early] - at[reinit]) if reinit in at and pd.notna(at[reinit]) else float("nan")
    late_worst = float((common[late] - dense).min())
    shown = (f"at P_m {at['density %']:.1f}%: ticket k = {ks[-1]:,} {at[late] - dense:+.2f} points against the "
             f"dense {dense:.2f}%, k = 0 {at[early] - dense:+.2f}" +
             (f" (its reinit {at[reinit] - dense:+.2f})" if pd.notna(vs_reinit) else "") +
             f"; k = {ks[-1]:,} lowest over {len(common)} levels {late_worst:+.2f}")
    return sc.Measured(gain, shown, {"early_gap": float(at[early] - dense), "late_worst": late_worst,
                                     "vs_reinit": vs_reinit}, "{:+.2f}")


def late_resetting_rule(m) -> str:
    early_fails = m.parts["early_gap"] < -MATCH_POINTS
    late_matches = m.parts["late_worst"] >= -MATCH_POINTS
    if early_fails and late_matches:
        return sc.REPRODUCED
    return sc.PARTLY if m.value > MATCH_POINTS or late_matches else sc.NOT


def claims() -> list[sc.Claim]:
    """paper-claims.md sections 1 (ResNet), 2 and 3; [S] marks a secondary source's wording."""
    not_run = lambda why: (lambda s, c: sc._missing(why))
    return [
        sc.Claim("lenet-stable-at-init", "LeNet-300-100 is stable to SGD noise at initialisation: two copies "
                 "from theta_0 end in one linearly connected minimum", "stable at init (error barrier under "
                 "2 points) [S]", lenet_stable_at_init, lambda m: sc.REPRODUCED if m.value < STABLE_POINTS else sc.NOT,
                 "error barrier of the dense network's two copies from theta_0 (mean over trials); reproduced "
                 "under 2 points, the paper's threshold"),
        sc.Claim("imp-lenet-stable", "IMP subnetworks of LeNet are stable and matching when reset to "
                 "initialisation", "at init for MNIST (abstract); matching = no more than 0.2 points below dense [S]",
                 imp_lenet_stable, imp_lenet_rule, "largest barrier of the sparse levels' ticket and twin at k = 0, "
                 "and how many tickets are no more than 0.2 points below the dense network (test accuracy at the early "
                 "stop, mean over trials); reproduced if every level is stable and matching, partly if stable"),
        sc.Claim("resnet-dense-stable", "The dense ResNet-20 becomes stable to SGD noise early in training",
                 "at iteration 2,000 of 30,000 [S]", resnet_dense_stable, resnet_dense_rule,
                 "the first k of the dense network's twins with a barrier under 2 points; reproduced if it is "
                 "unstable at k = 0 and stable by k = 2,000, partly if it is stable from k = 0, not reproduced "
                 "if it is still unstable at k = 2,000, not measured while every k recorded is below 2,000 and "
                 "unstable"),
        sc.Claim("later-reset-stabler", "Resetting later gives subnetworks more stable to pruning: their "
                 "trained weights end nearer the full network's", "later resetting, stabler tickets "
                 "(abstract, Stabilizing the LTH)", later_reset_stabler, later_reset_rule,
                 "the tickets' distance to the trained dense network on their survivors over its norm there, "
                 "mean over levels, per k (LeNet), compared within a trial: the change from k = 0 to the latest k "
                 "in the trials that have both; reproduced if it falls with every later k (each step within the "
                 "trials that have both k), partly if the latest is below k = 0's"),
        sc.Claim("reinit-until-80", "Random reinitialisation keeps up with the ticket until about 80% is "
                 "pruned, then falls behind", "comparable to ~80% pruned, tickets hold far beyond "
                 "(a summary of the paper, not its text; unconfirmed) [S]", reinit_until_80, reinit_rule, "reinit minus ticket at the control level "
                 "nearest P_m 20% and at the sparsest (LeNet, k = 0, early-stop test accuracy, mean over "
                 "trials); reproduced if within 0.5 points at 20% and over 0.5 below at the sparsest"),
        sc.Claim("resnet-late-resetting", "At lr 0.1, ResNet-20's IMP finds winning tickets only with late "
                 "resetting", "none reset to theta_0 (Frankle & Carbin Sec. 4); rewound ones match (Stabilizing)",
                 resnet_late_resetting, late_resetting_rule,
                 "ticket rewound to k = 500 less ticket reset to k = 0 at the sparsest level both runs reach (at "
                 "most P_m 30%; early-stop test accuracy, one trial); reproduced if the k = 0 ticket is over 1 "
                 "point below the dense network there and the k = 500 ticket within 1 point of it at every "
                 "level; partly if only the second holds or k = 500 is over 1 point ahead; else not"),
        sc.Claim("imagenet-rewinding", "Rewinding to 0.1% to 7% of training finds matching subnetworks of "
                 "ResNet-50 on ImageNet", "e.g. 80% sparsity (abstract, v3)",
                 not_run("ImageNet is beyond a 2-core CPU"), lambda m: sc.UNMEASURED, "not measured here"),
    ]


def bookwide_tables():
    """(curves, summary, run scale) for the book-wide scorecard (lt_core/chapters/catalogue.py)."""
    summary, curves = recorded_tables()
    if summary.empty:
        return None, summary, "no recorded run"
    parts = [f"{net}: {', '.join(sorted({r for r in summary[summary.net == net].run}))}" for net in summary.net.unique()]
    return curves, summary, f"recorded, {len(summary)} networks and paths; " + "; ".join(parts)


# Frankle & Carbin's LeNet-300-100 protocol and Frankle et al. 2020's 30 interpolation points; rates as the
# configuration holds them, a mapping (pairs would read as differing in the settings table)
PAPER_SETTINGS = {"dataset": "mnist", "model": "lenet_300_100", "init": "glorot_normal", "optimizer": "adam",
                  "lr": 0.0012, "batch_size": 60, "iterations": 50000, "val_size": 5000, "pruning": "layerwise",
                  "rates": {"fc": 0.2, "output": 0.1}, "interpolation_points": 30}
