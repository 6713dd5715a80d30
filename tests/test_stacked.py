"""Networks trained in a stack (lt_core/training/stacked.py) against the same networks trained alone."""

import pytest
import torch

from lt_core.data.datasets import Splits
from lt_core.nets import models
from lt_core.procedures import imp
from lt_core.runs import executor
from lt_core.sparsity import pruning
from lt_core.sparsity.masks import Mask
from lt_core.training.loop import DeviceData, train
from lt_core.training.stacked import refusal, train_stacked

from test_engine import cfg, tiny, tiny_splits, weights  # noqa: F401 (tiny: a fixture)


def tiny_cifar(n=200, seed=0) -> Splits:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n + 80,), generator=g)
    x = torch.randint(0, 80, (len(y), 3, 32, 32), generator=g, dtype=torch.uint8)
    for c in range(10):
        x[y == c, c % 3, 3 * c:3 * c + 4, 4:28] += 150
    xt = x[:n].float() / 255
    return Splits("tiny_cifar", x[:n], y[:n], x[n:n + 40], y[n:n + 40], x[n + 40:], y[n + 40:],
                  xt.mean((0, 2, 3)), xt.std((0, 2, 3)))


def assert_same_weights(got: torch.Tensor, want: torch.Tensor, what) -> None:
    """Trained alike up to summation order: the difference within 5e-3 of the tensor's norm, plus 1e-4 in
    root mean square for tensors near zero (batch norm's biases start there). Not weight by weight: Adam
    divides each step by the root of its running squared gradient, so a weight whose gradient is at
    rounding level (fed by an always-black pixel or a unit that never fires) takes a step of about lr whose
    sign the summation order picks. Batched products (bmm) and single ones (mm) sum in other orders on an
    AVX2-only CPU: after 60 Adam steps (lr 0.01) the dense LeNet's fc2 differs from alone by up to 5.8e-3 in
    a few weights and by 7e-4 of its norm (measured, AMD EPYC; weight by weight the test passed on the
    AVX-512 machines). A stack trained on another trial's batches is 1.2 of the norm away, at lr 1% off
    0.02 to 0.3."""
    if not want.is_floating_point():  # batch norm's count of batches
        assert torch.equal(got, want), what
        return
    assert float((got - want).norm()) <= 5e-3 * float(want.norm()) + 1e-4 * want.numel() ** 0.5, what


def same_as_alone(results, models_, masks, data, c, seeds, **kw):
    for result, model, mask, seed in zip(results, models_, masks, seeds):
        alone = train(model, mask, data, c, data_seed=seed, plain=True, **kw)
        assert [r[:2] for r in result.rows] == [r[:2] for r in alone.rows]  # the same evaluations, test ones too
        for a, b in zip(result.rows, alone.rows):  # batched products sum in another order: a tolerance
            assert abs(a[2] - b[2]) < 1e-4 and abs(a[3] - b[3]) <= 1 / 60, (a, b)
        assert result.final_state.keys() == alone.final_state.keys()
        for k, v in alone.final_state.items():
            assert_same_weights(result.final_state[k], v, k)
        assert result.kept_states.keys() == alone.kept_states.keys()
        for step, state in alone.kept_states.items():
            for k, v in state.items():
                assert_same_weights(result.kept_states[step][k], v, (step, k))
        for name, m in mask.items():
            assert bool((result.final_state[name][~m] == 0).all()), name  # pruned weights exactly zero


# test_curves off: the test split only at new validation minima and the end (both cases skip some evaluations)
@pytest.mark.parametrize("opt", [dict(lr=0.01, iterations=60),
                                 dict(optimizer="sgd", lr=0.05, weight_decay=1e-2, l1_penalty=1e-3)])
def test_stacked_lenets_train_as_they_do_alone_each_on_its_own_batches(opt):
    data = DeviceData.prepare(tiny_splits(), torch.device("cpu"))
    c = cfg(test_curves=False, **opt)
    dense = models.build("lenet_300_100", seed=0)
    ones = Mask.ones_like(dense)
    spec = pruning.PruneSpec.of(dense, c)
    ticket = pruning.oneshot(weights(dense), ones, spec, 6)
    random = pruning.random_like(ticket, torch.Generator().manual_seed(5))
    masks, inits, seeds = [ones, ticket, random], [0, 0, 1], [3, 3, 4]  # the third: other batches too
    build = lambda: [models.build("lenet_300_100", seed=s) for s in inits]
    results = train_stacked(build(), masks, data, c, data_seeds=seeds, keep_iterations=(10,))
    same_as_alone(results, build(), masks, data, c, seeds, keep_iterations=(10,))
    assert not torch.equal(results[1].final_state["fc1.weight"], results[2].final_state["fc1.weight"])
    tested = {r[0] for r in results[0].rows if r[1] == "test"}
    assert tested < {r[0] for r in results[0].rows if r[1] == "val"}  # the rule was exercised


