"""Invariants of the engine: pruning counts, nesting, exact zeros, reset/rewind, controls, resume, seeds.

Runs on a tiny synthetic MNIST-shaped dataset (no download), so every test takes seconds.
"""

import json

import pytest
import torch

from lt_core.procedures import imp
from lt_core.runs import executor
from lt_core.nets import models
from lt_core.sparsity import pruning
from lt_core import provenance
from lt_core.data import datasets
from lt_core.config import ConfigError, Experiment, load, make
from lt_core.data.datasets import Splits
from lt_core.sparsity.masks import Mask
from lt_core.runs.results import load as load_results
from lt_core.runs.store import RunStore, Unit
from lt_core.training.loop import DeviceData, train


def tiny_splits(n_train=240, n_val=60, n_test=60, seed=0) -> Splits:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n_train + n_val + n_test,), generator=g)
    # class-dependent blobs so that training makes progress
    x = torch.randint(0, 60, (len(y), 1, 28, 28), generator=g, dtype=torch.uint8)
    for c in range(10):
        x[y == c, 0, 2 * c:2 * c + 6, 4:24] += 150
    a, b = n_train, n_train + n_val
    xt = x[:a].float() / 255
    return Splits("tiny", x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:],
                  xt.mean((0, 2, 3)), xt.std((0, 2, 3)))


@pytest.fixture
def tiny(monkeypatch):
    splits = tiny_splits()
    monkeypatch.setattr(datasets, "load", lambda *a, **k: splits)
    return splits


def cfg(**kw) -> Experiment:
    base = dict(experiment="t", iterations=30, eval_every=10, batch_size=20, levels=2, trials=1, val_size=60)
    return make({**base, **kw})


def weights(model):
    return {n: model.get_parameter(n).detach().clone() for n in model.prunable}


# --- pruning -----------------------------------------------------------------------------------------------

def test_layerwise_round_removes_exact_fraction_output_at_its_own_rate():
    model = models.build("lenet_300_100", seed=1)
    spec = pruning.PruneSpec.of(model, Experiment())
    mask = Mask.ones_like(model)
    for level in range(1, 6):
        before = mask.layer_counts()
        new = pruning.magnitude(weights(model), mask, spec)
        after = new.layer_counts()
        for name, kind in model.prunable.items():
            rate = {"fc": 0.2, "output": 0.1}[kind]
            assert before[name] - after[name] == int(rate * before[name] + 0.5), (level, name)
        assert new.nested_in(mask)
        model_w = weights(model)
        # the survivors are the largest-magnitude weights among the previous survivors
        for name in model.prunable:
            kept = model_w[name][new[name]].abs()
            dropped = model_w[name][mask[name] & ~new[name]].abs()
            assert kept.min() >= dropped.max()
        mask = new


def test_global_pruning_pools_layers_and_leaves_excluded_kinds_whole():
    model = models.build("resnet20", in_shape=(3, 32, 32), seed=0)
    spec = pruning.PruneSpec.of(model, make({"model": "resnet20", "pruning": "global", "rates": {"conv": 0.2}}))
    mask = Mask.ones_like(model)
    new = pruning.magnitude(weights(model), mask, spec)
    pooled = [n for n, k in model.prunable.items() if k == "conv"]
    alive = sum(int(mask[n].sum()) for n in pooled)
    assert alive - sum(int(new[n].sum()) for n in pooled) == int(0.2 * alive + 0.5)
    for name, kind in model.prunable.items():
        if kind in ("output", "shortcut"):
            assert bool(new[name].all()), name
    # global: the layers lose different fractions
    fractions = {round(new.layer_densities()[n], 3) for n in pooled}
    assert len(fractions) > 1


def test_oneshot_matches_iterative_counts_and_random_keeps_counts():
    model = models.build("lenet_300_100", seed=2)
    spec = pruning.PruneSpec.of(model, Experiment())
    w, mask = weights(model), Mask.ones_like(model)
    iterative = mask
    for _ in range(4):
        iterative = pruning.magnitude(w, iterative, spec)
    once = pruning.oneshot(w, mask, spec, 4)
    assert once.layer_counts() == iterative.layer_counts()
    assert all(bool((once[n] == iterative[n]).all()) for n in once)  # same weights: same mask
    rnd = pruning.random_like(once, torch.Generator().manual_seed(0))
    assert rnd.layer_counts() == once.layer_counts()
    assert not all(bool((rnd[n] == once[n]).all()) for n in once)


