"""Ticket transfer (lt_core/procedures/transfer.py) end to end on tiny data: a transferred unit starts from
exactly the source ticket's mask and rewound weights, its controls from the mask on fresh weights and from
the mask's counts; one source serves two targets without retraining; the source's parameters name the
target's run; a wrong source is one error before training."""

import pytest
import torch

from lt_core.config import ConfigError, make
from lt_core.procedures.base import Unit, procedure_for
from lt_core.runs import executor
from lt_core.runs.results import load as load_results
from lt_core.runs.store import RunStore

from test_engine import tiny  # noqa: F401  (fixture)

SOURCE = {"experiment": "src", "dataset": "mnist", "iterations": 30, "eval_every": 10, "batch_size": 20,
          "val_size": 60, "levels": 2, "controls": ["ticket"], "rewind_iteration": 10, "trials": 1}


def target(**kw):
    base = dict(experiment="tgt", procedure="transfer", dataset="fashion_mnist", iterations=30, eval_every=10,
                batch_size=20, val_size=60, source=SOURCE, trials=1)
    return make({**base, **kw})


def test_a_transferred_unit_starts_from_the_source_ticket_bit_for_bit(tiny, tmp_path):
    c = target()
    store = executor.run(c, tmp_path, log=lambda *_: None)
    proc = procedure_for(c)
    source = RunStore(proc.source, tmp_path)
    source_mask = source.load_tensor(Unit(0, 2, "ticket"), "mask")
    theta_k = source.load_trial_tensor(0, "rewind")
    mask, model = proc.start(Unit(0, 2, "transfer"), store)
    assert all(torch.equal(mask[n], source_mask[n]) for n in source_mask)
    assert all(torch.equal(model.state_dict()[n], t) for n, t in theta_k.items())
    reinit_mask, fresh = proc.start(Unit(0, 2, "transfer_reinit"), store)
    assert all(torch.equal(reinit_mask[n], source_mask[n]) for n in source_mask)
    assert not torch.equal(fresh.fc1.weight, theta_k["fc1.weight"])
    random_mask, _ = proc.start(Unit(0, 2, "random"), store)
    assert {n: int(t.sum()) for n, t in random_mask.items()} == {n: int(t.sum()) for n, t in source_mask.items()}
    assert not torch.equal(random_mask["fc1.weight"], source_mask["fc1.weight"])
    _, summary = load_results(c, tmp_path)
    assert len(summary) == 7 and set(summary.control) == {"transfer", "transfer_reinit", "random"}
    assert set(summary.source) == {proc.source_name}
    # each unit names the weights it started from: every transferred ticket the source's theta_k, as the
    # source's own rewound tickets do; the fresh-weight controls a draw of the target's own
    from lt_core.provenance import weights_sha256
    starts = summary.groupby("control").start_weights_sha256.unique()
    assert list(starts["transfer"]) == [weights_sha256({n: theta_k[n] for n in model.prunable})]
    assert source.summary(Unit(0, 1, "ticket"))["start_weights_sha256"] == starts["transfer"][0]
    assert starts["transfer"][0] not in set(starts["transfer_reinit"]) | set(starts["random"])


def test_theta_0_transfers_when_the_source_does_not_rewind(tiny, tmp_path):
    from lt_core.procedures.imp import derive_seed, new_model
    c = target(source={**SOURCE, "rewind_iteration": 0, "levels": 1})
    store = executor.run(c, tmp_path, log=lambda *_: None)
    proc = procedure_for(c)
    theta_0 = new_model(proc.source, derive_seed(derive_seed(proc.source.seed, 0), "init")).state_dict()
    _, model = proc.start(Unit(0, 1, "transfer"), store)
    assert all(torch.equal(model.state_dict()[n], t) for n, t in theta_0.items())


