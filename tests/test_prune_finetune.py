"""Prune and fine-tune (Han et al. 2015; lt_core/procedures/prune_finetune.py, lt_core/sparsity/pruning.py):
the threshold rule's exact survivors, counts and the quality they amount to, fine-tuning from the trained
survivors bit for bit at a tenth of the rate, pruned weights exactly zero under L1 and L2, the dropout
adjustment, the controls' budgets, and the procedure end to end (with a resume from a recording)."""

import math

import pytest
import torch
import torch.nn.functional as F

from lt_core.config import ConfigError, make
from lt_core.nets import models
from lt_core.procedures.base import Unit, procedure_for
from lt_core.runs import executor, recorded
from lt_core.runs.results import load as load_results
from lt_core.runs.store import RunStore
from lt_core.sparsity import pruning
from lt_core.sparsity.masks import Mask
from lt_core.training import loop

from test_engine import tiny  # noqa: F401  (fixture)

TARGET = {"fc1.weight": 0.08, "fc2.weight": 0.09, "fc3.weight": 0.26}


def cfg(**kw):
    base = dict(experiment="han", procedure="prune_finetune", iterations=30, finetune_iterations=20, eval_every=10,
                batch_size=20, val_size=60, levels=2, target_density=TARGET, trials=1)
    return make({**base, **kw})


def random_weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.randn(40, 50, generator=g), "b": torch.randn(30, 7, generator=g)}


def test_the_threshold_rule_keeps_exactly_the_weights_above_quality_times_std():
    w = random_weights()
    before = Mask({"a": torch.rand(40, 50, generator=torch.Generator().manual_seed(1)) < 0.7,
                   "b": torch.ones(30, 7, dtype=torch.bool)})
    after = pruning.by_quality(w, before, {"a": 0.8})
    survivors = w["a"][before["a"]]
    threshold = 0.8 * survivors.std()  # the std of the layer's surviving weights
    assert torch.equal(after["a"], before["a"] & (w["a"].abs() >= threshold))
    assert torch.equal(after["b"], before["b"])  # not named: left whole
    assert not bool((after["a"] & ~before["a"]).any())  # nothing pruned comes back


def test_counts_are_exact_and_the_reported_quality_gives_the_same_mask():
    w = random_weights(2)
    ones = Mask({n: torch.ones_like(t, dtype=torch.bool) for n, t in w.items()})
    first = pruning.to_counts(w, ones, {"a": 900, "b": 100})
    second = pruning.to_counts(w, first, {"a": 160, "b": 55})
    assert [int(second[n].sum()) for n in ("a", "b")] == [160, 55]
    assert not bool((second["a"] & ~first["a"]).any())  # masks nest
    quality = pruning.quality_of(w, first, second)
    assert torch.equal(pruning.by_quality(w, first, quality)["a"], second["a"])
    with pytest.raises(ValueError, match="survivors"):
        pruning.to_counts(w, second, {"a": 161})


def test_the_dropout_adjustment_is_the_papers_formula():
    assert pruning.retrain_dropout(0.5, 400, 100) == pytest.approx(0.25)  # 0.5 sqrt(1/4)
    assert pruning.retrain_dropout(0.5, 1000, 90) == pytest.approx(0.5 * math.sqrt(0.09))
    assert pruning.retrain_dropout(0.0, 10, 5) == 0.0
    with pytest.raises(ValueError, match="connections"):
        pruning.retrain_dropout(0.5, 10, 11)


def test_l1_adds_the_gradient_of_the_absolute_sum():
    torch.manual_seed(0)
    w = torch.randn(5, 4, requires_grad=True)
    (w.sum() * 0).backward()
    loop._add_l1([w], 0.3)
    expected = torch.autograd.grad(0.3 * w.abs().sum(), w)[0]
    assert torch.allclose(w.grad, expected)


