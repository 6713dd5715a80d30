"""The late-resetting chapter's verdict rules on made-up measurements with known answers, and its claims
and tables on a tiny run with twins (lt_core/chapters/stability.py)."""

import pandas as pd
import pytest

from lt_core.book import scorecard as sc
from lt_core.chapters import stability as st
from lt_core.chapters import stability_runs as sr
from lt_core.runs import executor
from lt_core.runs.results import load as load_results

from test_engine import cfg, tiny  # noqa: F401 (tiny is a fixture)


def m(value, **parts):
    return sc.Measured(value, "", parts)


def test_the_rules():
    assert st.imp_lenet_rule(m(0.3, matching=5, levels=5)) == sc.REPRODUCED
    assert st.imp_lenet_rule(m(0.3, matching=4, levels=5)) == sc.PARTLY
    assert st.imp_lenet_rule(m(2.5, matching=5, levels=5)) == sc.NOT
    assert st.resnet_dense_rule(m(500, at_0=6.0, largest_k=2000)) == sc.REPRODUCED
    assert st.resnet_dense_rule(m(0, at_0=1.0, largest_k=2000)) == sc.PARTLY  # stable from the start
    assert st.resnet_dense_rule(m(-1, at_0=6.0, largest_k=2000)) == sc.NOT    # never stable by 2,000
    assert st.resnet_dense_rule(m(-1, at_0=6.0, largest_k=500)) == sc.UNMEASURED
    assert st.later_reset_rule(m(-0.2, falling=True)) == sc.REPRODUCED
    assert st.later_reset_rule(m(-0.2, falling=False)) == sc.PARTLY
    assert st.later_reset_rule(m(0.1, falling=False)) == sc.NOT
    assert st.reinit_rule(m(-1.1, near_20=-0.2)) == sc.REPRODUCED
    assert st.reinit_rule(m(-1.1, near_20=-0.9)) == sc.PARTLY
    assert st.reinit_rule(m(-0.3, near_20=0.0)) == sc.NOT


def resnet_rows(barriers: dict[int, float]) -> pd.DataFrame:
    """A dense ResNet-20 run's ticket, twins and barriers, made up: barrier (points) per twin k."""
    rows = [dict(trial=0, level=0, control="ticket", draw=0, density=1.0, final_test_accuracy=0.9, seconds=100.0)]
    for d, (k, b) in enumerate(barriers.items()):
        rows.append(dict(trial=0, level=0, control="twin", draw=d, density=1.0, start_iteration=k,
                         final_test_accuracy=0.9, seconds=90.0))
        rows.append(dict(trial=0, level=0, control="barrier", draw=d, density=1.0, error_barrier=b / 100,
                         copies_distance=1.0, copies_norm=2.0, seconds=10.0))
    return pd.DataFrame(rows)


def test_the_resnet_claim_places_the_onset_and_waits_for_its_k():
    summary = st.combined([(st.RESNET, resnet_rows({0: 9.0, 100: 5.0, 500: 1.5}), "ResNet-20", 0)])
    measured = st.resnet_dense_stable(summary)
    assert measured.value == 500 and measured.parts == {"at_0": 9.0, "largest_k": 500}
    assert st.resnet_dense_rule(measured) == sc.REPRODUCED  # unstable at 0, stable by 500 <= 2,000
    unsettled = st.resnet_dense_stable(st.combined([(st.RESNET, resnet_rows({0: 9.0, 100: 5.0}), "ResNet-20", 0)]))
    assert st.resnet_dense_rule(unsettled) == sc.UNMEASURED  # unstable so far, 2,000 not yet recorded
    assert st.barriers(summary).k.tolist() == [0, 100, 500]
    assert st.resnet_dense_stable(st.combined([])).value != st.resnet_dense_stable(st.combined([])).value  # NaN
    plan = sr.compute_plan(summary)
    assert plan.loc[plan.index[0], "CPU hours (estimated)"] == round(28 * 100 / 3600, 1)
    assert plan["networks recorded"].sum() == 0  # no IMP run among these rows


