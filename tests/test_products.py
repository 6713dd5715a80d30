"""lt_core.products: oneDNN's matrix products where they are large, BLAS's elsewhere, same values up to
summation order; the engine switches conv nets' linear layers to them and the plain path does not."""

import pytest
import torch
import torch.nn.functional as F

from lt_core.nets import models
from lt_core.nets import products
from lt_core.sparsity.masks import Mask
from lt_core.training.loop import DeviceData, train

from test_engine import cfg, tiny_splits

needs_onednn = pytest.mark.skipif(not products.ONEDNN, reason="torch has no oneDNN product on this machine")


def operands(m, k, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)


@pytest.mark.parametrize("m,k,n", [(60, 784, 300), (300, 60, 784), (10, 100, 60)])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("min_macs", [0, None])  # every product through oneDNN, or the machine's rule
def test_mm_and_linear_equal_torch_up_to_summation_order(m, k, n, transposed, min_macs, monkeypatch):
    if min_macs is not None:
        monkeypatch.setattr(products, "MIN_MACS", min_macs)
    a, b = operands(m, k, n)
    if transposed:  # strided views, as the engine passes them
        a, b = a.t().contiguous().t(), b.t().contiguous().t()
    assert torch.allclose(products.mm(a, b), a @ b, rtol=1e-5, atol=1e-4)
    bias = torch.randn(n)
    assert torch.allclose(products.linear(a, b.t(), bias), F.linear(a, b.t(), bias), rtol=1e-5, atol=1e-4)


@needs_onednn
def test_only_large_products_go_to_onednn(monkeypatch):
    big, small = operands(60, 784, 300), operands(10, 100, 60)
    # LeNet's first layer goes to oneDNN where it is faster (AVX-512), Conv-2's 16,384 x 256 layer on any
    # x86-64 CPU, LeNet's 10-unit layer nowhere (measured crossovers: lt_core/nets/products.py)
    assert products.onednn_for(60, 784, 300, big[0]) == products.AVX512
    assert products.onednn_for(60, 16384, 256, big[0]) and not products.onednn_for(10, 100, 60, small[0])
    assert not products.onednn_for(60, 16384, 256, big[0].double())
    monkeypatch.setattr(products, "ONEDNN", False)  # without oneDNN: torch's own product, bit for bit
    assert torch.equal(products.mm(*big), big[0] @ big[1])


@pytest.mark.parametrize("bias", [True, False])
def test_linear_function_gradients_match_autograd(bias):
    x, w = operands(60, 784, 300)
    w = w.t().contiguous()
    b = torch.randn(300) if bias else None
    grad = torch.randn(60, 300)
    results = []
    for fn in (lambda *t: products._Linear.apply(*t), F.linear):
        leaves = [t.clone().requires_grad_(True) if t is not None else None for t in (x, w, b)]
        fn(*leaves).backward(grad)
        results.append([t.grad for t in leaves if t is not None])
    for mine, theirs in zip(*results):
        assert torch.allclose(mine, theirs, rtol=1e-5, atol=1e-3)


def test_engine_switches_linears_and_the_plain_path_keeps_torch():
    splits = tiny_splits(n_train=60, n_val=20, n_test=20)
    data = DeviceData.prepare(splits, torch.device("cpu"))
    model = models.build("lenet_300_100", dropout=0.5)  # the autograd path: its nn.Linear layers are switched
    assert not any(getattr(m, "fast", False) for m in model.modules())  # as built: torch's nn.Linear
    c = cfg(iterations=2, eval_every=1)
    train(model, Mask.ones_like(model), data, c, data_seed=0)
    assert all(m.fast for m in model.modules() if isinstance(m, products.Linear))
    train(model, Mask.ones_like(model), data, c, data_seed=0, plain=True)
    assert not any(m.fast for m in model.modules() if isinstance(m, products.Linear))
