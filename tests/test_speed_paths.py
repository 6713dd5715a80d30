"""The engine's fast paths against its plain autograd path (train(..., plain=True)) on a tiny problem.

The packed sparse path (lt_core/training/fast/sparse.py), the sparse-input evaluation (sparse_input.py) and oneDNN's
products (products.py) sum in another order than the plain path, so they are compared to a tolerance;
changes of layout only (the max-pool gradient in channels_last) and the lean optimizers must be bit for bit.
Pruned weights stay exactly zero on every path. No timings here: speed lives in `python -m lt_core bench`.
"""

import pytest
import torch

from lt_core.nets import models
from lt_core.training import optim
from lt_core.sparsity import pruning
from lt_core.training.fast import sparse
from lt_core.training.fast import sparse_input
from lt_core.sparsity.masks import Mask
from lt_core.training.loop import DeviceData, evaluate, train

from test_engine import cfg, tiny_splits, weights


@pytest.fixture(scope="module")
def data():
    return DeviceData.prepare(tiny_splits(), torch.device("cpu"))


@pytest.fixture(scope="module")
def sparse_data():
    """Like MNIST: most pixels black (0), the class blobs and a tenth of the background lit."""
    s, g = tiny_splits(), torch.Generator().manual_seed(1)
    lit = lambda x: x * ((torch.rand(x.shape, generator=g) < 0.1) | (x >= 150))
    xs = [lit(x) for x in (s.x_train, s.x_val, s.x_test)]
    xt = xs[0].float() / 255
    splits = type(s)("sparse", xs[0], s.y_train, xs[1], s.y_val, xs[2], s.y_test, xt.mean((0, 2, 3)),
                     xt.std((0, 2, 3)))
    return DeviceData.prepare(splits, torch.device("cpu"))


def assert_runs_agree(plain, fast):
    """Same evaluations, losses within 1e-4, accuracies within 2 points, weights (final and kept) close."""
    assert [r[:2] for r in plain.rows] == [r[:2] for r in fast.rows]
    for a, b in zip(plain.rows, fast.rows):
        assert abs(a[2] - b[2]) < 1e-4 and abs(a[3] - b[3]) < 0.02, (a, b)
    for state in ("final_state", "kept_states"):
        p, f = getattr(plain, state), getattr(fast, state)
        if state == "kept_states":
            assert p.keys() == f.keys() == {10}
            p, f = p[10], f[10]
        for k in p:
            assert torch.allclose(p[k], f[k], atol=1e-4, rtol=1e-3), (state, k)


def level_mask(level: int, seed: int = 0) -> Mask:
    model = models.build("lenet_300_100", seed=seed)
    return pruning.oneshot(weights(model), Mask.ones_like(model), pruning.PruneSpec.of(model, cfg()), level)


def run(data, mask, fast: bool, **kw):
    return train(models.build("lenet_300_100", seed=0), mask, data, cfg(**kw), data_seed=3, keep_iterations=(10,),
                 plain=not fast)


@pytest.mark.parametrize("level,opt,packed", [(0, {}, [False] * 3), (5, {}, [False] * 3), (6, {}, [True, True, False]),
                                              (10, {}, [True, True, False]), (18, {}, [True, True, False]),
                                              (12, dict(optimizer="sgd", lr=0.05, weight_decay=1e-2), [True, True, False])])
def test_fast_path_matches_plain_path_and_keeps_zeros(data, level, opt, packed):
    """LeNet on the CPU always takes the hand-written path; large layers at <= 30% density are packed (fc3 is
    too small to pack). Summation order differs from autograd's, so results agree to a tolerance."""
    mask = level_mask(level)
    model = models.build("lenet_300_100")
    assert sparse.wanted(model, torch.device("cpu"))
    assert [layer.packed for layer in sparse.FastMLP(model, mask, torch.device("cpu")).layers] == packed
    plain, fast = run(data, mask, False, **opt), run(data, mask, True, **opt)
    assert_runs_agree(plain, fast)
    for name, m in mask.items():
        for state in (fast.final_state, fast.kept_states[10]):
            assert bool((state[name][~m] == 0).all()), name
        assert bool((fast.final_state[name][m] != 0).all()), name


def test_other_networks_take_the_plain_path():
    for model in (models.build("lenet_300_100", dropout=0.2), models.build("lenet5")):
        assert not sparse.wanted(model, torch.device("cpu"))