def imp_rows(accuracy: dict[int, tuple[float, float | None]], dense: float = 0.82) -> pd.DataFrame:
    """A ResNet-20 IMP run, made up: level -> (ticket, reinit or None) early-stop accuracy; densities 0.64^l."""
    rows = [dict(trial=0, level=0, control="ticket", draw=0, density=1.0, early_stop_test_accuracy=dense,
                 seconds=100.0, stability_distance=float("nan"), stability_norm=float("nan"))]
    for level, (ticket, reinit) in accuracy.items():
        rows.append(dict(trial=0, level=level, control="ticket", draw=0, density=0.64 ** level, seconds=100.0,
                         early_stop_test_accuracy=ticket, stability_distance=1.0 / level, stability_norm=2.0))
        if reinit is not None:
            rows.append(dict(trial=0, level=level, control="reinit", draw=0, density=0.64 ** level, seconds=100.0,
                             early_stop_test_accuracy=reinit, stability_distance=1.0, stability_norm=2.0))
    return pd.DataFrame(rows)


def late_runs(early: dict, late: dict) -> pd.DataFrame:
    return st.combined([(st.RESNET_IMP[0], imp_rows(early), "ResNet-20", 0),
                        (st.RESNET_IMP[1], imp_rows(late), "ResNet-20", 500)])


def test_late_resetting_table_and_its_claim_on_made_up_runs():
    summary = late_runs({1: (0.815, None), 2: (0.80, None), 3: (0.79, 0.785)},
                        {1: (0.82, None), 2: (0.818, None), 3: (0.816, 0.78)})
    table = st.late_resetting(summary)
    assert list(table.columns) == ["density %", "ticket, k = 0", "ticket, k = 500", "reinit, k = 0", "reinit, k = 500"]
    assert table.loc[3, "ticket, k = 500"] == pytest.approx(81.6) and table.loc[3, "density %"] == pytest.approx(100 * 0.64 ** 3)
    assert pd.isna(table.loc[2, "reinit, k = 0"])
    measured = st.resnet_late_resetting(summary)
    assert measured.value == pytest.approx(81.6 - 79.0)  # rewound less reset, at the sparsest common level
    assert measured.parts["early_gap"] == pytest.approx(79.0 - 82.0)
    assert measured.parts["late_worst"] == pytest.approx(81.6 - 82.0)
    assert measured.parts["vs_reinit"] == pytest.approx(79.0 - 78.5)
    assert st.late_resetting_rule(measured) == sc.REPRODUCED
    # both reset and rewound tickets match: rewinding is not needed here
    both = st.resnet_late_resetting(late_runs({1: (0.82, None), 3: (0.815, None)}, {1: (0.82, None), 3: (0.816, None)}))
    assert st.late_resetting_rule(both) == sc.PARTLY  # k = 500 matches, but so does k = 0
    neither = st.resnet_late_resetting(late_runs({3: (0.75, None)}, {3: (0.755, None)}))
    assert st.late_resetting_rule(neither) == sc.NOT
    # the sparse levels at 64% and 41% only: too shallow to read the claim
    shallow = st.resnet_late_resetting(late_runs({1: (0.8, None), 2: (0.79, None)}, {1: (0.82, None), 2: (0.82, None)}))
    assert shallow.value != shallow.value and "41.0%" in shallow.shown  # NaN: the scorecard says not measured
    only_k0 = st.combined([(st.RESNET_IMP[0], imp_rows({3: (0.79, None)}), "ResNet-20", 0)])
    assert st.resnet_late_resetting(only_k0).value != st.resnet_late_resetting(only_k0).value  # NaN: one k
    card = sc.scorecard(st.claims(), summary)
    assert card.loc["resnet-late-resetting", "verdict"] == sc.REPRODUCED


