"""lt_core.runs.pool: an experiment's units trained in worker processes store what one process stores.

The workers are fresh interpreters, so they see no monkeypatching: these tests train on real MNIST, a few
steps per network. Classes the workers must find (a failing Trial) live in this module, which they import
by name."""

import threading

import papermill as pm
import pytest
import torch

from lt_core.book import chapter
from lt_core.procedures import imp
from lt_core.runs import executor
from lt_core.runs import pool
from lt_core.runs import results
from lt_core.runs.store import REPO, RunStore, Unit
from lt_core.training.loop import DeviceData

from test_engine import cfg, tiny  # noqa: F401 (a fixture)

SMALL = dict(dataset="mnist", trials=2, levels=2, iterations=20, eval_every=10)


def test_needs_are_what_a_unit_starts_from_and_come_before_it():
    c = cfg(**SMALL)
    order = {u: i for i, u in enumerate(imp.units(c))}
    assert {u.control for u in order} == {"ticket", "reinit", "random", "oneshot"}
    for unit, position in order.items():
        needs = imp.Trial.needs(unit)
        assert all(order[n] < position and n.trial == unit.trial for n in needs)  # one process's order works
        if unit.level == 0:
            assert needs == []
        elif unit.control == "oneshot":
            assert needs == [Unit(unit.trial, 0, "ticket")]
        else:  # mask_l comes from the level-(l-1) ticket's trained weights
            assert needs == [Unit(unit.trial, unit.level - 1, "ticket")]


def test_units_train_in_the_earliest_order_their_needs_allow(tiny, tmp_path):
    """Deterministic stand-in for the workers' races: every unit trained, by a fresh Trial (no cached masks),
    as early as `needs` lets it (controls before the ticket of their depth, so a one-shot control runs before
    the level-1 ticket), gives exactly what one process in imp.units order gives. A need that `needs`
    misses fails here with a missing file."""
    c = cfg(levels=3, reinit_draws=1, rewind_iteration=10)
    one = executor.run(c, tmp_path / "one", log=lambda *_: None)
    depth = {}
    for unit in imp.units(c):  # needs come earlier in this order (test above)
        depth[unit] = 1 + max((depth[n] for n in imp.Trial.needs(unit)), default=-1)
    order = sorted(depth, key=lambda u: (depth[u], u.control == "ticket"))
    assert order.index(Unit(0, 2, "oneshot")) < order.index(Unit(0, 1, "ticket"))
    store = RunStore(c, tmp_path / "eager")
    store.write_config()
    data = DeviceData.prepare(tiny, torch.device("cpu"))
    for unit in order:
        assert all(store.done(n) for n in imp.Trial.needs(unit))
        imp.Trial(c, store, unit.trial, data).run_unit(unit)
    a = {(s["level"], s["control"], s["draw"]): s for s in one.summaries()}
    b = {(s["level"], s["control"], s["draw"]): s for s in store.summaries()}
    assert set(a) == set(b)
    for key in a:
        for field in ("density", "final_test_accuracy", "early_stop_iteration", "early_stop_val_loss"):
            assert a[key][field] == b[key][field], (key, field)


def test_workers_store_what_one_process_stores(tmp_path):
    c = cfg(**SMALL)
    one = executor.run(c, tmp_path / "one", log=lambda *_: None)
    messages = []
    two = executor.run(c, tmp_path / "two", log=messages.append, workers=2)
    assert "in 2 processes" in messages[0]
    a = {(s["trial"], s["level"], s["control"], s["draw"]): s for s in one.summaries()}
    b = {(s["trial"], s["level"], s["control"], s["draw"]): s for s in two.summaries()}
    assert set(a) == set(b) and len(b) == len(imp.units(c))
    for key, s in b.items():
        assert s["threads"] == 1 and a[key]["threads"] >= 1
        assert s["seed"] == a[key]["seed"] and s["data_seed"] == a[key]["data_seed"]
        assert s["density"] == a[key]["density"], key  # the same masks
        # the same training up to the kernels' summation order (one thread instead of two)
        assert abs(s["final_test_accuracy"] - a[key]["final_test_accuracy"]) <= 0.01, key
    executor.run(c, tmp_path / "two", log=messages.append, workers=2)
    assert messages[-1].startswith(f"{c.experiment}: all {len(b)} units done")


class FailingImp(imp.ImpProcedure):
    """Trial 1's level-1 ticket fails (in a worker process)."""

    def run_unit(self, unit, store, data, on_step=None):
        if unit == Unit(1, 1, "ticket"):
            raise ValueError("broken on purpose")
        super().run_unit(unit, store, data, on_step)


def test_a_failing_unit_is_named_finished_units_stay_and_a_rerun_resumes(tmp_path):
    c = cfg(**SMALL)
    store = RunStore(c, tmp_path)
    todo = imp.units(c)
    with pytest.raises(RuntimeError, match=r"training Unit\(trial=1, level=1, control='ticket'.*broken on purpose"):
        executor.run(c, tmp_path, log=lambda *_: None, workers=2, procedure=FailingImp(c))
    assert store.done(Unit(1, 0, "ticket")) and not store.done(Unit(1, 1, "ticket"))
    executor.run(c, tmp_path, log=lambda *_: None, workers=2)
    assert all(store.done(u) for u in todo)


def test_workers_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="workers=0"):
        executor.run(cfg(), tmp_path, log=lambda *_: None, workers=0)
    for bad in ("2", 1.5, True):  # papermill's -p workers "2" arrives as a string
        with pytest.raises(ValueError, match="whole number"):
            executor.run(cfg(), tmp_path, log=lambda *_: None, workers=bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine where device=cuda fails")
def test_a_worker_that_cannot_start_says_why_instead_of_hanging(tmp_path):
    """A Pool whose initializer raises restarts workers forever; the set-up error must reach the caller, and
    as itself: a device error is a ConfigError, one line on the command line, not a RuntimeError traceback.
    (executor.run checks the device before starting workers; train_units is called directly here.)"""
    from lt_core.config import ConfigError
    c = cfg(**SMALL, device="cuda")
    outcome = {}

    def call():
        try:
            pool.train_units({"": (imp.ImpProcedure(c), str(tmp_path))}, imp.units(c), 2)
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout=180)
    assert not thread.is_alive(), "train_units hung on a worker that could not start"
    assert isinstance(outcome["error"], ConfigError) and "cuda" in str(outcome["error"])


def test_the_chapter_trains_with_workers(tmp_path):
    """papermill's `-p workers 2` reaches executor.run: every network of the smoke profile is trained by a
    one-thread worker process."""
    pm.execute_notebook(str(REPO / "book" / "lenet_mnist.ipynb"), str(tmp_path / "out.ipynb"),
                        parameters={"profile": "smoke", "workers": 2, "results_root": str(tmp_path / "results")},
                        cwd=str(REPO / "book"), progress_bar=False)
    c = chapter.configure("lenet_mnist", "smoke")
    _, summary = results.load(c, tmp_path / "results")
    assert len(summary) == len(imp.units(c)) and set(summary.threads) == {1}