def test_packed_gradients_equal_autograd_on_one_batch(data):
    """One forward/backward of the hand-written path against autograd on the same masked network."""
    mask = level_mask(10)
    model = mask.apply(models.build("lenet_300_100", seed=0))
    x, y = data.x_train[:20], data.y_train[:20]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    fast = sparse.FastMLP(mask.apply(models.build("lenet_300_100", seed=0)), mask, torch.device("cpu"))
    assert abs(fast.grads(x, y, with_loss=True).item() - loss.item()) < 1e-6
    for layer in fast.layers:
        expected = model.get_parameter(f"{layer.name}.weight").grad * mask[f"{layer.name}.weight"]
        if layer.packed:  # the survivors' gradients, in CSR (row-major) order
            expected = expected[layer.rows, layer.cols]
        assert torch.allclose(layer.weight.grad, expected, atol=1e-6), layer.name
        assert torch.allclose(layer.bias.grad, model.get_parameter(f"{layer.name}.bias").grad, atol=1e-6)


def test_fast_path_is_deterministic(data):
    mask = level_mask(15)
    a, b = run(data, mask, True), run(data, mask, True)
    assert a.rows == b.rows
    assert all(torch.equal(a.final_state[k], b.final_state[k]) for k in a.final_state)


def test_conv_nets_train_the_same_in_channels_last():
    splits = tiny_splits(n_train=120, n_val=20, n_test=20)
    g = torch.Generator().manual_seed(0)
    x = lambda t: torch.randint(0, 255, (len(t), 3, 32, 32), generator=g, dtype=torch.uint8)
    splits = type(splits)("tiny", x(splits.x_train), splits.y_train, x(splits.x_val), splits.y_val,
                          x(splits.x_test), splits.y_test, torch.full((3,), 0.5), torch.full((3,), 0.3))
    data = DeviceData.prepare(splits, torch.device("cpu"))
    # SGD, not Adam: Adam turns rounding differences in near-zero gradients into full-size steps
    c = cfg(model="conv2", dataset="cifar10", iterations=6, eval_every=3, optimizer="sgd", lr=0.01)
    model = models.build("conv2", seed=0, in_shape=(3, 32, 32))
    mask = pruning.oneshot(weights(model), Mask.ones_like(model), pruning.PruneSpec.of(model, c), 3)
    out = {}
    for fast in (False, True):
        out[fast] = train(models.build("conv2", seed=0, in_shape=(3, 32, 32)), mask, data, c, data_seed=1,
                          plain=not fast)
    for a, b in zip(out[False].rows, out[True].rows):
        assert a[:2] == b[:2] and abs(a[2] - b[2]) < 2e-4 * abs(a[2])  # another conv algorithm: relative
    for k, v in out[False].final_state.items():
        assert torch.allclose(v, out[True].final_state[k], atol=1e-5), k
    for name, m in mask.items():
        assert bool((out[True].final_state[name][~m] == 0).all()), name


@pytest.mark.parametrize("name,kw", [("adam", dict(weight_decay=0.0)), ("adam", dict(weight_decay=1e-2)),
                                     ("sgd", dict(momentum=0.9, weight_decay=5e-4))])
def test_lean_optimizers_equal_torch_optim_bit_for_bit(name, kw):
    """lt_core.optim calls torch's fused kernels directly: same numbers as torch.optim(fused=True), including
    a learning-rate change mid-run, a channels_last parameter and the first SGD step's momentum buffer."""
    g = torch.Generator().manual_seed(0)
    shapes = [(8, 3, 3, 3), (30, 20), (30,)]
    start = [torch.randn(s, generator=g) for s in shapes]
    start[0] = start[0].contiguous(memory_format=torch.channels_last)
    grads = [[torch.randn(s, generator=g) for s in shapes] for _ in range(6)]
    results = []
    for lean in (True, False):
        params = [p.clone().requires_grad_(True) for p in start]
        opt = optim.make(params, name, lr=0.01, lean=lean, **kw)
        assert isinstance(opt, (optim.FusedAdam, optim.FusedSGD)) == lean
        for i, step_grads in enumerate(grads):
            opt.param_groups[0]["lr"] = 0.01 if i < 3 else 0.002
            for p, gr in zip(params, step_grads):
                p.grad = gr.clone()
            opt.step()
            opt.zero_grad(set_to_none=True)
        results.append([p.detach() for p in params])
    for a, b in zip(*results):
        assert torch.equal(a, b)
    assert not torch.equal(results[0][0], start[0])


