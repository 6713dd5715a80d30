"""Scorecard verdicts on synthetic tables built to satisfy, contradict or miss each claim."""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import synthetic  # noqa: E402
from lt_core.book import scorecard as sc  # noqa: E402
from lt_core.chapters import lenet_mnist  # noqa: E402

IDS = [c.id for c in lenet_mnist.claims()]
FIRST_SEVEN = IDS[:-1]  # all but the random-sparse trend need densities <= 26 %


def card(profile=synthetic.PAPER, **kwargs):
    curves, summary = synthetic.make_tables(profile, **kwargs)
    return sc.scorecard(lenet_mnist.claims(), summary, curves)


@pytest.fixture(scope="module")
def paper_card():
    return card(trials=3, draws=2)


def test_table_shape(paper_card):
    assert list(paper_card.columns) == ["claim", "paper", "ours", "verdict"]
    assert list(paper_card.index) == IDS and len(IDS) == 8
    assert set(lenet_mnist.claims()[0].__dataclass_fields__) >= {"id", "text", "paper_value"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        lenet_mnist.claims()[0].id = "x"


def test_rules_column_is_optional():
    curves, summary = synthetic.make_tables(levels=3, trials=1)
    assert "rule" in sc.scorecard(lenet_mnist.claims(), summary, curves, rules=True).columns


def test_tables_built_to_satisfy_are_reproduced(paper_card):
    assert (paper_card.verdict == "reproduced").all(), paper_card[["ours", "verdict"]]


def test_tables_built_to_contradict_are_not_reproduced():
    got = card(synthetic.CONTRADICT, trials=2, draws=2)
    assert (got.verdict == "not reproduced").all(), got[["ours", "verdict"]]


def test_ours_names_the_density_used_and_is_computed(paper_card):
    ours = paper_card.ours
    # synthetic truth: ticket early stop at 21.1 % is 1000 vs dense 2000 iterations
    assert ours["ticket-earlier-21"] == "50% earlier at 21.1%"
    assert ours["ticket-accuracy-13.5"].endswith("pts at 13.5%")
    assert ours["ticket-accuracy-3.6"].endswith("pts at 3.6%")
    assert ours["reinit-loses-accuracy"] == "ticket holds to 1.9%, reinit to 21.1%"
    assert ours["oneshot-earlier"].startswith("6/6 levels earlier")


def test_short_profile_is_not_measured():
    got = card(levels=7, trials=1)  # pruned only down to 26.3 %
    assert (got.loc[FIRST_SEVEN, "verdict"] == "not measured").all(), got[["ours", "verdict"]]
    assert got.loc["random-sparse-worse", "verdict"] == "reproduced"
    assert got.loc["ticket-earlier-21", "ours"].startswith("not measured")


def test_missing_controls_are_not_measured():
    got = card(levels=19, trials=1, controls=("ticket",))
    assert got.loc["ticket-earlier-21", "verdict"] == "reproduced"
    for cid in ["reinit-loses-accuracy", "ticket-vs-reinit-21", "oneshot-earlier",
                "iterative-smaller", "random-sparse-worse"]:
        assert got.loc[cid, "verdict"] == "not measured"


def test_no_dense_run_means_nothing_is_measured():
    curves, summary = synthetic.make_tables(levels=19, trials=1)
    summary = summary[summary.level > 0]
    got = sc.scorecard(lenet_mnist.claims(), summary, curves)
    assert (got.verdict == "not measured").all()


def test_small_effects_are_partly_reproduced():
    es, acc = synthetic.PAPER["ticket"]
    weak = {**synthetic.PAPER,
            # 10 % earlier at every pruned level (x = 0 is the dense net itself): right
            # direction, under half of the paper's 38 %
            "ticket": (lambda x: 1.0 if x == 0 else 0.9, lambda x: acc(x) + (0.006 if x > 3 else 0.0)),
            # reinit exactly as fast as the ticket, but less accurate
            "reinit": (lambda x: 0.9, lambda x: -0.0018 * x ** 2)}
    got = card(weak, trials=2)
    assert got.loc["ticket-earlier-21", "verdict"] == "partly"
    assert got.loc["ticket-earlier-21", "ours"] == "10% earlier at 21.1%"
    assert got.loc["ticket-accuracy-3.6", "verdict"] == "partly"  # +0.6 pts: near, not within 0.3
    assert got.loc["ticket-vs-reinit-21", "verdict"] == "partly"  # only accuracy goes its way


def test_nearest_level_is_used_within_reach():
    curves, summary = synthetic.make_tables(levels=19, trials=1)
    rows = sc._at(summary, "ticket", 0.20)  # between 21.1 % and 16.9 %: nearest on log scale
    assert rows.density.iloc[0] == pytest.approx(synthetic.lenet_density(7))
    assert sc._at(summary, "ticket", 0.01) is None  # beyond our sparsest level (1.9 %)


def test_spearman():
    assert sc._spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert sc._spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert sc._spearman([1, 2, 3], [5, 5, 5]) == 0.0


def test_verdicts_come_from_the_tables_not_the_claims():
    curves, summary = synthetic.make_tables(levels=19, trials=1)
    claims = lenet_mnist.claims()
    before = sc.scorecard(claims, summary, curves).loc["ticket-earlier-21", "verdict"]
    slowed = summary.copy()
    ticket = (slowed.control == "ticket") & (slowed.level > 0)
    slowed.loc[ticket, "early_stop_iteration"] = 5000
    after = sc.scorecard(claims, slowed, curves).loc["ticket-earlier-21", "verdict"]
    assert (before, after) == ("reproduced", "not reproduced")
    assert isinstance(sc.scorecard(claims, slowed, curves), pd.DataFrame)