def test_impossible_sparsity_and_bad_config_fail_before_training():
    with pytest.raises(ConfigError, match="unknown parameter 'iteratons'.*did you mean 'iterations'"):
        make({"iteratons": 5})
    with pytest.raises(ConfigError, match="must be in \\[0, 1\\)"):
        make({"rates": {"fc": 1.0}})
    with pytest.raises(ValueError, match="impossible sparsity"):
        imp.plan(make({"rates": {"fc": 0.9, "output": 0.9}, "levels": 40}))
    with pytest.raises(ValueError, match="layer kinds \\['conv'\\]"):
        imp.plan(make({"rates": {"conv": 0.2}}))


def test_run_names_ignore_defaults_and_extent():
    assert Experiment().digest() == make({"lr": 1.2e-3, "trials": 9, "levels": 3}).digest()
    assert Experiment().digest() != make({"lr": 1e-3}).digest()
    assert make({"rates": {"output": 0.1, "fc": 0.2}}) == Experiment()


def test_params_file_profiles(tmp_path):
    doc = load("params/lenet_mnist.yaml", "smoke")
    assert (doc.levels, doc.iterations, doc.lr) == (2, 300, 1.2e-3)
    with pytest.raises(ConfigError, match="profile 'nope'"):
        load("params/lenet_mnist.yaml", "nope")


# --- training ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("opt", [dict(optimizer="adam"), dict(optimizer="adam", weight_decay=1e-2),
                                 dict(optimizer="sgd", lr=0.05, weight_decay=1e-2)])
def test_pruned_weights_stay_exactly_zero(opt):
    """On every path (here LeNet's fast path with dense masked layers at 33% density: nothing re-masks the
    weights after a step) pruned weights stay exactly zero, with weight decay too."""
    c = cfg(**opt)
    data = DeviceData.prepare(tiny_splits(), torch.device("cpu"))
    model = models.build("lenet_300_100", seed=0)
    mask = pruning.random_like(pruning.oneshot(weights(model), Mask.ones_like(model),
                                               pruning.PruneSpec.of(model, c), 5), torch.Generator().manual_seed(1))
    result = train(model, mask, data, c, data_seed=3)
    for name, m in mask.items():
        final = result.final_state[name]
        assert bool((final[~m] == 0).all()), name
        assert bool((final[m] != 0).all()), name  # survivors did train and are not accidentally zeroed
    assert [r[0] for r in result.rows if r[1] == "val"] == [0, 10, 20, 30]


@pytest.mark.parametrize("model_name", ["lenet_300_100", "conv2"])
def test_cosine_schedule_reaches_the_optimizer(model_name):
    """Two steps under a cosine from 0.1 take lr 0.1 then 0.05: the same weights as a drop by half at step 1."""
    shape = (3, 32, 32) if model_name == "conv2" else (1, 28, 28)
    splits = tiny_splits() if model_name != "conv2" else _tiny_cifar()
    data = DeviceData.prepare(splits, torch.device("cpu"))
    common = dict(optimizer="sgd", lr=0.1, iterations=2, eval_every=2, batch_size=20, dataset="cifar10" if
                  model_name == "conv2" else "mnist", model=model_name)
    states = []
    for schedule in ({"lr_schedule": "cosine"}, {"lr_drops": [1], "lr_drop_factor": 0.5}):
        model = models.build(model_name, seed=0, in_shape=shape)
        states.append(train(model, Mask.ones_like(model), data, make({**common, **schedule}), data_seed=3).final_state)
    for name in states[0]:
        torch.testing.assert_close(states[0][name], states[1][name], rtol=0, atol=0)


def _tiny_cifar():
    g = torch.Generator().manual_seed(8)
    y = torch.randint(0, 10, (100,), generator=g)
    x = torch.randint(0, 256, (100, 3, 32, 32), generator=g, dtype=torch.uint8)
    xt = x[:60].float() / 255
    return Splits("tiny_cifar", x[:60], y[:60], x[60:80], y[60:80], x[80:], y[80:], xt.mean((0, 2, 3)), xt.std((0, 2, 3)))


def test_same_seed_same_numbers_and_data_order_depends_on_seed_only():
    c = cfg()
    data = DeviceData.prepare(tiny_splits(), torch.device("cpu"))
    runs = [train(models.build("lenet_300_100", seed=0), Mask.ones_like(models.build("lenet_300_100")),
                  data, c, data_seed=s) for s in (7, 7, 8)]
    assert runs[0].rows == runs[1].rows
    assert runs[0].rows != runs[2].rows


# --- the lottery -------------------------------------------------------------------------------------------

