"""Early-Bird's structured search (You et al. 2020) on the procedure contract: train a batch-normalised
network with an L1 penalty on its batch-norm scales, and once every `mask_every` steps compute the channel
mask each pruning ratio would give now (the channels with the smallest |scale| over all layers removed:
lt_core/sparsity/early_bird.channel_masks); the Early-Bird ticket of a ratio is drawn where the newest mask
is within `settle_threshold` (a fraction of channels) of each of the `settle_window` masks before it.

Units: Unit(trial, 0, "search"), one dense network a trial. Its summary holds, per ratio, the iteration at
which the mask settled (None if never) and the distance of every recorded mask to every other (the paper's
distance-matrix figure); its tensors, the channel masks themselves (bit-packed in a recording). Training the
drawn tickets (the channel-pruned networks) against those drawn at the end is the next stage, not built;
the engine trains a channel mask already (early_bird.channel_pruning, loop.train's `frozen`).
"""

from __future__ import annotations

import dataclasses
import time

from torch import nn

from ..checks import Rule, at_least, raise_first
from ..config import ConfigError, Experiment, section
from ..sparsity import early_bird
from ..sparsity.masks import Mask
from ..training.loop import train
from .base import Procedure, Unit, register
from .imp import derive_seed, new_model, unit_summary


@section("channel_search")
@dataclasses.dataclass(frozen=True)
class ChannelSearch:
    """The search's fields (the shared ones give data, model, init, optimizer and schedule)."""
    bn_l1: float = 1e-4                          # L1 penalty on the batch-norm scales (You et al.: 1e-4)
    ratios: tuple[float, ...] = (0.3, 0.5, 0.7)  # fractions of all channels removed
    mask_every: int = 0                          # steps between recorded masks (the paper: one epoch)
    settle_threshold: float = 0.1
    settle_window: int = 4

    EXTENT = ("ratios", "mask_every", "settle_threshold", "settle_window")  # what is recorded, not trained
    RULES = {"bn_l1": at_least(0.0), "mask_every": at_least(1), "settle_window": at_least(1),
             "ratios": Rule(lambda r: 0 < r < 1, "in (0, 1) (the fraction of channels removed)"),
             "settle_threshold": Rule(lambda t: 0 < t <= 1, "in (0, 1] (a fraction of channels)")}

    def check(self, cfg: Experiment) -> None:
        raise_first([
            (not self.ratios, "'ratios' is empty: name at least one fraction of channels to remove"),
            (self.mask_every > cfg.iterations, f"'mask_every' is {self.mask_every}; at most iterations "
                                               f"({cfg.iterations}), or no mask is recorded before the end"),
        ])


def scales(model: nn.Module) -> list[str]:
    """Names of the batch-norm scale parameters (`<module>.weight`) whose channels are ranked."""
    return [f"{name}.weight" for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]


@register
class ChannelSearchProcedure(Procedure):
    name = "channel_search"

    def check(self) -> None:
        if not scales(new_model(self.cfg, 0)):
            raise ConfigError(f"'model' is {self.cfg.model}, which has no batch-norm layers: the search ranks "
                              "channels by their batch-norm scales (use resnet20 or vgg19)")

    def outline(self) -> str:
        self.check()
        return "ratios: " + ", ".join(f"{r:g}" for r in self.cfg.ratios)

    def units(self) -> list[Unit]:
        return [Unit(trial, 0, "search") for trial in range(self.cfg.trials)]

    def resume_tensors(self, unit: Unit) -> tuple[str, ...]:
        return ("channels",)

    def run_unit(self, unit: Unit, store, data, on_step=None) -> None:
        cfg = self.cfg
        seed = derive_seed(cfg.seed, unit.trial)
        model = new_model(cfg, derive_seed(seed, "init"))
        data_seed = derive_seed(seed, "data") % 2**31
        names = scales(model)
        recorded: list[tuple[int, dict]] = []  # (iteration, ratio -> channel mask)
        watch = (cfg.mask_every, lambda step, state: recorded.append(
            (step, {r: Mask(early_bird.channel_masks({n: state[n] for n in names}, r)) for r in cfg.ratios})))
        dense = Mask.ones_like(model)
        started = time.perf_counter()
        result = train(model, dense, data, cfg, data_seed=data_seed, on_step=on_step, watch=watch,
                       scale_l1=cfg.bn_l1)
        seconds = time.perf_counter() - started
        summary = unit_summary(unit, dense, result.rows, seconds=seconds, steps=cfg.iterations,
                               seed=seed, data_seed=data_seed, device=str(data.x_train.device),
                               channels=sum(model.get_parameter(n).numel() for n in names),
                               ratios=[settling(recorded, r, cfg.settle_threshold, cfg.settle_window)
                                       for r in cfg.ratios])
        tensors = {"channels": {f"{r:g}:{step}:{n}": m[n] for step, masks in recorded
                                for r, m in masks.items() for n in m}}
        store.save_unit(unit, result.rows, summary, tensors)


def settling(recorded: list[tuple[int, dict]], ratio: float, threshold: float, window: int) -> dict:
    """One ratio's trajectory: where Early-Bird's rule fired (None if never), the recorded iterations, and
    the distance of every mask to every other (fractions of all channels, rounded to 1e-5)."""
    matrix = early_bird.distance_matrix([m[ratio] for _, m in recorded])
    e = early_bird.settle_index(matrix, threshold, window)
    return {"ratio": ratio, "settled_iteration": recorded[e][0] if e is not None else None,
            "iterations": [step for step, _ in recorded], "matrix": early_bird.rounded(matrix)}