def test_one_source_serves_two_targets_and_names_them(tiny, tmp_path):
    lines = []
    executor.run(target(), tmp_path, log=lines.append)
    sgd = target(experiment="tgt_sgd", optimizer="sgd", lr=0.05)
    source = RunStore(procedure_for(sgd).source, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in source.dir.rglob("summary.json")}
    executor.run(sgd, tmp_path, log=lines.append)
    assert {p: p.stat().st_mtime_ns for p in source.dir.rglob("summary.json")} == before  # not retrained
    assert "7 of 10 units" in lines[-1]  # the target's own units only; the source's 3 were stored
    assert target().digest() != target(source={**SOURCE, "rewind_iteration": 20}).digest()
    # the source's own extent (more trials) keeps the source's store, so its finished units serve again
    assert procedure_for(target(source={**SOURCE, "trials": 2})).source_name == procedure_for(target()).source_name
    # a source that does not state its trials trains the target's, no more
    assert procedure_for(target(trials=2, source={k: v for k, v in SOURCE.items() if k != "trials"})).source.trials == 2
    # and the target's name: more source trials or levels extend the target's run as they extend the source's
    assert target(source={**SOURCE, "trials": 2, "levels": 3}).digest() == target().digest()


def test_a_wrong_source_is_one_error_before_training(tiny, tmp_path):
    with pytest.raises(ConfigError, match="same architecture"):
        procedure_for(target(source={**SOURCE, "model": "lenet5"})).check()
    with pytest.raises(ConfigError, match="source: unknown parameter 'levles'"):
        procedure_for(target(source={**SOURCE, "levles": 2}))
    with pytest.raises(ConfigError, match="imp run"):
        procedure_for(target(source={"experiment": "src", "procedure": "edge_popup", "optimizer": "sgd"}))
    with pytest.raises(ConfigError, match="'source' is empty"):
        target(source={})
    with pytest.raises(ConfigError, match="raise the source's trials"):
        procedure_for(target(trials=2)).check()


def test_an_output_layer_of_other_classes_stays_fresh_and_unpruned(tiny, tmp_path, monkeypatch):
    from lt_core.data import datasets
    c = target(control_levels=[2])
    proc = procedure_for(c)
    executor.run(proc.source, tmp_path, log=lambda *_: None)  # the source alone (ten classes)
    monkeypatch.setattr(datasets, "num_classes", lambda name: 5 if name == "fashion_mnist" else 10)
    mask, model = proc.start(Unit(0, 2, "transfer"), RunStore(c, tmp_path))
    source = RunStore(proc.source, tmp_path)
    theta_k, source_mask = source.load_trial_tensor(0, "rewind"), source.load_tensor(Unit(0, 2, "ticket"), "mask")
    assert model.fc3.weight.shape == (5, 100) and bool(mask["fc3.weight"].all())
    assert torch.equal(mask["fc2.weight"], source_mask["fc2.weight"])
    assert torch.equal(model.fc1.weight, theta_k["fc1.weight"])  # the shared layers transfer


def test_a_recorded_transfer_and_its_source_resume_on_a_fresh_machine(tiny, tmp_path):
    """Both recordings go back into their own stores (`run --resume-from A --resume-from B`); the source's
    theta_k is not recorded (no weights), so its level 0 trains again for the target's missing unit, and
    the unit then starts from the recorded source mask."""
    import shutil
    from lt_core.runs import recorded
    c = target(controls=["transfer"])
    executor.run(c, tmp_path / "a", log=lambda *_: None)
    proc = procedure_for(c)
    first = RunStore(proc.source, tmp_path / "a")
    theta_k = first.load_trial_tensor(0, "rewind")
    shutil.rmtree(RunStore(c, tmp_path / "a").dir / Unit(0, 2, "transfer").path)  # stopped before it
    recorded.export(c, tmp_path / "rec_target", tmp_path / "a")
    recorded.export(proc.source, tmp_path / "rec_source", tmp_path / "a")
    messages = []
    recorded.resume_all(c, [tmp_path / "rec_source", tmp_path / "rec_target"], tmp_path / "b", log=messages.append)
    assert "2 units resumed" in messages[0] and "2 units resumed" in messages[1]
    assert "1 recorded units to train again" in messages[1]  # the source's level 0, for theta_k
    lines = []
    executor.run(c, tmp_path / "b", log=lines.append)
    assert "2 of 6 units" in lines[0]  # of 3 + 3: the source's level 0 and the target's missing unit
    again = RunStore(proc.source, tmp_path / "b")
    assert all(torch.equal(again.load_trial_tensor(0, "rewind")[n], t) for n, t in theta_k.items())
    mask, _ = proc.start(Unit(0, 2, "transfer"), RunStore(c, tmp_path / "b"))
    assert torch.equal(mask["fc1.weight"], first.load_tensor(Unit(0, 2, "ticket"), "mask")["fc1.weight"])
    with pytest.raises(ConfigError, match="these parameters name tgt"):
        recorded.resume_all(target(lr=0.5), [tmp_path / "rec_target"], tmp_path / "c")


