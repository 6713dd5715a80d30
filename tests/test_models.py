"""The networks match the papers' sizes, name the right tensors as prunable, and initialise as documented;
the learning-rate schedule and CIFAR augmentation do what train.py says."""

import math

import pytest
import torch

from lt_core.nets import models
from lt_core.config import make
from lt_core.training.loop import augment, lr_at

CIFAR = (3, 32, 32)


def prunable_counts(model) -> dict[str, int]:
    out = {}
    for name, kind in model.prunable.items():
        out[kind] = out.get(kind, 0) + model.get_parameter(name).numel()
    return out


@pytest.mark.parametrize("name, shape, expected", [
    ("lenet_300_100", (1, 28, 28), {"fc": 265_200, "output": 1_000}),           # 266K (Frankle & Carbin)
    ("lenet5", (1, 28, 28), {"conv": 25_500, "fc": 400_000, "output": 5_000}),   # 431K with biases (Han et al.)
    ("conv2", CIFAR, {"conv": 38_592, "fc": 4_259_840, "output": 2_560}),        # 4.3M, 38K conv
    ("conv4", CIFAR, {"conv": 259_776, "fc": 2_162_688, "output": 2_560}),       # 2.4M, 260K conv
    ("conv6", CIFAR, {"conv": 1_144_512, "fc": 1_114_112, "output": 2_560}),     # 1.1M conv
    ("conv8", CIFAR, {"conv": 4_683_456, "fc": 589_824, "output": 2_560}),       # + 512, 512 (Ramanujan et al.)
    ("vgg19", CIFAR, {"conv": 20_018_880, "output": 5_120}),                     # 20.0M, 5,120 output
    ("resnet20", CIFAR, {"conv": 267_696, "shortcut": 2_560, "output": 640}),    # ~270K
])
def test_sizes_and_prunable_kinds(name, shape, expected):
    model = models.build(name, in_shape=shape)
    assert prunable_counts(model) == expected
    # biases and batch norm are never prunable
    assert all(name.endswith("weight") and model.get_parameter(name).dim() >= 2 for name in model.prunable)
    out = model.eval()(torch.zeros(2, *shape))
    assert out.shape == (2, 10)


def test_inits_have_the_documented_scale():
    layer = lambda init: models.build("lenet_300_100", init=init, seed=3).fc1.weight.detach()
    fan_in, fan_out = 784, 300
    assert layer("glorot_normal").std().item() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.02)
    assert layer("kaiming_normal").std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.02)
    bound = math.sqrt(6 / fan_in)
    assert layer("kaiming_uniform").abs().max().item() <= bound
    signed = layer("signed_kaiming_constant")
    assert signed.unique().tolist() == pytest.approx([-math.sqrt(2 / fan_in), math.sqrt(2 / fan_in)])
    assert models.build("lenet_300_100", seed=3).fc1.bias.abs().sum() == 0
    # the same seed gives the same weights, another seed others
    assert torch.equal(layer("glorot_normal"), layer("glorot_normal"))
    assert not torch.equal(layer("glorot_normal"), models.build("lenet_300_100", seed=4).fc1.weight)
    with pytest.raises(ValueError, match="unknown init"):
        models.build("lenet_300_100", init="orthogonal")


def test_learning_rate_warmup_and_drops():
    cfg = make({"lr": 0.1, "warmup_iterations": 10, "lr_drops": [20, 25], "lr_drop_factor": 0.1})
    assert lr_at(cfg, 0) == pytest.approx(0.01)
    assert lr_at(cfg, 9) == pytest.approx(0.1)
    assert lr_at(cfg, 19) == pytest.approx(0.1)
    assert lr_at(cfg, 20) == pytest.approx(0.01)
    assert lr_at(cfg, 25) == pytest.approx(0.001)


def test_cosine_schedule_matches_edge_popups_and_refuses_drops():
    from lt_core.config import ConfigError
    from lt_core.training.supermask import cosine_lr
    cfg = make({"lr": 0.1, "iterations": 40, "lr_schedule": "cosine", "optimizer": "sgd"})
    assert [lr_at(cfg, s) for s in range(40)] == pytest.approx([cosine_lr(0.1, s, 40) for s in range(40)])
    assert lr_at(cfg, 0) == pytest.approx(0.1) and lr_at(cfg, 20) == pytest.approx(0.05)
    warm = make({"lr": 0.1, "iterations": 40, "lr_schedule": "cosine", "warmup_iterations": 10})
    assert lr_at(warm, 4) == pytest.approx(0.05) and lr_at(warm, 25) == pytest.approx(0.05)
    with pytest.raises(ConfigError, match="cosine"):
        make({"iterations": 40, "lr_schedule": "cosine", "lr_drops": [20]})
    with pytest.raises(ConfigError, match="lr_schedule"):
        make({"lr_schedule": "linear"})


def test_augmentation_is_a_padded_crop_or_its_mirror():
    x = torch.arange(4 * 3 * 32 * 32, dtype=torch.float32).view(4, 3, 32, 32)
    black = torch.tensor([-1.0, -2.0, -3.0])
    out = augment(x, black, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = black.view(1, 3, 1, 1).expand(4, 3, 40, 40).clone()
    padded[:, :, 4:36, 4:36] = x
    for i in range(4):
        crops = [padded[i, :, dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9)]
        assert any(torch.equal(out[i], c) or torch.equal(out[i], c.flip(2)) for c in crops), i
    again = augment(x, black, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_wide_conv_nets_multiply_every_width():
    from lt_core.config import ConfigError, make
    from lt_core.procedures.imp import new_model
    net = models.build("conv2", in_shape=(3, 32, 32), width=2.0)
    assert [m.out_channels for m in net.features if isinstance(m, torch.nn.Conv2d)] == [128, 128]
    assert net.fc1.weight.shape == (512, 128 * 16 * 16) and net.fc3.weight.shape == (10, 512)
    half = new_model(make({"model": "conv4", "dataset": "cifar10", "width": 0.5}), 0)
    assert [m.out_channels for m in half.features if isinstance(m, torch.nn.Conv2d)] == [32, 32, 64, 64]
    assert make({"width": 2.0}).digest() != make({}).digest()
    with pytest.raises(ConfigError, match="width"):
        new_model(make({"width": 2.0}), 0)  # LeNet has no width multiplier
