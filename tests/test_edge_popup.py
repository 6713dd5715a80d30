"""Edge-popup (lt_core/training/supermask.py, lt_core/procedures/edge_popup.py): exact top-k counts, the
straight-through gradient, frozen weights, masks that depend only on the scores' order, the scaled inits,
and the procedure end to end on tiny data."""

import math

import pytest
import torch
import torch.nn.functional as F

from lt_core.config import ConfigError, make
from lt_core.data import datasets
from lt_core.nets import models
from lt_core.runs import executor
from lt_core.runs.results import load as load_results
from lt_core.training import supermask
from lt_core.training.loop import DeviceData

from test_engine import tiny_splits


def cfg(**kw):
    base = dict(experiment="ep", procedure="edge_popup", optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4,
                iterations=20, eval_every=10, batch_size=20, val_size=60, init="signed_kaiming_constant",
                keep=(0.5, 0.1), trials=1)
    return make({**base, **kw})


@pytest.mark.parametrize("keep", [1.0, 0.7, 0.5, 0.3, 0.05, 0.001])
def test_top_k_keeps_exactly_round_k_n(keep):
    scores = torch.randn(300, 784, generator=torch.Generator().manual_seed(1))
    mask = supermask.top_k_mask(scores, keep)
    assert int(mask.sum()) == max(1, round(keep * scores.numel()))
    kept = scores.abs()[mask.bool()]
    dropped = scores.abs()[~mask.bool()]
    assert dropped.numel() == 0 or kept.min() >= dropped.max()


def test_the_mask_depends_only_on_the_order_of_the_scores_magnitudes():
    s = torch.randn(50, 40, generator=torch.Generator().manual_seed(2))
    for same_order in (-s, 3 * s, torch.sign(s) * s.abs() ** 3, s + 1e-3 * torch.sign(s)):
        assert torch.equal(supermask.top_k_mask(s, 0.3), supermask.top_k_mask(same_order, 0.3))


def test_scores_get_the_straight_through_gradient():
    """dL/ds = dL/d(w * m) * w * sign(s) (the mask ranks |s|): what autograd gives for the relaxed product
    w * (m + |s| - |s|.detach())."""
    g = torch.Generator().manual_seed(3)
    model = models.build("lenet_300_100", seed=4)
    net = supermask.Supermask(model, 0.4, g)
    x, y = torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g)
    F.cross_entropy(net(x), y).backward()
    relaxed = {}
    for name, s in zip(net.names, net.scores):
        s2 = s.detach().clone().requires_grad_(True)
        m = supermask.top_k_mask(s2, 0.4)
        relaxed[name] = (s2, model.get_parameter(name) * (m + s2.abs() - s2.abs().detach()))
    out = torch.func.functional_call(model, {n: w for n, (_, w) in relaxed.items()}, (x,), strict=False)
    F.cross_entropy(out, y).backward()
    for (name, (s2, _)), s in zip(relaxed.items(), net.scores):
        torch.testing.assert_close(s.grad, s2.grad, rtol=1e-5, atol=1e-8)
        assert s.grad.abs().sum() > 0, name


def test_training_changes_only_the_scores_and_keeps_the_counts_every_step():
    data = DeviceData.prepare(tiny_splits(), torch.device("cpu"))
    model = models.build("lenet_300_100", init="signed_kaiming_constant", seed=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = supermask.train(model, 0.3, data, cfg(iterations=30), data_seed=1, score_seed=2)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), f"{name} changed"
    for name, mask in result.mask.items():
        assert int(mask.sum()) == round(0.3 * mask.numel()), name
    assert result.rows[-1][0] == 30 and {r[1] for r in result.rows} == {"val", "test"}
    val = [loss for _, split, loss, _ in result.rows if split == "val"]
    assert val[-1] < 0.5 * val[0], f"choosing weights did not learn: validation loss {val}"


def test_every_step_keeps_exactly_k_of_each_layer():
    g = torch.Generator().manual_seed(6)
    net = supermask.Supermask(models.build("lenet_300_100", seed=6), 0.25, g)
    optimizer = torch.optim.SGD(net.scores.parameters(), lr=1.0, momentum=0.9)
    x, y = torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)
    masks = []
    for _ in range(4):
        optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        optimizer.step()
        mask = net.mask()
        assert all(int(m.sum()) == round(0.25 * m.numel()) for m in mask.values())
        masks.append(mask)
    assert any(not torch.equal(masks[0][n], masks[-1][n]) for n in masks[0]), "the scores never moved the mask"


