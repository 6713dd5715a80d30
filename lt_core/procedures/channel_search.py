"""Early-Bird's structured search (You et al. 2020) on the procedure contract: train a batch-normalised
network with an L1 penalty on its batch-norm scales, and once every `mask_every` steps compute the channel
mask each pruning ratio would give now (the channels with the smallest |scale| over all layers removed:
lt_core/sparsity/early_bird.channel_masks); the Early-Bird ticket of a ratio is drawn where the newest mask
is within `settle_threshold` (a fraction of channels) of each of the `settle_window` masks before it.

Units: Unit(trial, 0, "search"), one dense network a trial. Its summary holds, per ratio, the iteration at
which the mask settled (None if never) and the distance of every recorded mask to every other (the paper's
distance-matrix figure); its tensors, the channel masks themselves (bit-packed in a recording).

`ticket_controls` adds the drawn tickets, per ratio i (level i + 1), each a channel-pruned network
(early_bird.channel_pruning) trained for the search's schedule from the search's own initial weights, as
Frankle & Carbin reset a ticket: "early" the mask where the rule fired (the last one where it never did),
"end" the mask at the end of the search (network slimming's ticket); "reinit" the early mask on fresh
weights. They train with the search's bn_l1, as the authors' retraining keeps its sparsity penalty, and
read only the search's stored masks, so a recorded search goes on elsewhere without weights.
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
    ticket_controls: tuple[str, ...] = ()        # any of early, end, reinit: the drawn tickets trained

    EXTENT = ("ratios", "mask_every", "settle_threshold", "settle_window", "ticket_controls")  # not trained
    RULES = {"bn_l1": at_least(0.0), "mask_every": at_least(1), "settle_window": at_least(1),
             "ratios": Rule(lambda r: 0 < r < 1, "in (0, 1) (the fraction of channels removed)"),
             "settle_threshold": Rule(lambda t: 0 < t <= 1, "in (0, 1] (a fraction of channels)")}

    def check(self, cfg: Experiment) -> None:
        raise_first([
            (not self.ratios, "'ratios' is empty: name at least one fraction of channels to remove"),
            (self.mask_every > cfg.iterations, f"'mask_every' is {self.mask_every}; at most iterations "
                                               f"({cfg.iterations}), or no mask is recorded before the end"),
            (bool(set(self.ticket_controls) - set(TICKETS)), f"'ticket_controls' is {list(self.ticket_controls)}; "
                                                             f"name any of {', '.join(TICKETS)}"),
        ])


TICKETS = ("early", "end", "reinit")


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
        cfg = self.cfg
        return [u for trial in range(cfg.trials) for u in
                [Unit(trial, 0, "search")] + [Unit(trial, i + 1, c) for i in range(len(cfg.ratios))
                                              for c in TICKETS if c in cfg.ticket_controls]]

    def needs(self, unit: Unit) -> list[Unit]:
        return [] if unit.control == "search" else [Unit(unit.trial, 0, "search")]

    def reads_weights(self, unit: Unit, masks_known: bool = False) -> list[Unit]:
        return []  # a ticket re-derives the search's initial weights from the seed and reads its masks

    def resume_tensors(self, unit: Unit) -> tuple[str, ...]:
        return ("channels",) if unit.control == "search" else ()

    def run_unit(self, unit: Unit, store, data, on_step=None) -> None:
        if unit.control != "search":
            return self.run_ticket(unit, store, data, on_step)
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
        tensors = {"channels": {channel_key(r, step, n): m[n] for step, masks in recorded
                                for r, m in masks.items() for n in m}}
        store.save_unit(unit, result.rows, summary, tensors)

    def drawn(self, unit: Unit, store) -> tuple[dict, dict]:
        """A ticket's channel mask (bn scale name -> bool) and where it was drawn: the rule's point on the
        search's stored masks (early, reinit; the end where it never fired), or the end (end). The point is
        judged again from the masks, so it follows this run's settle_threshold and settle_window."""
        cfg, ratio = self.cfg, self.cfg.ratios[unit.level - 1]
        by_step: dict[int, dict] = {}
        for key, m in store.load_tensor(Unit(unit.trial, 0, "search"), "channels").items():
            r, step, name = parse_channel_key(key)
            if r == f"{ratio:g}":
                by_step.setdefault(step, {})[name] = m
        steps = sorted(by_step)
        masks = [Mask(by_step[s]) for s in steps]
        e = early_bird.settled_at(masks, cfg.settle_threshold, cfg.settle_window)
        i = len(steps) - 1 if unit.control == "end" or e is None else e
        return dict(masks[i]), {"ratio": ratio, "mask_drawn_iteration": steps[i], "mask_settled": e is not None,
                                "distance_to_end_mask": early_bird.distance(masks[i], masks[-1])}

    def run_ticket(self, unit: Unit, store, data, on_step=None) -> None:
        cfg = self.cfg
        seed = derive_seed(cfg.seed, unit.trial)  # the search's: its theta_0 and its batches
        channels, where = self.drawn(unit, store)
        init = derive_seed(seed, "init") if unit.control != "reinit" else derive_seed(seed, "reinit", unit.level)
        model = new_model(cfg, init)
        mask, frozen = early_bird.channel_pruning(model, channels)
        data_seed = derive_seed(seed, "data") % 2**31
        started = time.perf_counter()
        result = train(model, mask, data, cfg, data_seed=data_seed, on_step=on_step, scale_l1=cfg.bn_l1,
                       frozen=frozen)
        seconds = time.perf_counter() - started
        removed = sum(int((~m).sum()) for m in channels.values())
        summary = unit_summary(unit, mask, result.rows, seconds=seconds, steps=cfg.iterations, seed=seed,
                               data_seed=data_seed, device=str(data.x_train.device), **where,
                               channels_removed=removed)
        store.save_unit(unit, result.rows, summary, {})


def channel_key(ratio: float, step: int, name: str) -> str:
    """How the search stores one channel mask: '<ratio>:<iteration>:<batch-norm scale name>'."""
    return f"{ratio:g}:{step}:{name}"


def parse_channel_key(key: str) -> tuple[str, int, str]:
    """(ratio as written, iteration, scale name) of a `channel_key`."""
    ratio, step, name = key.split(":", 2)
    return ratio, int(step), name


def settling(recorded: list[tuple[int, dict]], ratio: float, threshold: float, window: int) -> dict:
    """One ratio's trajectory: where Early-Bird's rule fired (None if never), the recorded iterations, and
    the distance of every mask to every other (fractions of all channels, rounded to 1e-5)."""
    matrix = early_bird.distance_matrix([m[ratio] for _, m in recorded])
    e = early_bird.settle_index(matrix, threshold, window)
    return {"ratio": ratio, "settled_iteration": recorded[e][0] if e is not None else None,
            "iterations": [step for step, _ in recorded], "matrix": early_bird.rounded(matrix)}
