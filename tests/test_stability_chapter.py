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
    summary = st.combined([("r", resnet_rows({0: 9.0, 100: 5.0, 500: 1.5}), "ResNet-20", 0)])
    measured = st.resnet_dense_stable(summary)
    assert measured.value == 500 and measured.parts == {"at_0": 9.0, "largest_k": 500}
    assert st.resnet_dense_rule(measured) == sc.REPRODUCED  # unstable at 0, stable by 500 <= 2,000
    unsettled = st.resnet_dense_stable(st.combined([("r", resnet_rows({0: 9.0, 100: 5.0}), "ResNet-20", 0)]))
    assert st.resnet_dense_rule(unsettled) == sc.UNMEASURED  # unstable so far, 2,000 not yet recorded
    assert st.barriers(summary).k.tolist() == [0, 100, 500]
    assert st.resnet_dense_stable(st.combined([])).value != st.resnet_dense_stable(st.combined([])).value  # NaN
    plan = st.compute_plan(summary)
    assert plan.loc[plan.index[0], "CPU hours (estimated)"] == round(26 * 100 / 3600, 1)


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
