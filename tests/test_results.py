"""Tidy tables, status and the recorded (committable) copy of a run."""

import pytest

from lt_core.procedures import imp
from lt_core.runs import executor
from lt_core.data import datasets
from lt_core.runs import recorded, results
from test_engine import cfg, tiny_splits


@pytest.fixture
def run(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "load", lambda *a, **k: tiny_splits())
    c = cfg(trials=2, controls=["ticket", "random"], iterations=20)
    executor.run(c, tmp_path, log=lambda *_: None)
    return c, tmp_path


def test_status_counts_done_and_missing(run):
    c, root = run
    table = results.status(c, root)
    assert table.missing.sum() == 0 and table.done.sum() == len(imp.units(c))
    more = cfg(trials=3, controls=["ticket", "random"], iterations=20)  # more trials: same run, more units
    assert more.digest() == c.digest()
    grown = results.status(more, root)
    assert grown[grown.trial == 2].missing.sum() == 5 and grown[grown.trial < 2].missing.sum() == 0


def test_export_is_small_and_loads_back_the_same_numbers(run, tmp_path):
    c, root = run
    curves, summary = results.load(c, root)
    dest = recorded.export(c, tmp_path / "recorded", root, every=2)
    rec_curves, rec_summary, doc = recorded.load_recorded(dest)
    assert doc["digest"] == c.digest() and doc["config"]["trials"] == 2
    assert len(rec_summary) == len(summary)
    assert (rec_summary.early_stop_iteration.values == summary.early_stop_iteration.values).all()
    assert rec_summary.final_test_accuracy.values == pytest.approx(summary.final_test_accuracy.values)
    # thinned: every second evaluation and the last one
    assert sorted(rec_curves.iteration.unique()) == [0, 20]
    assert (rec_summary.code_version.notna()).all() and "finished" in rec_summary
    text = recorded.describe_recorded(rec_summary, doc)
    assert "trials present: [0, 1] (of 2 asked)" in text
    # a second export writes the same bytes (gzip without a time stamp)
    first = (dest / "curves.csv.gz").read_bytes()
    recorded.export(c, dest, root, every=2)
    assert (dest / "curves.csv.gz").read_bytes() == first


def test_missing_recorded_run_is_none_not_an_error(tmp_path):
    assert recorded.recorded("nope", tmp_path / "nope") is None
    with pytest.raises(FileNotFoundError, match="no recorded run"):
        recorded.load_recorded(tmp_path)