def test_two_machines_pairs_only_the_units_trained_again():
    """A unit imported unchanged (same `finished`) is not a second training; one trained again is, with its
    k (0 at the dense level), both CPUs and the difference in points; a run without a first recording adds
    nothing."""
    def row(level, acc, finished, cpu):
        return dict(trial=0, level=level, control="ticket", draw=0, density=0.64 ** level, cpu=cpu,
                    start_iteration=500 if level else 0, finished=finished, early_stop_test_accuracy=acc,
                    seconds=1100.0 if cpu == "Xeon" else 1200.0)
    first = pd.DataFrame([row(0, 0.8197, "t0", "Xeon"), row(1, 0.8378, "t1", "Xeon"), row(3, 0.8541, "t3", "Xeon")])
    again = pd.DataFrame([row(0, 0.8233, "u0", "EPYC"), row(1, 0.8378, "t1", "Xeon"), row(3, 0.8430, "u3", "EPYC"),
                          row(4, 0.84, "u4", "EPYC")])
    table = sr.two_machines({"run": first, "other": first}, {"run": again})
    assert table.level.tolist() == [0, 3] and table.k.tolist() == [0, 500] and set(table.run) == {"run"}
    assert table["again - first (points)"].tolist() == pytest.approx([0.36, -1.11])
    assert table["first CPU"].tolist() == ["Xeon", "Xeon"] and table["again CPU"].tolist() == ["EPYC", "EPYC"]
    assert sr.two_machines({}, {"run": again}).empty
    assert table["first s"].tolist() == [1100.0, 1100.0] and table["again s"].tolist() == [1200.0, 1200.0]
    assert table["shared survivors %"].isna().all()  # no masks given
    # masks: a pruned tensor and an unpruned one (all kept in both: left out of the share)
    import torch
    whole = torch.ones(4, dtype=torch.bool)
    a = {"conv": torch.tensor([1, 1, 0, 0, 1, 1], dtype=torch.bool), "fc": whole}
    b = {"conv": torch.tensor([1, 0, 1, 0, 1, 1], dtype=torch.bool), "fc": whole}
    assert sr.shared_survivors(a, a) == 1.0 and sr.shared_survivors(a, b) == 0.75
    masks = {"run": ({"trial_00/level_03/ticket/mask": a}, {"trial_00/level_03/ticket/mask": b})}
    shared = sr.two_machines({"run": first}, {"run": again}, masks)["shared survivors %"].tolist()
    assert shared[0] != shared[0] and shared[1] == 75.0  # the dense level has no mask here: NaN
    # the compute plan counts every training given, the replaced ones included
    summary = late_runs({1: (0.8, None)}, {1: (0.8, None)})  # 4 networks of 100 s
    every = pd.concat([summary, pd.DataFrame({"seconds": [1100.0, 1100.0]})], ignore_index=True)
    row = sr.compute_plan(summary, every).iloc[1]
    assert row["networks recorded"] == 4 and row["trainings"] == 6
    assert row["CPU hours spent"] == round((400 + 2200) / 3600, 1)
    assert sr.compute_plan(summary).iloc[1]["CPU hours spent"] == round(400 / 3600, 1)


def test_the_late_resetting_figure_draws_each_control_and_k():
    from lt_core.chapters import stability_plots as stp
    summary = late_runs({1: (0.815, None), 3: (0.79, 0.785)}, {1: (0.82, None), 3: (0.816, 0.78)})
    fig = stp.resnet_late_resetting(summary)
    left, right = fig.axes[:2]
    labels = [line.get_label() for line in left.get_lines()]
    assert labels == ["dense, 82.00%", "ticket, k = 0", "ticket, k = 500", "reinit, k = 0", "reinit, k = 500"]
    assert [line.get_label() for line in right.get_lines()] == ["ticket, k = 0", "ticket, k = 500"]
    empty = stp.resnet_late_resetting(st.combined([]))
    assert "no ResNet-20 IMP run" in empty.axes[0].texts[0].get_text()


def test_claims_on_a_tiny_run_with_twins(tiny, tmp_path):
    c = cfg(levels=2, controls=["ticket", "twin", "reinit", "random"], interpolation_points=3,
            stability_distance=True, rewind_schedule="continue")
    executor.run(c, tmp_path, log=lambda *_: None)
    _, summary = load_results(c, tmp_path)
    both = st.combined([("a", summary, "LeNet-300-100", 0), ("b", summary, "LeNet-300-100", 100)])
    card = sc.scorecard(st.claims(), both)
    dense = summary[(summary.control == "barrier") & (summary.level == 0)].error_barrier.iloc[0]
    assert st.lenet_stable_at_init(both).value == pytest.approx(100 * dense)
    assert card.loc["later-reset-stabler", "verdict"] == sc.NOT  # the same run twice: no fall
    assert card.loc["resnet-dense-stable", "verdict"] == sc.UNMEASURED
    assert card.loc["imagenet-rewinding", "verdict"] == sc.UNMEASURED
    gap = st.reinit_until_80(both)
    ticket = summary[(summary.control == "ticket") & (summary.level == 2)].early_stop_test_accuracy.iloc[0]
    reinit = summary[(summary.control == "reinit") & (summary.level == 2)].early_stop_test_accuracy.iloc[0]
    assert gap.value == pytest.approx(100 * (reinit - ticket))