def test_a_source_trained_again_into_another_network_takes_the_transfers_trained_from_it_out(tiny, tmp_path):
    """Resuming a transfer and its source: the source's level 0 trains again (theta_k is never recorded) for
    the transfer's missing unit. Where it comes out another network than the recording's (here: the recording says so), the transferred
    units stored from the recorded theta_k are taken out of the transfer's store with the source's own
    readers, and the run stops in one line; run again, they train from this theta_k."""
    from lt_core.runs import recorded
    from test_resume import _with_recorded_weights
    import shutil
    c = target(controls=["transfer"])
    executor.run(c, tmp_path / "a", log=lambda *_: None)
    proc = procedure_for(c)
    shutil.rmtree(RunStore(c, tmp_path / "a").dir / Unit(0, 2, "transfer").path)  # stopped before it
    recorded.export(c, tmp_path / "rec_target", tmp_path / "a")
    recorded.export(proc.source, tmp_path / "rec_source", tmp_path / "a")
    dense = Unit(0, 0, "ticket")
    _with_recorded_weights(tmp_path / "rec_source", dense, "f" * 64)
    recorded.resume_all(c, [tmp_path / "rec_source", tmp_path / "rec_target"], tmp_path / "b", log=lambda *_: None)
    store, expected = RunStore(c, tmp_path / "b"), RunStore(proc.source, tmp_path / "b").unit_dir(dense)
    transferred = [u for u in proc.units() if proc.reads_weights(u) and store.done(u)]  # from theta_k
    assert Unit(0, 1, "transfer") in transferred and (expected / "expected_weights.json").exists()
    with pytest.raises(ConfigError, match=r"another network than the one .* taken out of the run stores \(\d+ of "
                       r"another experiment\)"):
        executor.run(c, tmp_path / "b", log=lambda *_: None)
    assert not any(store.done(u) for u in transferred)  # trained from the recorded theta_k: taken out
    executor.run(c, tmp_path / "b", log=lambda *_: None)
    assert all(store.done(u) for u in proc.units())
    assert all("resumed_from" not in store.summary(u) for u in transferred)


def test_a_fresh_output_layer_is_re_initialised_and_unpruned_though_its_shape_fits(tiny, tmp_path):
    """output_layer: fresh (classes of other meaning, ten on both sides): every other layer transfers."""
    c = target(control_levels=[2], output_layer="fresh")
    proc = procedure_for(c)
    executor.run(proc.source, tmp_path, log=lambda *_: None)
    source = RunStore(proc.source, tmp_path)
    theta_k, source_mask = source.load_trial_tensor(0, "rewind"), source.load_tensor(Unit(0, 2, "ticket"), "mask")
    mask, model = proc.start(Unit(0, 2, "transfer"), RunStore(c, tmp_path))
    assert bool(mask["fc3.weight"].all()) and not bool(source_mask["fc3.weight"].all())
    assert not torch.equal(model.fc3.weight, theta_k["fc3.weight"]) and not torch.equal(model.fc3.bias, theta_k["fc3.bias"])
    assert torch.equal(model.fc2.weight, theta_k["fc2.weight"]) and torch.equal(mask["fc2.weight"], source_mask["fc2.weight"])
    same, _ = procedure_for(target(control_levels=[2])).start(Unit(0, 2, "transfer"), RunStore(c, tmp_path))
    assert torch.equal(same["fc3.weight"], source_mask["fc3.weight"])  # the default: the output layer transfers
    assert c.digest() != target(control_levels=[2]).digest()