def test_imp_levels_nest_reset_restores_theta0_and_controls(tiny, tmp_path):
    c = cfg(reinit_draws=2)
    store = executor.run(c, tmp_path, log=lambda *_: None)
    t = imp.Trial(c, store, 0, None)
    masks = [Mask.load(store.unit_dir(Unit(0, l, "ticket")) / "mask.pt") for l in range(3)]
    assert masks[2].nested_in(masks[1]) and masks[1].nested_in(masks[0])
    theta0 = models.build("lenet_300_100", seed=imp.derive_seed(t.seed, "init")).state_dict()
    for level in (1, 2):
        m, model = t.unit_start(Unit(0, level, "ticket"))
        for name in model.prunable:  # reset: theta_0 bit for bit on the surviving weights
            assert torch.equal(model.get_parameter(name)[m[name]], theta0[name][m[name]])
        rm, rmodel = t.unit_start(Unit(0, level, "reinit", 1))
        assert all(torch.equal(rm[n], m[n]) for n in m)  # same mask
        assert not torch.equal(rmodel.fc1.weight, model.fc1.weight)  # new weights
        _, rmodel0 = t.unit_start(Unit(0, level, "reinit", 0))
        assert not torch.equal(rmodel0.fc1.weight, rmodel.fc1.weight)  # draws differ
        xm, _ = t.unit_start(Unit(0, level, "random"))
        assert xm.layer_counts() == m.layer_counts() and not torch.equal(xm["fc1.weight"], m["fc1.weight"])
    curves, summary = load_results(c, tmp_path)
    assert len(summary) == 3 + 2 * 2 + 2 + 1
    assert set(curves.control) == {"ticket", "reinit", "random", "oneshot"}
    assert summary[summary.control == "ticket"].density.is_monotonic_decreasing
    # provenance: the kind of CPU (it decides the summation order of the last digits) with every unit
    assert set(summary.cpu) == {provenance.cpu_kind()} and provenance.cpu_kind().endswith(")")
    dense = summary[summary.level == 0].iloc[0]
    run0 = curves[(curves.level == 0) & (curves.split == "val")]
    assert dense.early_stop_iteration == run0.iteration[run0.loss.idxmin()]


def test_late_resetting_restores_theta_k(tiny, tmp_path):
    c = cfg(rewind_iteration=10, levels=1, controls=["ticket"])
    store = executor.run(c, tmp_path, log=lambda *_: None)
    theta_k = store.load_trial_tensor(0, "rewind")
    theta0 = models.build("lenet_300_100", seed=imp.derive_seed(imp.derive_seed(0, 0), "init")).state_dict()
    assert not torch.equal(theta_k["fc1.weight"], theta0["fc1.weight"])
    # theta_k is what a fresh dense run holds after 10 steps
    data = DeviceData.prepare(tiny, torch.device("cpu"))
    t = imp.Trial(c, store, 0, data)
    ref = train(models.build("lenet_300_100", seed=imp.derive_seed(t.seed, "init")),
                Mask.ones_like(models.build("lenet_300_100")), data, c, data_seed=t.data_seed, keep_iterations=(10,))
    assert all(torch.equal(ref.kept_states[10][k], theta_k[k]) for k in theta_k)
    m, model = t.unit_start(Unit(0, 1, "ticket"))
    assert torch.equal(model.fc1.weight[m["fc1.weight"]], theta_k["fc1.weight"][m["fc1.weight"]])


def test_second_run_trains_nothing_and_killed_run_resumes(tiny, tmp_path, monkeypatch):
    c = cfg()
    calls = []
    real = imp.Trial.run_unit

    def dying(self, unit):
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        calls.append(unit)
        real(self, unit)

    monkeypatch.setattr(imp.Trial, "run_unit", dying)
    with pytest.raises(KeyboardInterrupt):
        executor.run(c, tmp_path, log=lambda *_: None)
    assert len(RunStore(c, tmp_path).summaries()) == 3
    monkeypatch.setattr(imp.Trial, "run_unit", lambda self, u: (calls.append(u), real(self, u)))
    executor.run(c, tmp_path, log=lambda *_: None)
    assert len(calls) == len(imp.units(c))  # the three finished units were not trained again
    first = json.dumps(RunStore(c, tmp_path).summaries()[-1]["final_test_accuracy"])
    calls.clear()
    executor.run(c, tmp_path, log=lambda *_: None)
    assert calls == []
    # resumed results equal an uninterrupted run's
    other = tmp_path / "fresh"
    executor.run(c, other, log=lambda *_: None)
    _, a = load_results(c, tmp_path)
    _, b = load_results(c, other)
    cols = ["trial", "level", "control", "draw", "density", "early_stop_iteration", "final_test_accuracy"]
    assert a[cols].equals(b[cols])
    assert first


def test_changed_parameter_never_reuses_stale_results(tiny, tmp_path):
    a = executor.run(cfg(), tmp_path, log=lambda *_: None)
    b = executor.run(cfg(lr=1e-3), tmp_path, log=lambda *_: None)
    assert a.dir != b.dir and len(b.summaries()) == len(imp.units(cfg()))


