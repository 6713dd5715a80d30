"""The kernels' bound times exactly one training step's products and convolutions, at the step's shapes."""

import torch

from lt_core.speed import ceilings
from lt_core.nets import models


def shapes(calls):
    return [tuple(None if t is None else t.shape for t in out) if isinstance(out, tuple) else tuple(out.shape)
            for out in (call() for call in calls)]


def test_lenet_step_is_forward_weight_and_input_gradients_but_not_the_first_layers_input_gradient():
    model = models.build("lenet_300_100", seed=0)
    calls = ceilings.step_kernels(model, torch.randn(60, 1, 28, 28))
    assert shapes(calls) == [(60, 300), (300, 784),                # fc1: forward, weight gradient
                             (60, 100), (100, 300), (60, 300),     # fc2: forward, weight and input gradients
                             (60, 10), (10, 100), (60, 100)]       # fc3


def test_conv2_step_covers_both_convolutions_and_the_three_linear_layers():
    model = models.build("conv2", seed=0, in_shape=(3, 32, 32))
    calls = ceilings.step_kernels(model, torch.randn(4, 3, 32, 32))
    got = shapes(calls)
    assert len(got) == 2 + 2 + 3 * 3
    assert got[0] == (4, 64, 32, 32) and got[2] == (4, 64, 32, 32)   # the two forward convolutions
    assert got[1][:2] == (None, (64, 3, 3, 3))                         # conv 1: weight gradient only
    assert got[3][:2] == ((4, 64, 32, 32), (64, 64, 3, 3))             # conv 2: input and weight gradients
    assert got[4:7] == [(4, 256), (256, 16384), (4, 16384)]


def test_the_forward_kernel_is_the_layers_own_product():
    model = models.build("conv2", seed=0, in_shape=(3, 32, 32))
    x = torch.randn(2, 3, 32, 32)
    calls = ceilings.step_kernels(model, x)
    conv = model.features[0]
    out = conv(x)
    assert torch.allclose(calls[0](), out.detach() - conv.bias.detach().view(1, -1, 1, 1), atol=1e-5)


def test_seconds_runs_every_call_once_per_step_after_one_warmup():
    count = []
    assert ceilings.seconds([lambda: count.append(1), lambda: count.append(2)], steps=3) >= 0
    assert count == [1, 2] * 4
