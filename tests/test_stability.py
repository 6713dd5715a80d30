"""Late resetting that continues the schedule, the twin and barrier units (instability), and the stability
distance: rewinding restores W_k on every control's survivors, a run continued from k is the uninterrupted
run, the path's ends are the copies' own numbers, a network interpolated with itself has no barrier."""

import pytest
import torch

from lt_core.config import ConfigError
from lt_core.data.datasets import Splits
from lt_core.nets import models
from lt_core.procedures import imp
from lt_core.runs import executor
from lt_core.runs.results import load as load_results
from lt_core.runs.store import Unit
from lt_core.sparsity import stability
from lt_core.sparsity.masks import Mask
from lt_core.training import interpolation
from lt_core.training.loop import DeviceData, lr_at, train

from test_engine import cfg, tiny, tiny_splits  # noqa: F401 (tiny is a fixture)


def tiny_cifar(n=100) -> Splits:
    g = torch.Generator().manual_seed(8)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    a, b = int(0.6 * n), int(0.8 * n)
    xt = x[:a].float() / 255
    return Splits("tiny_cifar", x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], xt.mean((0, 2, 3)), xt.std((0, 2, 3)))


CASES = {"lenet_300_100": (tiny_splits, (1, 28, 28), {}),  # the fast sparse path
         "conv2": (tiny_cifar, (3, 32, 32), {"augment": True})}  # autograd, channels_last, augmentation


@pytest.mark.parametrize("model_name", list(CASES))
def test_a_run_continued_from_k_is_the_uninterrupted_run(model_name):
    """With a warmup and a drop around k, SGD without momentum (no optimizer state to restart), training
    from W_k at start_iteration k gives the uninterrupted run's weights and evaluations bit for bit: the same
    learning rate, batch and augmentation at every step."""
    splits, shape, extra = CASES[model_name]
    data = DeviceData.prepare(splits(), torch.device("cpu"))
    c = cfg(model=model_name, optimizer="sgd", momentum=0.0, lr=0.05, iterations=12, eval_every=3,
            warmup_iterations=4, lr_drops=[7], batch_size=10, val_size=0, **extra)
    assert [lr_at(c, s) for s in (2, 5, 8)] == [0.05 * 3 / 4, 0.05, 0.05 * 0.1]
    fresh = lambda: models.build(model_name, seed=1, in_shape=shape)
    whole = train(fresh(), Mask.ones_like(fresh()), data, c, data_seed=5, keep_iterations=(5,))
    model = fresh()
    model.load_state_dict(whole.kept_states[5])
    rest = train(model, Mask.ones_like(model), data, c, data_seed=5, start_iteration=5)
    assert all(torch.equal(whole.final_state[k], rest.final_state[k]) for k in whole.final_state)
    assert rest.rows[0][0] == 5  # its first evaluation is W_k's
    assert [r for r in rest.rows if r[0] > 5] == [r for r in whole.rows if r[0] > 5]
    model = fresh()
    model.load_state_dict(whole.kept_states[5])
    restarted = train(model, Mask.ones_like(model), data, c, data_seed=5)  # W_k trained from step 0: differs
    name = next(iter(model.prunable))
    assert not torch.equal(restarted.final_state[name], whole.final_state[name])


def twin_cfg(**kw):
    return cfg(rewind_iteration=10, rewind_schedule="continue", levels=2, interpolation_points=5,
               controls=["ticket", "reinit", "random", "oneshot", "twin"], **kw)


def test_rewinding_restores_theta_k_on_the_survivors_of_every_control(tiny, tmp_path):
    c = twin_cfg()
    store = executor.run(c, tmp_path, log=lambda *_: None)
    theta_k = store.load_trial_tensor(0, "rewind")
    t = imp.Trial(c, store, 0, None)
    for unit in imp.units(c):
        if unit.control == "barrier":
            continue
        mask, model = t.unit_start(unit)
        rewound = unit.level > 0 or unit.control == "twin"
        assert imp.start_iteration(c, unit) == (10 if rewound else 0)
        if not rewound:
            continue
        for name in model.prunable:
            kept = mask[name]
            same = torch.equal(model.get_parameter(name).detach()[kept], theta_k[name][kept])
            assert same == (unit.control != "reinit"), (unit, name)  # reinit: fresh weights by design
    _, summary = load_results(c, tmp_path)
    assert set(summary.control) == {"ticket", "reinit", "random", "oneshot", "twin", "barrier"}
    assert (summary[summary.control != "barrier"].pipe(lambda s: s[(s.level > 0) | (s.control == "twin")])
            .start_iteration == 10).all()
    assert len(summary[summary.control == "barrier"]) == 3  # level 0 (dense) and both pruned levels