def test_units_and_their_budgets():
    c = cfg(levels=3, control_levels=[2, 3])
    proc = procedure_for(c)
    units = proc.units()
    assert units[:2] == [Unit(0, 0, "dense"), Unit(0, 1, "finetune")]  # no controls at level 1
    assert [u.control for u in units if u.level == 2] == ["finetune", "ticket", "reinit", "scratch", "oneshot"]
    assert proc.steps(Unit(0, 2, "scratch")) == 30 + 2 * 20  # the whole budget that made mask_2
    assert proc.steps(Unit(0, 3, "oneshot")) == 3 * 20 and proc.steps(Unit(0, 2, "finetune")) == 20
    assert proc.needs(Unit(0, 1, "finetune")) == [Unit(0, 0, "dense")]
    assert proc.needs(Unit(0, 2, "ticket")) == [Unit(0, 2, "finetune")]
    assert proc.reads_weights(Unit(0, 2, "finetune"), masks_known=True) == [Unit(0, 1, "finetune")]


def test_parameters_are_checked():
    with pytest.raises(ConfigError, match="target_density"):
        cfg(target_density={})
    with pytest.raises(ConfigError, match="finetune"):
        cfg(controls=["ticket"])
    with pytest.raises(ConfigError, match="finetune_lr_factor"):
        cfg(finetune_lr_factor=2)
    with pytest.raises(ConfigError, match="does not have"):
        procedure_for(cfg(target_density={"fc9.weight": 0.1})).check()
    with pytest.raises(ConfigError, match="l1_penalty"):
        make(dict(procedure="edge_popup", optimizer="sgd", l1_penalty=1e-4))


@pytest.mark.parametrize("model", ["lenet_300_100", "lenet5"])  # the fast path and the autograd path
@pytest.mark.parametrize("regularisation", [{"l1_penalty": 1e-3}, {"weight_decay": 1e-3}])
def test_fine_tuning_starts_from_the_trained_survivors_and_keeps_pruned_weights_zero(tiny, tmp_path, model,
                                                                                   regularisation):
    target = {"fc1.weight": 0.3, "fc2.weight": 0.5} if model == "lenet5" else TARGET
    c = cfg(model=model, target_density=target, controls=["finetune"], **regularisation)
    store = executor.run(c, tmp_path, log=lambda *_: None)
    proc = procedure_for(c)
    dense = store.load_tensor(Unit(0, 0, "dense"), "final")
    first = store.load_tensor(Unit(0, 1, "finetune"), "final")
    mask1 = Mask(store.load_tensor(Unit(0, 1, "finetune"), "mask"))
    # level 2 starts from level 1's trained weights, bit for bit, at a tenth of the rate
    mask, start_model, start_cfg, _ = proc.start(Unit(0, 2, "finetune"), store)
    assert all(torch.equal(start_model.state_dict()[n], t) for n, t in first.items())
    assert start_cfg.lr == pytest.approx(c.lr / 10) and start_cfg.iterations == 20
    assert not bool((mask["fc1.weight"] & ~mask1["fc1.weight"]).any())
    # level 1 started from the dense network's trained weights: its pruned network, evaluated at iteration 0
    pruned = models.build(model, in_shape=(1, 28, 28))
    pruned.load_state_dict(dense)
    mask1.apply(pruned)
    _, summary = load_results(c, tmp_path)
    row = summary[summary.level == 1].iloc[0]
    data = loop.ExperimentData()(c)
    assert row.start_test_accuracy == pytest.approx(loop.evaluate(pruned, data.x_test, data.y_test)[1], abs=1e-6)
    assert row.lr == pytest.approx(c.lr / 10)
    for level in (1, 2):  # exact counts, and every pruned weight exactly zero after retraining
        unit = Unit(0, level, "finetune")
        m, final = store.load_tensor(unit, "mask"), store.load_tensor(unit, "final")
        for name, d in target.items():
            n = m[name].numel()
            assert int(m[name].sum()) == round(n * d ** (level / 2))
            assert bool((final[name][~m[name]] == 0).all())