def lenet_rows(trial: int, distances: dict[int, float], early: dict[int, float] | None = None,
               final: dict[int, float] | None = None, reinit: dict[int, float] | None = None) -> pd.DataFrame:
    """A LeNet run's rows for one trial, made up: level -> the ticket's distance / norm (levels >= 1), with
    a barrier unit at each sparse level; `early` and `final`: level -> the ticket's early-stop and final test
    accuracy (level 0 the dense network's); `reinit`: level -> a reinit control's early-stop accuracy."""
    early = early or {0: 0.98, **{level: 0.98 for level in distances}}
    final = final or early
    rows = [dict(trial=trial, level=0, control="ticket", draw=0, density=1.0, early_stop_test_accuracy=early[0],
                 final_test_accuracy=final[0], stability_distance=float("nan"), stability_norm=float("nan"))]
    for level, d in distances.items():
        rows.append(dict(trial=trial, level=level, control="ticket", draw=0, density=0.8 ** level,
                         early_stop_test_accuracy=early[level], final_test_accuracy=final[level],
                         stability_distance=d, stability_norm=1.0))
        rows.append(dict(trial=trial, level=level, control="barrier", draw=0, density=0.8 ** level,
                         error_barrier=0.001, copies_distance=1.0, copies_norm=2.0))
        rows.append(dict(trial=trial, level=level, control="twin", draw=0, density=0.8 ** level, start_iteration=0,
                         final_test_accuracy=final[level], stability_distance=d, stability_norm=1.0))
        if reinit and level in reinit:
            rows.append(dict(trial=trial, level=level, control="reinit", draw=0, density=0.8 ** level,
                             early_stop_test_accuracy=reinit[level], stability_distance=1.0, stability_norm=1.0))
    return pd.DataFrame(rows)


def test_later_reset_stabler_compares_k_within_a_trial():
    """Trial 1 has runs at k = 0 and 500 only: the headline (k = 0 to 2,000) is read within trial 0, so it
    lies in the per-trial range (before, it set trial 0's k = 2,000 against both trials' k = 0: -0.30, outside
    -0.25 to -0.20), and the page's note says which k each trial compares."""
    k0 = pd.concat([lenet_rows(0, {1: 0.8, 2: 0.8}), lenet_rows(1, {1: 0.9, 2: 0.9})])
    k500 = pd.concat([lenet_rows(0, {1: 0.6, 2: 0.6}), lenet_rows(1, {1: 0.7, 2: 0.7})])
    k2000 = lenet_rows(0, {1: 0.55, 2: 0.55})
    summary = st.combined([("a", k0, "LeNet-300-100", 0), ("b", k500, "LeNet-300-100", 500),
                           ("c", k2000, "LeNet-300-100", 2000)])
    measured = st.later_reset_stabler(summary)
    assert measured.value == pytest.approx(-0.25) and measured.parts["falling"]
    assert "k 0 to 2,000 within trial 0: -0.250" in measured.shown and "k 0: 0.850" in measured.shown
    claim = next(c for c in st.claims() if c.id == "later-reset-stabler")
    assert sc.spread(claim, summary)["over trials"] == "-0.250 to -0.200"
    notes = st.trial_notes(summary)
    assert "trial 1 has runs at k = 0 and 500" in notes and "(2,000 in trial 0, 500 in trial 1)" in notes
    # a later k that rises in the one trial that has it is no fall, though its mean sits below k = 0's
    rising = st.combined([("a", k0, "LeNet-300-100", 0),
                          ("b", lenet_rows(0, {1: 0.85, 2: 0.85}), "LeNet-300-100", 500)])
    assert st.later_reset_stabler(rising).value == pytest.approx(0.05)
    assert st.later_reset_rule(st.later_reset_stabler(rising)) == sc.NOT


def test_the_matching_note_names_the_accuracy_each_trial_is_read_at():
    """imp-lenet-stable's matching reads the early stop; the note gives each trial's count there and at the
    end of training (the barrier tables' accuracy)."""
    t0 = lenet_rows(0, {3: 0.5, 6: 0.4}, early={0: 0.9795, 3: 0.9772, 6: 0.98}, final={0: 0.98, 3: 0.981, 6: 0.98})
    t1 = lenet_rows(1, {3: 0.5, 6: 0.4})
    summary = st.combined([("a", pd.concat([t0, t1]), "LeNet-300-100", 0)])
    measured = st.imp_lenet_stable(summary)
    assert measured.parts == {"matching": 2, "levels": 2}  # the mean over trials: -0.115 points at level 3
    assert "at the early stop" in measured.shown
    per_trial = st.imp_lenet_stable(summary[summary.trial == 0])
    assert per_trial.parts["matching"] == 1 and st.imp_lenet_rule(per_trial) == sc.PARTLY
    notes = st.trial_notes(summary)
    assert "trial 0: 1 of 2 (its ticket at P_m 51.2% is -0.23 points from it), trial 1: 2 of 2; so 1 of 2" in notes
    assert "it would be trial 0: 2 of 2, trial 1: 2 of 2." in notes
    assert st.barriers(summary).columns[7:9].tolist() == ["ticket % at end", "twin % at end"]
    one = st.imp_lenet_stable(st.combined([("a", t1[t1.level <= 3], "LeNet-300-100", 0)]))
    assert "over 1 level (P_m 51.2%);" in one.shown


