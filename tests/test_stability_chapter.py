"""The late-resetting chapter's verdict rules on made-up measurements with known answers, and its claims
and tables on a tiny run with twins (lt_core/chapters/stability.py)."""

import pandas as pd
import pytest

from lt_core.book import scorecard as sc
from lt_core.chapters import stability as st
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
    plan = st.compute_plan(summary)
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
    table = st.two_machines({"run": first, "other": first}, {"run": again})
    assert table.level.tolist() == [0, 3] and table.k.tolist() == [0, 500] and set(table.run) == {"run"}
    assert table["again - first (points)"].tolist() == pytest.approx([0.36, -1.11])
    assert table["first CPU"].tolist() == ["Xeon", "Xeon"] and table["again CPU"].tolist() == ["EPYC", "EPYC"]
    assert st.two_machines({}, {"run": again}).empty
    assert table["first s"].tolist() == [1100.0, 1100.0] and table["again s"].tolist() == [1200.0, 1200.0]
    assert table["shared survivors %"].isna().all()  # no masks given
    # masks: a pruned tensor and an unpruned one (all kept in both: left out of the share)
    import torch
    whole = torch.ones(4, dtype=torch.bool)
    a = {"conv": torch.tensor([1, 1, 0, 0, 1, 1], dtype=torch.bool), "fc": whole}
    b = {"conv": torch.tensor([1, 0, 1, 0, 1, 1], dtype=torch.bool), "fc": whole}
    assert st.shared_survivors(a, a) == 1.0 and st.shared_survivors(a, b) == 0.75
    masks = {"run": ({"trial_00/level_03/ticket/mask": a}, {"trial_00/level_03/ticket/mask": b})}
    shared = st.two_machines({"run": first}, {"run": again}, masks)["shared survivors %"].tolist()
    assert shared[0] != shared[0] and shared[1] == 75.0  # the dense level has no mask here: NaN
    # the compute plan counts every training given, the replaced ones included
    summary = late_runs({1: (0.8, None)}, {1: (0.8, None)})  # 4 networks of 100 s
    every = pd.concat([summary, pd.DataFrame({"seconds": [1100.0, 1100.0]})], ignore_index=True)
    row = st.compute_plan(summary, every).iloc[1]
    assert row["networks recorded"] == 4 and row["trainings"] == 6
    assert row["CPU hours spent"] == round((400 + 2200) / 3600, 1)
    assert st.compute_plan(summary).iloc[1]["CPU hours spent"] == round(400 / 3600, 1)


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