def test_stacked_conv_nets_with_augmentation_continue_from_a_late_start_as_alone():
    data = DeviceData.prepare(tiny_cifar(), torch.device("cpu"))
    c = cfg(model="conv2", dataset="cifar10", augment=True, optimizer="sgd", lr=0.01, momentum=0.9,
            iterations=12, eval_every=4, batch_size=16, val_size=40, lr_drops=[8])
    build = lambda: [models.build("conv2", seed=s, in_shape=(3, 32, 32)) for s in (0, 1)]
    masks = [Mask.ones_like(m) for m in build()]
    masks[1] = pruning.random_like(pruning.oneshot(weights(build()[1]), masks[1], pruning.PruneSpec.of(build()[1], c), 3),
                                   torch.Generator().manual_seed(2))
    results = train_stacked(build(), masks, data, c, data_seeds=[7, 8], start_iteration=4)
    same_as_alone(results, build(), masks, data, c, [7, 8], start_iteration=4)
    assert [r[0] for r in results[0].rows if r[1] == "val"] == [4, 8, 12]


def test_stacked_resnets_keep_each_networks_batch_norm_statistics_as_alone():
    """Batch norm's running statistics are per network: each training step updates network i's from its own
    batch, and evaluation (eval mode) reads them; the final states carry them, as train()'s do."""
    data = DeviceData.prepare(tiny_cifar(), torch.device("cpu"))
    # a small lr: on these tiny blobs a batch-normalised step at lr 0.01 turns summation order into 1e-4 within
    # two steps (one thread against two differs as much there), which no tolerance separates from a bug
    c = cfg(model="resnet20", dataset="cifar10", optimizer="sgd", lr=0.0005, momentum=0.9, weight_decay=1e-4,
            iterations=6, eval_every=3, batch_size=16, val_size=40, pruning="global", rates={"conv": 0.2})
    build = lambda: [models.build("resnet20", seed=s, in_shape=(3, 32, 32)) for s in (0, 1)]
    first = build()[0]
    ones = Mask.ones_like(first)
    masks = [ones, pruning.oneshot(weights(first), ones, pruning.PruneSpec.of(first, c), 2)]
    results = train_stacked(build(), masks, data, c, data_seeds=[5, 6])
    same_as_alone(results, build(), masks, data, c, [5, 6])
    assert "bn.running_mean" in results[0].final_state
    assert not torch.equal(results[0].final_state["bn.running_mean"], results[1].final_state["bn.running_mean"])


def test_what_cannot_be_stacked_is_refused_with_the_reason():
    data = DeviceData.prepare(tiny_splits(), torch.device("cpu"))
    lenet = models.build("lenet_300_100")
    assert refusal(lenet, cfg()) is None
    assert "dropout" in refusal(models.build("lenet_300_100", dropout=0.5), cfg(dropout=0.5))
    assert refusal(models.build("resnet20", in_shape=(3, 32, 32)), cfg()) is None  # batch norm stacks
    assert "train_accuracy" in refusal(lenet, cfg(train_accuracy=True))
    with pytest.raises(ValueError, match="cannot be trained in a stack: dropout"):
        train_stacked([models.build("lenet_300_100", dropout=0.5)], [Mask.ones_like(lenet)], data, cfg(dropout=0.5),
                      data_seeds=[0])
    with pytest.raises(ValueError, match="one mask per model"):
        train_stacked([lenet, models.build("lenet_300_100")], [Mask.ones_like(lenet)], data, cfg(), data_seeds=[0, 1])
    with pytest.raises(ValueError, match="one data seed per model"):
        train_stacked([lenet], [Mask.ones_like(lenet)], data, cfg(), data_seeds=[0, 1])