def test_texts_without_a_run_or_with_one_control_level():
    empty = st.combined([])
    assert "none" not in st.resnet_dense_stable(empty).shown
    assert "no dense ResNet-20 run" in st.resnet_dense_stable(empty).shown
    assert "none" not in st.resnet_late_resetting(empty).shown
    only_0 = st.combined([(st.RESNET, resnet_rows({0: 9.0}), "ResNet-20", 0)])
    assert "recorded at k = 0 only so far" in st.resnet_dense_stable(only_0).shown
    one = st.combined([("a", lenet_rows(0, {6: 0.4}, early={0: 0.98, 6: 0.98}, reinit={6: 0.9725}),
                        "LeNet-300-100", 0)])
    gap = st.reinit_until_80(one)
    assert gap.value == pytest.approx(-0.75)
    assert gap.shown == ("reinit minus ticket: -0.75 points at P_m 26.2%, the one control level: nearest 20% "
                         "and sparsest")


def test_the_paper_profile_differs_from_the_paper_nowhere():
    """PAPER_SETTINGS' rates as the configuration holds them (a mapping): the settings table of
    params/stability_lenet.yaml's paper profile marks no parameter as differing, rates included."""
    from lt_core import config
    from lt_core.book import chapter
    from lt_core.provenance import REPO
    table = chapter.settings(config.load(REPO / "params" / "stability_lenet.yaml", "paper"), st.PAPER_SETTINGS)
    assert table.loc["rates", "paper"] == "{fc: 0.2, output: 0.1}"
    assert table.loc["rates", "differs"] == "" and (table.differs == "").all()


def test_the_recorded_runs_table_names_the_layers_rates_and_the_twins_not_trained():
    stored = {"model": "resnet20", "rates": {"conv": 0.2}, "controls": ["ticket", "twin"], "levels": 0,
              "twin_iterations": [100, 2000], "iterations": 3000, "rewind_iteration": 0, "control_levels": []}
    summary = resnet_rows({0: 9.0, 100: 5.0}).assign(start_iteration=lambda f: f.start_iteration.fillna(0))
    _, columns, suffix = sr.describe(summary, stored)
    assert columns["what"] == ("the dense network and its twins from k = 0, 100 (the twin from 2,000 planned, "
                               "not trained yet)")
    assert suffix == "  # also trains the twin from k = 2,000, not recorded"
    lenet = {**stored, "model": "lenet_300_100", "rates": {"fc": 0.2, "output": 0.1}, "levels": 15,
             "control_levels": [3], "controls": ["ticket", "twin"]}
    _, columns, suffix = sr.describe(summary.assign(level=0), lenet)
    assert "in rounds of fc 20%, output 10%; at levels 3: twin" in columns["what"] and suffix == ""


def test_the_mixed_resume_reads_its_distances_and_the_execution_figure_has_one_panel():
    twice = pd.DataFrame([
        dict(run=st.TRAINED_TWICE[0][1], level=3, control="ticket", **{"again - first (points)": 0.24,
             "first distance / norm": 1.12, "again distance / norm": 1.27}),
        dict(run=st.TRAINED_TWICE[1][1], level=3, control="ticket", **{"again - first (points)": -1.11,
             "first distance / norm": 0.49, "again distance / norm": 0.92})])
    assert sr.mixed_resume(twice) == ("1.11 points below the Xeon's ticket, at a distance / norm of 0.92 from its own "
                                      "dense network: farther than the Xeon's k = 500 ticket (0.49), nearer than the "
                                      "k = 0 ticket at that level (1.12 on the Xeon, 1.27 on the EPYC)")
    assert sr.mixed_resume(twice.iloc[:1]) == ""
    from lt_core.chapters import stability_plots as stp
    summary = st.combined([("execution", pd.concat([lenet_rows(0, {1: 0.5})]).assign(
        alphas=lambda f: [[0.0, 1.0]] * len(f), path_test_errors=lambda f: [[0.02, 0.02]] * len(f)),
        "LeNet-300-100", 0)])
    assert len(stp.paths(summary, "x", resnet=False).axes) == 1 and len(stp.paths(summary, "x").axes) == 2