# --- selective evaluation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("model_name", ["lenet_300_100", "lenet5"])  # the fast MLP path; the conv path
def test_test_split_only_where_the_early_stop_can_be_gives_the_full_evaluations_numbers(model_name):
    """test_curves=False evaluates the test split only at new validation minima and at the end: the same
    early stop and final numbers as evaluating it every time, from far fewer test evaluations."""
    data = DeviceData.prepare(tiny_splits(), torch.device("cpu"))
    runs = {}
    for curves in (True, False):
        # a large step size, so that the validation loss goes up and down (not a new minimum every time)
        c = cfg(model=model_name, test_curves=curves, iterations=60, eval_every=5, lr=0.05)
        model = models.build(model_name, seed=3, in_shape=(1, 28, 28))
        runs[curves] = train(model, Mask.ones_like(model), data, c, data_seed=7)
    full, lean = runs[True].rows, runs[False].rows
    assert imp.early_stop(lean) == imp.early_stop(full)
    assert set(lean) <= set(full), "every evaluation made is one the full evaluation made, to the bit"
    assert [r for r in lean if r[1] == "val"] == [r for r in full if r[1] == "val"]
    tests = [it for it, split, _, _ in lean if split == "test"]
    assert 60 in tests and len(tests) < len([r for r in full if r[1] == "test"])
    val = [(loss, it) for it, split, loss, _ in lean if split == "val"]
    minima = [it for i, (loss, it) in enumerate(val) if all(loss < earlier for earlier, _ in val[:i])]
    assert tests == sorted(set(minima) | {60})
    for name, tensor in runs[True].final_state.items():
        assert torch.equal(tensor, runs[False].final_state[name]), name


@pytest.mark.parametrize("model_name", ["lenet_300_100", "lenet5"])
def test_train_accuracy_at_the_early_stop_is_that_of_the_network_trained_to_it(model_name):
    """train_accuracy=True adds the training split at the early stop (from the weights kept there) and at
    the end; the first equals evaluating a network trained only up to that iteration, the second the end's."""
    from lt_core.training.loop import evaluate
    data = DeviceData.prepare(tiny_splits(), torch.device("cpu"))

    def run(iterations, **kw):
        model = models.build(model_name, seed=3, in_shape=(1, 28, 28))
        c = cfg(model=model_name, iterations=iterations, eval_every=5, lr=0.05, **kw)
        return model, train(model, Mask.ones_like(model), data, c, data_seed=7)
    _, full = run(60, train_accuracy=True)
    summary = imp.early_stop(full.rows)
    stop = summary["early_stop_iteration"]
    assert 0 < stop < 60, "the tiny run should stop early for this test to mean something"
    train_rows = [r for r in full.rows if r[1] == "train"]
    assert [r[0] for r in train_rows] == [stop, 60]
    short, _ = run(stop)
    assert evaluate(short, data.x_train, data.y_train) == train_rows[0][2:]
    assert summary["early_stop_train_accuracy"] == train_rows[0][3]
    _, plain = run(60)
    assert [r for r in full.rows if r[1] != "train"] == plain.rows, "other rows unchanged"
    for name, tensor in plain.final_state.items():
        assert torch.equal(tensor, full.final_state[name]), name


def test_one_process_trains_each_trials_tickets_before_their_controls(tiny, tmp_path, monkeypatch):
    """In one process the executor takes units as one pool worker would (executor.in_order: the first ready
    unit by the procedure's priority), so a run stopped early has lost controls, not a level's ticket; the
    numbers do not depend on the order (each unit seeds itself)."""
    c = cfg(levels=3, trials=2, controls=["ticket", "reinit", "random"])
    trained = []
    original = imp.ImpProcedure.run_unit

    def spy(self, unit, store, data, on_step=None):
        trained.append(unit)
        return original(self, unit, store, data, on_step)
    monkeypatch.setattr(imp.ImpProcedure, "run_unit", spy)
    store = executor.run(c, tmp_path / "ordered", log=lambda *_: None)
    tickets = [u for u in trained if u.control == "ticket"]
    assert trained[:len(tickets)] == tickets and len(tickets) == 8  # every ticket of both trials first
    assert sorted(trained) == sorted(imp.units(c))
    # the same numbers as units() order gives (the pool's priority, applied to one worker, changes no unit)
    monkeypatch.setattr(executor, "in_order", lambda jobs, todo, stack=1: [[u] for u in todo])
    plain = executor.run(c, tmp_path / "plain", log=lambda *_: None)
    by = lambda s: {(u["trial"], u["level"], u["control"]): u["final_test_accuracy"] for u in s.summaries()}
    assert by(store) == by(plain)