def test_a_run_with_stack_stores_every_unit_as_a_run_without_it(tiny, tmp_path):
    """run(stack=N) trains ready units of one start together (IMP: the trials' tickets, then a level's
    controls) and stores what one process stores alone: the same units and masks, the same evaluations,
    accuracies within summation order, theta_k kept for late resetting; a second run trains nothing."""
    c = cfg(levels=2, trials=2, controls=["ticket", "reinit", "random"], rewind_iteration=10, test_curves=False)
    groups = []
    original = imp.ImpProcedure.run_units

    def spy(self, units, store, data, on_step=None):
        groups.append(list(units))
        return original(self, units, store, data, on_step)
    imp.ImpProcedure.run_units = spy
    try:
        stacked_store = executor.run(c, tmp_path / "stacked", log=lambda *_: None, stack=4)
    finally:
        imp.ImpProcedure.run_units = original
    alone = executor.run(c, tmp_path / "alone", log=lambda *_: None)
    assert [[(u.trial, u.level, u.control) for u in g] for g in groups] == [
        [(0, 0, "ticket"), (1, 0, "ticket")],                       # the dense networks of both trials
        [(0, 1, "ticket"), (1, 1, "ticket"), (0, 1, "reinit"), (0, 1, "random")],  # tickets first
        [(0, 2, "ticket"), (1, 2, "ticket"), (0, 2, "reinit"), (0, 2, "random")],  # the next tickets are ready
        [(1, 1, "reinit"), (1, 1, "random"), (1, 2, "reinit"), (1, 2, "random")]]
    by = lambda s: {(u["trial"], u["level"], u["control"]): u for u in s.summaries()}
    a, b = by(stacked_store), by(alone)
    assert a.keys() == b.keys() == {(u.trial, u.level, u.control) for u in imp.units(c)}
    for key, summary in a.items():
        assert summary["stacked"] == (2 if key[1] == 0 else 4), key
        assert "stacked" not in b[key]
        assert abs(summary["final_test_accuracy"] - b[key]["final_test_accuracy"]) <= 1 / 60, key
        assert summary["start_iteration"] == b[key]["start_iteration"] and summary["data_seed"] == b[key]["data_seed"]
        unit = imp.Unit(*key)
        if key[1] == 1:  # masks from the dense networks' trained weights: the same weights up to rounding
            for name, m in alone.load_tensor(unit, "mask").items():
                assert torch.equal(stacked_store.load_tensor(unit, "mask")[name], m), (key, name)
    for trial in range(2):
        for name, tensor in alone.load_trial_tensor(trial, "rewind").items():
            assert_same_weights(stacked_store.load_trial_tensor(trial, "rewind")[name], tensor, name)
    trained = []
    executor.run(c, tmp_path / "stacked", log=trained.append, stack=4)
    assert "all" in trained[-1] and "units done" in trained[-1]


@pytest.mark.parametrize("kw, why", [(dict(stack=0), "stack=0"), (dict(stack=2, workers=2), "workers 1"),
                                     (dict(stack=True), "stack=True")])
def test_stack_options_that_cannot_work_are_one_error(tiny, tmp_path, kw, why):
    with pytest.raises(ValueError, match=why):
        executor.run(cfg(), tmp_path, log=lambda *_: None, **kw)
    assert not any(tmp_path.iterdir())


def test_units_that_cannot_stack_train_alone(tiny, tmp_path):
    """A network with dropout has no stack_key: stack=4 trains it unit by unit, as without stack."""
    c = cfg(levels=1, controls=["ticket", "reinit"], dropout=0.5)
    procedure = imp.ImpProcedure(c)
    assert procedure.stack_key(imp.Unit(0, 1, "ticket")) is None
    assert imp.ImpProcedure(cfg()).stack_key(imp.Unit(0, 1, "reinit")) == 0
    assert imp.ImpProcedure(cfg(mask_every=10)).stack_key(imp.Unit(0, 1, "ticket")) is None  # it watches its masks
    store = executor.run(c, tmp_path, log=lambda *_: None, stack=4)
    assert all("stacked" not in s for s in store.summaries()) and len(store.summaries()) == 3


def test_every_chapter_takes_stack_as_a_parameter_and_passes_it_to_its_run():
    """`papermill ... -p stack 16` and `make book STACK=16` reach executor.run in every chapter."""
    import json
    from lt_core.provenance import REPO
    notebooks = sorted((REPO / "book").glob("*.ipynb"))
    assert len(notebooks) >= 6
    for path in notebooks:
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        parameters = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
        assert any(line.startswith("stack = 1") for line in "".join(parameters["source"]).splitlines()), path.name
        calls = [c for c in cells if "results_root, log=" in "".join(c["source"])]
        assert calls and all("stack=stack" in "".join(c["source"]) for c in calls), path.name


def test_a_transfer_run_with_stack_stores_what_it_stores_without(tiny, tmp_path):
    """Transferred tickets and their controls all start at 0: with stack they train together and store the
    units, masks, starting weights and accuracies of a run without it."""
    from test_transfer import target
    c = target()
    alone, together = (executor.run(c, tmp_path / name, log=lambda *_: None, stack=stack)
                       for name, stack in (("alone", 1), ("together", 8)))
    by = lambda s: {(u["trial"], u["level"], u["control"]): u for u in s.summaries()}
    a, b = by(alone), by(together)
    assert a.keys() == b.keys() and all(b[k]["stacked"] > 1 and "stacked" not in a[k] for k in a)
    for key in a:
        assert abs(a[key]["final_test_accuracy"] - b[key]["final_test_accuracy"]) <= 1 / 60, key
        assert a[key]["start_weights_sha256"] == b[key]["start_weights_sha256"] or key[2] != "transfer", key
        unit = imp.Unit(*key)
        assert torch.equal(alone.load_tensor(unit, "mask")["fc2.weight"], together.load_tensor(unit, "mask")["fc2.weight"])
