"""The late-resetting chapter's recorded runs as runs (issue 15): what each covers and cost, with the command
that trains it (`recorded_runs_table`, `describe`); the ResNet-20 runs planned against what is recorded
(`compute_plan`); and the units trained twice, once on each of two machines, with how far the second
training moved them (`two_machines`, `recorded_two_machines`, `mixed_resume`). The claims and the stability
tables themselves are in `stability`.
"""
from __future__ import annotations

import pandas as pd

from ..procedures.base import Unit
from .stability import ACC, NETS, RESNET, RESNET_IMP, TRAINED_TWICE, select


def shared_survivors(a: dict, b: dict) -> float:
    """Of mask a's surviving weights in its pruned tensors (those not all kept in both), the fraction b keeps
    too: 1 for the same mask; about b's density for unrelated ones."""
    pruned = [n for n in a if not (bool(a[n].all()) and bool(b[n].all()))]
    kept = sum(int(a[n].sum()) for n in pruned)
    return sum(int((a[n] & b[n]).sum()) for n in pruned) / kept if kept else float("nan")


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column as floats; NaN throughout where the frame has none (a run without stability distances)."""
    return frame[name].astype(float) if name in frame else pd.Series(float("nan"), index=frame.index)


def two_machines(first: dict[str, pd.DataFrame], now: dict[str, pd.DataFrame],
                 masks: dict[str, tuple[dict, dict]] | None = None) -> pd.DataFrame:
    """The units a run trained twice, once in each of two recordings of it (`first` and `now`, summaries by
    run name): same seeds, trained again (another `finished`), typically on another kind of CPU. Per unit:
    k (where it started), level, control, density %, each training's CPU, early-stop test accuracy (%) and
    seconds, the difference in points, each training's stability distance / norm (NaN at the dense level),
    and with `masks` (run name -> both recordings' read_masks) the share of the first mask's survivors the
    second keeps (100%: the mask was imported and only the training repeated; less: the second run pruned
    its own from weights trained on its machine)."""
    keys, tables = ["trial", "level", "control", "draw"], []
    for name, a in first.items():
        if name not in now:
            continue
        both = a.merge(now[name], on=keys, suffixes=(" a", " b"))
        both = both[both["finished a"] != both["finished b"]].reset_index(drop=True)
        ma, mb = (masks or {}).get(name, ({}, {}))
        paths = [f"{Unit(int(t), int(l), c, int(d)).path}/mask" for t, l, c, d in both[keys].itertuples(index=False)]
        shared = [shared_survivors(ma[p], mb[p]) if p in ma and p in mb else float("nan") for p in paths]
        tables.append(pd.DataFrame({
            "run": name, "k": both["start_iteration b"].astype(int), "level": both.level.astype(int),
            "control": both.control, "density %": 100 * both["density b"],
            "first CPU": both["cpu a"], "first %": 100 * both[f"{ACC} a"], "first s": _column(both, "seconds a"),
            "again CPU": both["cpu b"], "again %": 100 * both[f"{ACC} b"], "again s": _column(both, "seconds b"),
            "again - first (points)": 100 * (both[f"{ACC} b"] - both[f"{ACC} a"]),
            "shared survivors %": [100 * x for x in shared],
            **{f"{which} distance / norm": _column(both, f"stability_distance {side}")
               / _column(both, f"stability_norm {side}") for which, side in (("first", "a"), ("again", "b"))}}))
    columns = ["run", "k", "level", "control", "density %", "first CPU", "first %", "first s", "again CPU",
               "again %", "again s", "again - first (points)", "shared survivors %", "first distance / norm",
               "again distance / norm"]
    return pd.concat(tables, ignore_index=True)[columns] if tables else pd.DataFrame(columns=columns)


def recorded_trainings() -> pd.DataFrame:
    """Every training the ResNet-20 IMP recordings hold, once: the quoted runs' and their other recordings'
    (TRAINED_TWICE) rows, one per run digest, unit and `finished` (a unit imported into a resumed run is the
    same training as in the recording it came from)."""
    from ..runs import recorded as recorded_runs
    frames = []
    for name in dict.fromkeys(RESNET_IMP + tuple(n for pair in TRAINED_TWICE for n in pair)):
        rec = recorded_runs.recorded(name)
        if rec is not None:
            frames.append(rec[1].assign(digest=rec[2]["digest"]))
    if not frames:
        return pd.DataFrame(columns=["digest", "trial", "level", "control", "draw", "finished", "seconds"])
    return pd.concat(frames, ignore_index=True).drop_duplicates(["digest", "trial", "level", "control", "draw",
                                                                 "finished"])


def recorded_two_machines() -> pd.DataFrame:
    """two_machines of the committed ResNet-20 IMP runs against their first recordings (TRAINED_TWICE)."""
    from ..runs import recorded as recorded_runs
    first, now, masks = {}, {}, {}
    for old, name in TRAINED_TWICE:
        a, b = recorded_runs.recorded(old), recorded_runs.recorded(name)
        if a is not None and b is not None:
            first[name], now[name] = a[1], b[1]
            masks[name] = tuple(recorded_runs.read_masks(recorded_runs.folder_of(n)) for n in (old, name))
    return two_machines(first, now, masks)


def mixed_resume(twice: pd.DataFrame) -> str:
    """How the `_mixed` resume's level-3 ticket (the Xeon's mask on the EPYC's W_500) came out, from
    two_machines' table: its accuracy against the Xeon's and its distance to its own dense network beside
    the Xeon's k = 500 ticket's and the k = 0 tickets' at that level. '' where a run is missing."""
    def unit(run, level=3):
        rows = twice[(twice.run == run) & (twice.level == level) & (twice.control == "ticket")]
        return rows.iloc[0] if len(rows) else None
    mixed, reset = unit(TRAINED_TWICE[1][1]), unit(TRAINED_TWICE[0][1])
    if mixed is None or reset is None:
        return ""
    change = mixed["again - first (points)"]
    return (f"{abs(change):.2f} points {'below' if change < 0 else 'above'} the Xeon's ticket, at a distance / norm "
            f"of {mixed['again distance / norm']:.2f} from its own dense network: farther than the Xeon's k = 500 "
            f"ticket ({mixed['first distance / norm']:.2f}), nearer than the k = 0 ticket at that level "
            f"({reset['first distance / norm']:.2f} on the Xeon, {reset['again distance / norm']:.2f} on the EPYC)")


def recorded_twins() -> tuple[list[int], list[int]]:
    """The k of the recorded dense ResNet-20's twins (RESNET), and those its configuration plans but the
    recording has not trained yet."""
    from ..runs import recorded as recorded_runs
    rec = recorded_runs.recorded(RESNET)
    if rec is None:
        return [], []
    twins = sorted(int(k) for k in rec[1][rec[1].control == "twin"].start_iteration)
    return twins, [int(k) for k in rec[2]["config"].get("twin_iterations", ()) if int(k) not in twins]


def describe(summary, stored):
    """The recorded-run table's own columns (lt_core/book/report.recorded_runs_table)."""
    twins = sorted(int(k) for k in summary[summary.control == "twin"].start_iteration)  # recorded, not planned
    net = "ResNet-20 (CIFAR-10)" if stored["model"] == "resnet20" else "LeNet-300-100 (MNIST)"
    rounds = ", ".join(f"{layer} {100 * r:.0f}%" for layer, r in stored["rates"].items())
    controls = ", ".join(c for c in stored["controls"] if c != "ticket")
    # the dense run's twins its configuration plans but the recording has not trained yet (its command would)
    untrained = [] if stored["levels"] else [int(k) for k in stored.get("twin_iterations", ()) if int(k) not in twins]
    later, plural = ", ".join(f"{k:,}" for k in untrained), "s" if len(untrained) > 1 else ""
    what = (f"the dense network and its twins from k = {', '.join(f'{k:,}' for k in twins)}" +
            (f" (the twin{plural} from {later} planned, not trained yet)" if untrained else "")
            if not stored["levels"] else
            f"IMP rewound to k = {stored['rewind_iteration']:,} in rounds of {rounds}; at levels "
            f"{', '.join(map(str, stored['control_levels']))}: {controls}")
    reached = int(summary.level.max()) if len(summary) else 0
    levels = f"0..{stored['levels']}" + (f" (0..{reached} so far)" if reached < stored["levels"] else "")
    suffix = f"  # also trains the twin{plural} from k = {later}, not recorded" if untrained else ""
    return summary, {"network": net, "what": what, "levels": levels,
                     "steps": f"{int(stored['iterations']):,}"}, suffix


def recorded_runs_table(names=tuple(NETS)) -> tuple[pd.DataFrame, list[str]]:
    """What the committed runs cover and cost, and the commands that train exactly them."""
    from ..book.report import recorded_runs_table as table
    return table(names, describe)


def compute_plan(summary: pd.DataFrame, trainings: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ResNet-20 runs the chapter plans, each estimated from the recorded dense ResNet-20's measured
    seconds a network (its ticket at level 0) and a barrier (NaN where nothing is recorded to measure by),
    beside what is recorded of each so far and the CPU-hours that took: with `trainings` (recorded_trainings)
    every training of the IMP runs, those a resume repeated and the recordings replaced included."""
    twins = select(summary, "ResNet-20", runs=RESNET)
    dense = twins[(twins.control == "ticket") & (twins.level == 0)].seconds.astype(float)
    paths = twins[twins.control == "barrier"].seconds.astype(float)
    network = dense.mean() if len(dense) else float("nan")
    barrier = paths.mean() if len(paths) else float("nan")
    from .. import config
    from ..procedures import imp as imp_procedure
    from ..provenance import REPO
    short_imp = config.load(REPO / "params" / "stability_resnet20.yaml", "short_imp")
    planned = 2 * len(imp_procedure.units(short_imp))  # k = 0 and k = 500: the same units each
    imp_runs = select(summary, runs=RESNET_IMP)
    plan = [("(a), the full form: IMP at lr 0.1 in rounds of 20% to 10.7%, rewound to k = 0 and to 500, reinit "
             "at 3 levels", 2 * 11 + 2 * 3, 0, 1, None, None),
            ("(a), as run (params `short_imp`): rounds of 36% to 10.7% (5 levels), k = 0 and 500, reinit at "
             "levels 3 and 5", planned, 0, 1, imp_runs, imp_runs if trainings is None else trainings),
            ("(b) one sparse level's twins against k (4 k), with their barriers", 4, 4, 1, None, None),
            ("(c) the dense twins at lr 0.01 and at 0.03 with warmup (5 k each)", 2 * 6, 2 * 5, 1, None, None),
            ("one network at the paper's 30,000 iterations (ten times the schedule)", 1, 0, 10, None, None)]
    rows = [{"run": what, "networks": n, "barriers": b,
             "CPU hours (estimated)": round((n * scale * network + b * barrier) / 3600, 1),
             "networks recorded": 0 if done is None else len(done),
             "trainings": 0 if spent is None else len(spent),
             "CPU hours spent": 0.0 if spent is None else round(spent.seconds.astype(float).sum() / 3600, 1)}
            for what, n, b, scale, done, spent in plan]
    return pd.DataFrame(rows).set_index("run")