def test_the_path_ends_are_the_copies_own_test_numbers_and_the_twin_sees_other_batches(tiny, tmp_path):
    c = twin_cfg(stability_distance=True)
    store = executor.run(c, tmp_path, log=lambda *_: None)
    curves, summary = load_results(c, tmp_path)
    row = lambda level, control: summary[(summary.level == level) & (summary.control == control)].iloc[0]
    for level in range(3):
        barrier, ticket, twin = row(level, "barrier"), row(level, "ticket"), row(level, "twin")
        errors = barrier.path_test_errors
        assert len(errors) == 5 and barrier.alphas[0] == 0 and barrier.alphas[-1] == 1
        assert errors[0] == 1 - ticket.final_test_accuracy and errors[-1] == 1 - twin.final_test_accuracy
        assert barrier.error_barrier == stability.barrier(errors) >= 0
        a, b = (store.load_tensor(Unit(0, level, x), "state") for x in ("ticket", "twin"))
        assert barrier.copies_distance == stability.distance(a, b, t_mask(store, level)) > 0
    # the twin trains from step 10 on its own batches: its curve starts there and differs from the ticket's
    twin = curves[(curves.control == "twin") & (curves.level == 1) & (curves.split == "val")]
    ticket = curves[(curves.control == "ticket") & (curves.level == 1) & (curves.split == "val")]
    assert twin.iteration.min() == 10 and list(twin.iteration) == list(ticket.iteration)
    assert list(twin.loss)[0] == list(ticket.loss)[0] and list(twin.loss)[-1] != list(ticket.loss)[-1]
    # stability to pruning, on every level >= 1 unit: the distance to the trained dense net on its survivors
    dense = store.load_tensor(Unit(0, 0, "ticket"), "final")
    ticket2 = store.load_tensor(Unit(0, 2, "ticket"), "final")
    assert row(2, "ticket").stability_distance == pytest.approx(stability.distance(ticket2, dense, t_mask(store, 2)), rel=1e-12)
    assert summary[summary.level == 0].stability_distance.isna().all()
    assert summary[(summary.level > 0) & (summary.control != "barrier")].stability_distance.notna().all()
    calls = []
    executor.run(c, tmp_path, log=calls.append)  # a second run trains nothing
    assert not any("training" in str(x) for x in calls)


def t_mask(store, level):
    return Mask(store.load_tensor(Unit(0, level, "ticket"), "mask"))


@pytest.mark.parametrize("model_name", ["conv2", "resnet20"])
def test_conv_path_ends_reproduce_the_copies_and_a_self_path_has_no_barrier(model_name):
    data = DeviceData.prepare(tiny_cifar(), torch.device("cpu"))
    c = cfg(model=model_name, iterations=4, eval_every=2, batch_size=10, val_size=0, augment=True)
    fresh = lambda: models.build(model_name, seed=2, in_shape=(3, 32, 32))
    mask = Mask.ones_like(fresh())
    runs = [train(fresh(), mask, data, c, data_seed=s) for s in (3, 4)]  # two copies, two data orders
    a, b = runs[0].final_state, runs[1].final_state
    # bn_examples 0: the interpolated statistics, so the ends are each copy exactly as train() evaluated it
    rows = interpolation.path_rows(fresh, a, b, mask, data, points=3, bn_examples=0)
    final = lambda run: [r for r in run.rows if r[1] == "test"][-1]
    assert rows[0][1:] == final(runs[0])[2:] and rows[-1][1:] == final(runs[1])[2:]
    for bn_examples in (0, 30):
        same = interpolation.path_rows(fresh, a, a, mask, data, points=3, bn_examples=bn_examples)
        assert stability.barrier([1 - acc for _, _, acc in same]) == 0
        assert len({(loss, acc) for _, loss, acc in same}) == 1
    assert stability.distance(a, a, mask) == 0 and stability.distance(a, b, mask) > 0


def test_batch_norm_is_recomputed_on_training_images_at_each_point():
    data = DeviceData.prepare(tiny_cifar(), torch.device("cpu"))
    model = models.build("resnet20", seed=2, in_shape=(3, 32, 32))
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_mean.fill_(7.0)
    interpolation.recompute_batch_norm(model, data, 30)
    assert not model.training and bn.momentum == 0.1
    assert bn.running_mean.abs().max() < 7.0 and bn.num_batches_tracked.item() == 1