def test_the_controls_use_the_fine_tuned_mask_and_one_shot_its_counts(tiny, tmp_path):
    c = cfg(levels=2)
    store = executor.run(c, tmp_path, log=lambda *_: None)
    _, summary = load_results(c, tmp_path)
    assert sorted(summary.control) == sorted(["dense", "finetune", "finetune", "ticket", "reinit", "scratch",
                                              "ticket", "reinit", "scratch", "oneshot"])
    mask2 = store.load_tensor(Unit(0, 2, "finetune"), "mask")
    for control in ("ticket", "reinit", "scratch"):
        assert all(torch.equal(store.load_tensor(Unit(0, 2, control), "mask")[n], t) for n, t in mask2.items())
    oneshot = store.load_tensor(Unit(0, 2, "oneshot"), "mask")
    assert {n: int(t.sum()) for n, t in oneshot.items()} == {n: int(t.sum()) for n, t in mask2.items()}
    rows = summary.set_index(["level", "control"])
    assert rows.loc[(2, "scratch"), "iterations"] == 70 and rows.loc[(2, "oneshot"), "iterations"] == 40
    assert rows.loc[(2, "ticket"), "lr"] == pytest.approx(c.lr)
    assert rows.loc[(2, "finetune"), "quality_fc1"] > 0


def test_dropout_is_adjusted_for_retraining(tiny, tmp_path):
    c = cfg(dropout=0.5, controls=["finetune"], levels=1)
    store = executor.run(c, tmp_path, log=lambda *_: None)
    _, model, _, extra = procedure_for(c).start(Unit(0, 1, "finetune"), RunStore(c, tmp_path))
    mask = store.load_tensor(Unit(0, 1, "finetune"), "mask")
    kept = int(mask["fc1.weight"].sum() + mask["fc2.weight"].sum())
    assert model.drop.p == pytest.approx(0.5 * math.sqrt(kept / (784 * 300 + 300 * 100)))
    assert extra["retrain_dropout"] == model.drop.p


def test_a_recorded_run_resumes_retraining_only_the_weights_it_reads(tiny, tmp_path):
    c = cfg(levels=2, controls=["finetune"])
    executor.run(c, tmp_path / "a", log=lambda *_: None)
    folder = recorded.export(c, tmp_path / "rec", tmp_path / "a")
    more = cfg(levels=2, trials=2)  # the controls and a second trial added: the same run, extended
    result = recorded.resume(more, folder, tmp_path / "b", log=lambda *_: None)
    assert Unit(0, 2, "finetune") in result["imported"]
    assert result["retrain"] == [Unit(0, 0, "dense")]  # the one-shot control prunes the dense weights
    store = executor.run(more, tmp_path / "b", log=lambda *_: None)
    _, summary = load_results(more, tmp_path / "b")
    assert len(summary) == 20
    assert torch.equal(RunStore(c, tmp_path / "a").load_tensor(Unit(0, 2, "finetune"), "mask")["fc1.weight"],
                       store.load_tensor(Unit(0, 2, "finetune"), "mask")["fc1.weight"])


@pytest.mark.parametrize("model", ["lenet_300_100", "lenet5"])
def test_training_with_l1_shrinks_the_weights_l1_norm(tiny, model):
    data = loop.ExperimentData()(cfg())
    norms = []
    for penalty in (0.0, 0.05):
        c = make(dict(model=model, iterations=30, eval_every=10, batch_size=20, val_size=60, l1_penalty=penalty,
                      optimizer="sgd", lr=0.05, momentum=0.0))
        net = models.build(model, seed=0)
        result = loop.train(net, Mask.ones_like(net), data, c, data_seed=0)
        norms.append(sum(float(result.final_state[n].abs().sum()) for n in net.prunable))
    assert norms[1] < norms[0] * 0.9