def test_lean_optimizer_refuses_a_missing_gradient():
    p = torch.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="no gradient"):
        optim.make([p], "adam", lr=0.1).step()


def test_input_density_decides_the_sparse_input_evaluation(data, sparse_data):
    cpu = torch.device("cpu")
    assert sparse_data.input_density() <= sparse_input.INPUT_DENSITY < data.input_density()
    model = models.build("lenet_300_100")
    assert sparse.FastMLP(model, Mask.ones_like(model), cpu, data).black is None
    fast = sparse.FastMLP(model, Mask.ones_like(model), cpu, sparse_data)
    assert torch.equal(fast.black, sparse_data.black.expand(784))
    assert sparse.FastMLP(model, Mask.ones_like(model), cpu).black is None  # no data: no sparse inputs


def test_ragged_inputs_hold_exactly_the_nonblack_entries(sparse_data):
    z = sparse_data.x_val.flatten(1) - sparse_data.feature_black()
    chunks = sparse_data.ragged("val", 25)
    assert chunks is sparse_data.ragged("val", 25)  # made once per dataset
    rebuilt = []
    for cols, values, offsets in chunks:
        ends = torch.cat([offsets[1:], torch.tensor([len(cols)], dtype=offsets.dtype)])
        part = torch.zeros(len(offsets), 784)
        for row, (a, b) in enumerate(zip(offsets.tolist(), ends.tolist())):
            part[row, cols[a:b].long()] = values[a:b]
        rebuilt.append(part)
    assert torch.equal(torch.cat(rebuilt), z)
    assert 0 < sum(len(c[0]) for c in chunks) < 0.3 * z.numel()


@pytest.mark.parametrize("levels,route", [((0, 0), "inputs-rows"), ((7, 7), "inputs-rows"),
                                          ((7, 16), "inputs-features"), ((8, 8), "features"), ((16, 16), "features")])
def test_evaluation_on_sparse_inputs_matches_the_plain_evaluation(sparse_data, levels, route):
    """Every route of FastMLP's evaluation (sparse_input.py) against train.evaluate on the same weights, with
    chunks that do not divide the split. levels: the pruning levels of fc1 and of fc2 (a packed fc2 sparser
    than fc1 takes the inputs-features route; global pruning makes such masks)."""
    mask = level_mask(levels[0])
    mask["fc2.weight"] = level_mask(levels[1])["fc2.weight"]
    model = mask.apply(models.build("lenet_300_100", seed=1))
    fast = sparse.FastMLP(model, mask, torch.device("cpu"), sparse_data)
    assert fast.eval_plan()[1] == route
    for split in ("val", "test"):
        x, y = getattr(sparse_data, f"x_{split}"), getattr(sparse_data, f"y_{split}")
        loss, acc = fast.evaluate(sparse_data, split, 25)
        plain_loss, plain_acc = evaluate(model, x, y)
        assert abs(loss - plain_loss) < 1e-5 * max(1.0, plain_loss) and abs(acc - plain_acc) <= 1 / len(y)


@pytest.mark.parametrize("level", [0, 8])
def test_fast_path_on_sparse_inputs_matches_plain_path(sparse_data, level):
    mask = level_mask(level)
    plain, fast = run(sparse_data, mask, False), run(sparse_data, mask, True)
    assert_runs_agree(plain, fast)


@pytest.mark.parametrize("name", ["conv2", "conv4"])
def test_channels_last_gradient_hook_changes_layout_not_values(monkeypatch, name):
    """ConvNet hands flatten's gradient to the last max-pool in channels_last (a speed measure): the
    gradients are bit for bit those without the hook, and the hook runs only in channels_last."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, 32, 32, generator=g), torch.randint(0, 10, (6,), generator=g)
    calls = []
    hook = models._channels_last

    def grads(layout_hook, memory_format):
        monkeypatch.setattr(models, "_channels_last", layout_hook)
        model = models.build(name, seed=0, in_shape=(3, 32, 32)).to(memory_format=memory_format)
        torch.nn.functional.cross_entropy(model(x.contiguous(memory_format=memory_format)), y).backward()
        return [p.grad for p in model.parameters()]

    counted = lambda grad: calls.append(1) or hook(grad)
    with_hook = grads(counted, torch.channels_last)
    assert len(calls) == 1
    without = grads(lambda grad: grad, torch.channels_last)
    assert all(torch.equal(a, b) for a, b in zip(with_hook, without))
    grads(counted, torch.contiguous_format)
    assert len(calls) == 1