def test_stability_functions():
    a = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([[1.0, 0.0], [0.0, 0.0]]), "n": torch.tensor(9)}
    mask = Mask({"w": torch.tensor([[True, True], [False, True]])})
    assert stability.distance(a, b, mask) == pytest.approx((4 + 16) ** 0.5)
    assert stability.distance(a, a, mask) == 0 and stability.norm(a, mask) == pytest.approx((1 + 4 + 16) ** 0.5)
    mid = stability.interpolate(a, b, 0.5)
    assert torch.equal(mid["w"], torch.tensor([[1.0, 1.0], [1.5, 2.0]])) and mid["n"].item() == 3
    assert torch.equal(stability.interpolate(a, b, 1.0)["w"], b["w"])
    assert stability.alphas(5) == [0, 0.25, 0.5, 0.75, 1.0]
    assert stability.barrier([0.1, 0.4, 0.2]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="two ends"):
        stability.alphas(1)


def test_a_twin_with_a_restarted_schedule_is_refused():
    with pytest.raises(ConfigError, match="rewind_schedule continue"):
        cfg(rewind_iteration=10, controls=["ticket", "twin"])
    with pytest.raises(ConfigError, match="'rewind_schedule'"):
        cfg(rewind_schedule="resume")
    assert cfg().digest() == cfg(rewind_schedule="restart", interpolation_points=30).digest()  # old names kept


def test_the_chapter_tables_read_a_run(tiny, tmp_path):
    from lt_core.chapters import stability as chapter
    c = twin_cfg(stability_distance=True)
    executor.run(c, tmp_path, log=lambda *_: None)
    _, summary = load_results(c, tmp_path)
    table = chapter.barriers(summary)
    assert list(table.level) == [0, 1, 2] and table["density %"].iloc[0] == 100
    barrier = summary[(summary.control == "barrier") & (summary.level == 1)].iloc[0]
    assert table["error barrier (points)"].iloc[1] == pytest.approx(100 * barrier.error_barrier)
    assert table.stable.tolist() == [b < 2 for b in table["error barrier (points)"]]
    line = chapter.path(summary, 1)
    assert len(line) == 5 and line["test error %"].max() - line["test error %"].iloc[[0, -1]].mean() \
        == pytest.approx(table["error barrier (points)"].iloc[1])
    with pytest.raises(KeyError, match="levels with one: \\[0, 1, 2\\]"):
        chapter.path(summary, 7)
    distances = chapter.pruning_stability(summary)
    assert set(distances.control) == {"ticket", "reinit", "random", "oneshot", "twin"}
    assert (distances["distance / norm"] > 0).all()


def test_the_dense_networks_twins_at_several_k_start_from_its_states_there(tiny, tmp_path):
    from lt_core.chapters import stability as chapter
    c = cfg(levels=0, controls=["ticket", "twin"], twin_iterations=[5, 20], interpolation_points=3)
    assert [(u.control, u.draw) for u in imp.units(c)] == [("ticket", 0), ("twin", 0), ("barrier", 0), ("twin", 1),
                                                          ("barrier", 1), ("twin", 2), ("barrier", 2)]
    store = executor.run(c, tmp_path, log=lambda *_: None)
    data = DeviceData.prepare(tiny, torch.device("cpu"))
    t = imp.Trial(c, store, 0, data)
    fresh = lambda: models.build("lenet_300_100", seed=imp.derive_seed(t.seed, "init"))
    for draw, k in ((1, 5), (2, 20)):
        ref = train(fresh(), Mask.ones_like(fresh()), data, c, data_seed=t.data_seed, keep_iterations=(k,))
        _, model = t.unit_start(Unit(0, 0, "twin", draw))
        assert all(torch.equal(v, ref.kept_states[k][n]) for n, v in model.state_dict().items())
        assert imp.start_iteration(c, Unit(0, 0, "twin", draw)) == k
    curves, summary = load_results(c, tmp_path)
    table = chapter.barriers(summary)
    assert list(table.k) == [0, 5, 20] and list(table.draw) == [0, 1, 2]
    twin2 = curves[(curves.control == "twin") & (curves.draw == 2) & (curves.split == "val")]
    assert twin2.iteration.min() == 20
    errors = summary[(summary.control == "barrier") & (summary.draw == 2)].iloc[0].path_test_errors
    assert errors[-1] == 1 - summary[(summary.control == "twin") & (summary.draw == 2)].iloc[0].final_test_accuracy
    with pytest.raises(ConfigError, match="twin_iterations"):
        cfg(twin_iterations=[5])
    with pytest.raises(ConfigError, match="0..iterations-1"):
        cfg(controls=["ticket", "twin"], twin_iterations=[30])
