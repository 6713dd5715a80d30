"""Statements the LeNet chapter makes about the data and the network, checked on the real data.

The chapter once said MNIST's border pixels "never receive a gradient". They are 0 in every raw image, but
the engine standardises its inputs with the training split's mean and std, so the network sees about -0.42
there, and a weight from such a pixel gets the gradient -0.42 x its hidden unit's bias gradient: it moves
like an extra bias. This test pins both facts the corrected text states.
"""

import pytest
import torch
import torch.nn.functional as F

from lt_core.chapters import lenet_mnist
from lt_core.config import load
from lt_core.data import datasets
from lt_core.procedures.imp import new_model
from lt_core.provenance import REPO
from lt_core.training.loop import DeviceData


@pytest.fixture(scope="module")
def mnist():
    try:
        return datasets.load("mnist", val_size=5000, split_seed=0)
    except datasets.DataError as error:
        pytest.skip(f"MNIST not fetched: {error}")


def test_constant_pixels_are_not_zero_after_standardisation(mnist):
    found = lenet_mnist.constant_pixels(mnist)
    assert 0.05 < found["share"] < 0.15  # MNIST: 67 of 784 pixels are 0 in all 55,000 training images
    expected = float(-mnist.mean[0] / mnist.std[0])
    assert found["value"] == pytest.approx(expected, abs=1e-5)
    assert found["value"] == pytest.approx(-0.424, abs=0.005)


def test_weights_from_constant_pixels_get_the_bias_gradient_times_their_value(mnist):
    found = lenet_mnist.constant_pixels(mnist)
    data = DeviceData.prepare(mnist, torch.device("cpu"))
    cfg = load(REPO / "params" / "lenet_mnist.yaml", "smoke")
    model = new_model(cfg, seed=0)
    x, y = data.x_train[:60], data.y_train[:60]
    F.cross_entropy(model(x), y).backward()
    weight_grad, bias_grad = model.fc1.weight.grad, model.fc1.bias.grad
    constant = weight_grad[:, found["mask"]]
    assert constant.abs().max() > 0, "weights from constant pixels do receive a gradient"
    expected = found["value"] * bias_grad[:, None].expand_as(constant)
    torch.testing.assert_close(constant, expected, rtol=1e-4, atol=1e-7)
