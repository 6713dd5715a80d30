"""The procedure contract: a toy procedure (tests/toy_procedure.py) gets the executors, status, results and
resume after a kill by implementing units, needs and run_unit; configuration errors name the procedure."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import toy_procedure  # noqa: F401  (registers the toy)
from lt_core.config import ConfigError, make, section
from lt_core.procedures.base import Unit, procedure_for
from lt_core.runs import executor, results
from lt_core.runs.store import RunStore

from test_engine import tiny  # noqa: F401 (a fixture)

TOY = dict(experiment="toy", procedure="toy_lengths", dataset="mnist", batch_size=20, eval_every=10,
           trials=2, lengths=[20, 30])


def toy(**kw):
    return make({**TOY, **kw})


def test_a_procedures_fields_are_checked_and_named():
    c = toy()
    assert c.lengths == (20, 30) and c.settings.lengths == (20, 30) and c.procedure == "toy_lengths"
    with pytest.raises(ConfigError, match=r"unknown parameter 'levels' for procedure 'toy_lengths'.*lengths"):
        toy(levels=3)  # IMP's field, not the toy's
    with pytest.raises(ConfigError, match=r"unknown parameter 'lengths' for procedure 'imp'"):
        make({"lengths": [1]})
    with pytest.raises(ConfigError, match="must be positive"):
        toy(lengths=[0])
    with pytest.raises(ConfigError, match="procedure 'nope' is not one of imp, .*toy_lengths"):
        make({"procedure": "nope"})
    with pytest.raises(AttributeError, match="procedure 'toy_lengths' has no parameter 'levels'"):
        c.levels  # noqa: B018


def test_a_required_field_is_named_and_a_section_may_not_shadow_a_shared_one():
    import dataclasses

    @section("needs_source")
    @dataclasses.dataclass(frozen=True)
    class NeedsSource:
        source: str

        def check(self, cfg):
            pass

    with pytest.raises(ConfigError, match="procedure 'needs_source' needs the parameter 'source'"):
        make({"procedure": "needs_source"})
    assert make({"procedure": "needs_source", "source": "lenet"}).source == "lenet"
    with pytest.raises(TypeError, match=r"redefines shared fields \['lr'\]"):
        section("bad")(dataclasses.make_dataclass("Bad", [("lr", float, 0.1)], frozen=True))


def test_names_of_other_procedures_differ_and_imp_names_are_unchanged():
    assert toy().digest() != toy(lengths=[20, 40]).digest()  # the section is part of the name
    assert toy().digest() == toy(pause=1.0, trials=3).digest()  # its extent is not
    assert make({}).digest() == make({"procedure": "imp"}).digest()


def test_the_toy_runs_in_one_process_and_resumes(tiny, tmp_path):
    c = toy()
    proc = procedure_for(c)
    assert [u for u in proc.units()] == [Unit(0, 0, "dense"), Unit(0, 1, "dense"), Unit(1, 0, "dense"),
                                          Unit(1, 1, "dense")]
    store = executor.run(c, tmp_path, log=lambda *_: None)
    summary = results.summary_table(c, tmp_path)
    assert list(summary.iterations) == [20, 30, 20, 30] and summary.final_iteration.tolist() == [20, 30, 20, 30]
    assert int(results.status(c, tmp_path).missing.sum()) == 0
    # lose one unit (a kill before its summary was written): only that one is trained again
    (store.unit_dir(Unit(1, 1, "dense")) / "summary.json").unlink()
    before = {s["level"] + 10 * s["trial"]: s["finished_ns"] for s in store.summaries()}
    executor.run(c, tmp_path, log=lambda *_: None)
    after = {s["level"] + 10 * s["trial"]: s["finished_ns"] for s in store.summaries()}
    assert {k for k in after if after[k] != before.get(k)} == {11}
    messages = []
    executor.run(c, tmp_path, log=messages.append)
    assert messages == [f"toy: all 4 units done in {store.dir}"]


def test_the_toy_runs_in_two_workers_killed_and_resumed(tmp_path):
    """Real MNIST (workers are fresh interpreters). The run is killed -9 with its workers once a unit is
    stored; the rerun with --workers 2 trains only what is missing, each unit after its needs."""
    c = toy(lengths=[200, 400, 400], pause=1.0)
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import toy_procedure; "
              f"from lt_core.config import make; from lt_core.runs import executor; "
              f"executor.run(make({dict(TOY, lengths=[200, 400, 400], pause=1.0)!r}), {str(tmp_path)!r}, "
              f"log=lambda *_: None, workers=2)")
    child = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    store = RunStore(c, tmp_path)
    deadline = time.time() + 240
    while not store.summaries() and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    first = {(s["trial"], s["level"]): s["finished_ns"] for s in store.summaries()}
    assert 1 <= len(first) < 6, "the kill came too late to test resuming"
    executor.run(c, tmp_path, log=lambda *_: None, workers=2)
    again = {(s["trial"], s["level"]): s["finished_ns"] for s in store.summaries()}
    assert len(again) == 6 and all(again[k] == v for k, v in first.items())  # finished units kept
    one = executor.run(c, tmp_path / "one", log=lambda *_: None)
    a = {(s["trial"], s["level"]): s for s in one.summaries()}
    for s in store.summaries():
        assert abs(s["final_test_accuracy"] - a[(s["trial"], s["level"])]["final_test_accuracy"]) <= 0.01


@pytest.mark.parametrize("workers", [1, 2])
def test_units_of_another_experiment_are_trained_first_in_their_own_store(tmp_path, workers):
    """A toy whose first units need the last unit of another toy experiment (as ticket transfer will):
    running it trains the source's units in the source's store, before the units that need them."""
    c = toy(lengths=[20], source_lengths=[20, 30], trials=1)
    source = procedure_for(c).source()
    messages = []
    executor.run(c, tmp_path, log=messages.append, workers=workers)
    assert "3 of 3 units to train" in messages[0]  # the source's two and the toy's one
    assert int(results.status(source, tmp_path).missing.sum()) == 0 and len(RunStore(source, tmp_path).summaries()) == 2
    assert len(RunStore(c, tmp_path).summaries()) == 1
    messages.clear()
    executor.run(c, tmp_path, log=messages.append, workers=workers)
    assert messages == [f"toy: all 3 units done in {RunStore(c, tmp_path).dir}"]