def test_scaled_inits_have_the_stated_spread():
    fan_in, keep = 784, 0.25
    for init, scaled in (("kaiming_normal", False), ("kaiming_normal_scaled", True)):
        w = models.build("lenet_300_100", init=init, seed=7, keep=keep).fc1.weight.detach()
        expected = math.sqrt(2 / fan_in) / (math.sqrt(keep) if scaled else 1)
        assert float(w.std()) == pytest.approx(expected, rel=0.01) and abs(float(w.mean())) < 0.01 * expected
    for init, scaled in (("signed_kaiming_constant", False), ("signed_kaiming_constant_scaled", True)):
        w = models.build("lenet_300_100", init=init, seed=7, keep=keep).fc1.weight.detach()
        value = math.sqrt(2 / fan_in) / (math.sqrt(keep) if scaled else 1)
        assert torch.allclose(w.abs(), torch.full_like(w, value))
        assert 0.49 < float((w > 0).float().mean()) < 0.51
    with pytest.raises(ValueError, match="keep"):
        models.build("lenet_300_100", init="kaiming_normal_scaled", keep=0)


def test_the_procedure_trains_each_k_once_and_resumes(tmp_path, monkeypatch):
    splits = tiny_splits()
    monkeypatch.setattr(datasets, "load", lambda *a, **k: splits)
    store = executor.run(cfg(), tmp_path, log=lambda *_: None)
    _, summary = load_results(cfg(), tmp_path)
    assert sorted(summary.level) == [100, 500] and set(summary.control) == {"supermask"}
    for _, row in summary.iterrows():
        assert row.density == pytest.approx(row.keep, abs=0.002)
    lines = []
    executor.run(cfg(), tmp_path, log=lines.append)
    assert "all 2 units done" in lines[0]
    assert (store.dir / "trial_00" / "level_500" / "supermask" / "mask.pt").exists()


def test_edge_popup_parameters_are_checked():
    with pytest.raises(ConfigError, match="optimizer"):
        cfg(optimizer="adam")
    with pytest.raises(ConfigError, match="keep"):
        cfg(keep=(0.5, 1.5))
    with pytest.raises(ConfigError, match="twice"):
        cfg(keep=(0.5, 0.5))
    with pytest.raises(ConfigError, match="schedule"):
        cfg(schedule="linear")


def test_test_split_only_where_read_gives_the_full_evaluations_numbers():
    """test_curves off: the validation rows unchanged, the test split at the validation minimum (from the
    scores kept there) and at the end, equal to the every-eval run's rows at those iterations."""
    data = DeviceData.prepare(tiny_splits(), torch.device("cpu"))
    runs = {}
    for curves in (True, False):
        model = models.build("lenet_300_100", init="kaiming_normal", seed=5)
        # a constant, too large rate overshoots after iteration 30: a validation minimum before the end
        runs[curves] = supermask.train(model, 0.3, data, cfg(iterations=40, eval_every=5, lr=20.0, test_curves=curves),
                                       data_seed=1, score_seed=2, cosine=False).rows
    full, lean = runs[True], runs[False]
    assert [r for r in full if r[1] == "val"] == [r for r in lean if r[1] == "val"]
    val = [(loss, it) for it, split, loss, _ in full if split == "val"]
    minimum = min(val)[1]
    assert minimum not in (0, 40), f"the test needs a validation minimum before the end: {val}"
    tested = [r for r in lean if r[1] == "test"]
    assert [r[0] for r in tested] == [minimum, 40]
    assert tested == [r for r in full if r[1] == "test" and r[0] in (minimum, 40)]
    assert [r[0] for r in lean] == sorted(r[0] for r in lean)


def test_a_conv_net_trains_its_scores_with_augmentation_in_channels_last():
    g = torch.Generator().manual_seed(8)
    y = torch.randint(0, 10, (120,), generator=g)
    x = torch.randint(0, 256, (120, 3, 32, 32), generator=g, dtype=torch.uint8)
    xt = x.float() / 255
    splits = datasets.Splits("tiny_cifar", x[:80], y[:80], x[80:100], y[80:100], x[100:], y[100:],
                             xt.mean((0, 2, 3)), xt.std((0, 2, 3)))
    data = DeviceData.prepare(splits, torch.device("cpu"))
    model = models.build("conv2", init="signed_kaiming_constant_scaled", seed=9, in_shape=(3, 32, 32), keep=0.2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = supermask.train(model, 0.2, data, cfg(iterations=4, eval_every=2, batch_size=16, augment=True,
                                                    dataset="cifar10"), data_seed=1, score_seed=2)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert set(result.mask) == set(model.prunable)
    for name, mask in result.mask.items():
        assert int(mask.sum()) == round(0.2 * mask.numel()), name
