"""The networks of the papers, each naming its prunable weight tensors and their kind.

Every model has `prunable: dict[str, str]`, parameter name -> layer kind, where the kind selects the
pruning rate ("fc", "conv", "output", "shortcut"). Biases and batch-norm parameters are never prunable
(pruning them is a known mistake of peer implementations). Inits follow the papers: Gaussian Glorot
(Frankle & Carbin; = Xavier normal), Kaiming normal/uniform, the signed Kaiming constant and the scaled
Kaiming normal and signed constant for a subnetwork keeping a fraction k (Ramanujan et al.).
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from .products import Linear  # nn.Linear that the engine may switch to oneDNN's products (products.py)


class LeNet300100(nn.Module):
    """784-300-100-10 fully connected (Frankle & Carbin Figure 2; LeCun et al. 1998)."""

    def __init__(self, in_shape=(1, 28, 28), num_classes=10, dropout=0.0):
        super().__init__()
        self.fc1 = Linear(math.prod(in_shape), 300)
        self.fc2 = Linear(300, 100)
        self.fc3 = Linear(100, num_classes)
        self.drop = nn.Dropout(dropout)
        self.prunable = {"fc1.weight": "fc", "fc2.weight": "fc", "fc3.weight": "output"}

    def forward(self, x):
        x = x.flatten(1)
        x = self.drop(F.relu(self.fc1(x)))
        x = self.drop(F.relu(self.fc2(x)))
        return self.fc3(x)


class LeNet5(nn.Module):
    """Caffe's LeNet-5 as pruned by Han et al. 2015: conv20-pool-conv50-pool-fc500-fc10 (431K weights)."""

    def __init__(self, in_shape=(1, 28, 28), num_classes=10, dropout=0.0):
        super().__init__()
        c, h, w = in_shape
        self.conv1 = nn.Conv2d(c, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        side = lambda n: ((n - 4) // 2 - 4) // 2   # two 5x5 valid convs, each followed by a 2x2 pool
        self.fc1 = nn.Linear(50 * side(h) * side(w), 500)
        self.fc2 = nn.Linear(500, num_classes)
        self.drop = nn.Dropout(dropout)
        self.prunable = {"conv1.weight": "conv", "conv2.weight": "conv", "fc1.weight": "fc", "fc2.weight": "output"}

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)
        x = F.max_pool2d(self.conv2(x), 2)
        x = self.drop(F.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)


def _channels_last(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous(memory_format=torch.channels_last)


class ConvNet(nn.Module):
    """Conv-2/4/6 of Frankle & Carbin (and Ramanujan et al.'s Conv-8, a fourth pair of 512): pairs of 3x3 convs
    (64, 128, 256, 512) each followed by a 2x2 max-pool,
    then fc 256, fc 256, fc 10; dropout (the paper's 0.5) on the fully connected layers when asked."""

    def __init__(self, pairs: int, in_shape=(3, 32, 32), num_classes=10, dropout=0.0, width=1.0):
        super().__init__()
        c, h, w = in_shape
        layers, self.prunable = [], {}
        for i, width_i in enumerate((64, 128, 256, 512)[:pairs]):
            width_i = round(width * width_i)  # Ramanujan et al.'s wide variants multiply every width
            for j in range(2):
                layers += [nn.Conv2d(c, width_i, 3, padding=1), nn.ReLU()]
                self.prunable[f"features.{len(layers) - 2}.weight"] = "conv"
                c = width_i
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers)
        fc = round(width * 256)
        self.fc1, self.fc2 = Linear(c * h * w, fc), Linear(fc, fc)
        self.fc3 = Linear(fc, num_classes)
        self.drop = nn.Dropout(dropout)
        self.prunable.update({"fc1.weight": "fc", "fc2.weight": "fc", "fc3.weight": "output"})

    def forward(self, x):
        x = self.features(x)
        if x.requires_grad and not x.is_contiguous():  # channels_last (the engine on a CPU)
            # flatten's gradient comes back in NCHW order; handing it to the last max-pool's backward in
            # channels_last spares two full-size layout copies there: Conv-2 trains 5% faster (measured
            # side by side), with identical gradients (tests/test_speed_paths.py)
            x.register_hook(_channels_last)
        x = self.drop(F.relu(self.fc1(x.flatten(1))))
        x = self.drop(F.relu(self.fc2(x)))
        return self.fc3(x)


class VGG19(nn.Module):
    """VGG-19 for CIFAR with batch norm (Frankle & Carbin Section 4): 16 3x3 convs, a 2x2 average pool and
    one 512 -> 10 output layer (5,120 weights)."""

    PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)

    def __init__(self, in_shape=(3, 32, 32), num_classes=10, dropout=0.0):
        super().__init__()
        c, layers, self.prunable = in_shape[0], [], {}
        for item in self.PLAN:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            layers += [nn.Conv2d(c, item, 3, padding=1, bias=False), nn.BatchNorm2d(item), nn.ReLU()]
            self.prunable[f"features.{len(layers) - 3}.weight"] = "conv"
            c = item
        self.features = nn.Sequential(*layers, nn.AvgPool2d(2))
        self.fc = nn.Linear(512, num_classes)
        self.prunable["fc.weight"] = "output"

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


class Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:   # 1x1 projection where the shape changes
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet20(nn.Module):
    """The 20-layer CIFAR ResNet (16/32/64 channels, 274K weights) that Frankle & Carbin call ResNet-18."""

    def __init__(self, in_shape=(3, 32, 32), num_classes=10, dropout=0.0):
        super().__init__()
        self.conv = nn.Conv2d(in_shape[0], 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, c = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(3):
                blocks.append(Block(c, width, 2 if stage and i == 0 else 1))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        self.prunable = {name: ("shortcut" if ".shortcut." in name else "conv")
                         for name, p in self.named_parameters() if p.dim() == 4}
        self.prunable["fc.weight"] = "output"

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


BUILDERS = {
    "lenet_300_100": LeNet300100,
    "lenet5": LeNet5,
    "conv2": lambda **kw: ConvNet(1, **kw),
    "conv4": lambda **kw: ConvNet(2, **kw),
    "conv6": lambda **kw: ConvNet(3, **kw),
    "conv8": lambda **kw: ConvNet(4, **kw),
    "vgg19": VGG19,
    "resnet20": ResNet20,
}


def initialize(model: nn.Module, init: str, generator: torch.Generator, keep: float = 1.0) -> None:
    """Draw every conv/linear weight from `init` (biases 0, batch norm 1/0), from `generator` only.

    The `_scaled` inits are Ramanujan et al.'s for a subnetwork that keeps the fraction `keep` of each
    layer: the std (or the constant) divided by sqrt(keep), so that the kept weights' sums have the
    variance that Kaiming's rule gives the whole layer. This is the paper's meaning; the official code
    (allenai/hidden-networks utils/builder.py, `fan * (1 - prune_rate)`) divides by sqrt(1 - k) since its
    prune_rate came to mean the fraction kept (its issue #9); the two agree only at k = 0.5."""
    scale = 1.0 / math.sqrt(keep) if init.endswith("_scaled") else 1.0
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            w = module.weight
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(w)
            with torch.no_grad():
                if init == "glorot_normal":  # = Xavier normal
                    w.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)
                elif init in ("kaiming_normal", "kaiming_normal_scaled"):
                    w.normal_(0.0, scale * math.sqrt(2.0 / fan_in), generator=generator)
                elif init == "kaiming_uniform":
                    bound = math.sqrt(6.0 / fan_in)
                    w.uniform_(-bound, bound, generator=generator)
                elif init in ("signed_kaiming_constant", "signed_kaiming_constant_scaled"):
                    signs = torch.randint(0, 2, w.shape, generator=generator, dtype=w.dtype) * 2 - 1
                    w.copy_(signs * scale * math.sqrt(2.0 / fan_in))
                else:
                    raise ValueError(f"unknown init '{init}'; choose one of {', '.join(INITS)}")
                if module.bias is not None:
                    module.bias.zero_()
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


INITS = ("glorot_normal", "kaiming_normal", "kaiming_uniform", "signed_kaiming_constant", "kaiming_normal_scaled",
         "signed_kaiming_constant_scaled")


WIDE = ("conv2", "conv4", "conv6", "conv8")  # the nets with a width multiplier


def build(name: str, *, init: str = "glorot_normal", seed: int = 0, in_shape=(1, 28, 28),
          num_classes: int = 10, dropout: float = 0.0, keep: float = 1.0, width: float = 1.0) -> nn.Module:
    """A freshly initialised model; the same (name, init, seed) gives the same weights on any device.
    `keep` is the kept fraction the `_scaled` inits scale for (initialize); `width` multiplies every layer's
    width of the conv nets (WIDE)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown model '{name}'; choose one of {', '.join(BUILDERS)}")
    if init not in INITS:
        raise ValueError(f"unknown init '{init}'; choose one of {', '.join(INITS)}")
    if width != 1.0 and name not in WIDE:
        raise ValueError(f"width={width}: only {', '.join(WIDE)} have a width multiplier, not {name}")
    extra = {"width": width} if name in WIDE else {}
    model = BUILDERS[name](in_shape=tuple(in_shape), num_classes=num_classes, dropout=dropout, **extra)
    if not 0 < keep <= 1:
        raise ValueError(f"keep={keep}: the fraction of weights kept must lie in (0, 1]")
    initialize(model, init, torch.Generator().manual_seed(seed), keep)
    return model
