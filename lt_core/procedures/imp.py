"""Iterative magnitude pruning with its controls, trial by trial, skipping every unit already stored.

Per trial t (all seeds derive from (cfg.seed, t)):
  level 0   the dense network trained from theta_0; with rewind_iteration k > 0 its state after k steps is
            kept as theta_k (Frankle et al. 2019's late resetting); otherwise theta_k = theta_0.
  level l   ticket : mask_l = one magnitude round on the ticket of level l-1 (trained weights, mask_{l-1});
                     train from theta_k under mask_l.
            reinit : mask_l, fresh weights from the init distribution (one seed per level and draw).
            random : a random mask with mask_l's per-layer counts, theta_k (the random sparse subnetwork).
            oneshot: the trained dense network pruned in one step to level l's counts, theta_k (l >= 2:
                     at level 1 one-shot and iterative pruning are the same network).
            early  : the mask the level-(l-1) ticket's trajectory (mask_every) settled at while it trained
                     (Early-Bird's rule on magnitude masks; its end where it never settled), theta_k: the
                     unstructured Early-Bird analogue, against the ticket's mask drawn at the end. Draws
                     1, 2, ...: the trajectory's masks at the early_draws iterations, reset alike.
            twin   : the level's ticket trained again from its start under other data order and augmentation
                     (from W_k at level 0 with k > 0: the dense network's continuation from step k);
            barrier: no training: the test error along the line between the ticket and its twin
                     (lt_core/training/interpolation.py), and its barrier (Frankle et al. 2020's instability).
            twin and barrier also run at level 0, the dense network's stability to SGD noise; there draws
                     d >= 1 start from the dense run's state at twin_iterations[d-1] (instability against k).
With rewind_schedule continue, every network rewound to theta_k trains steps k..T on the dense run's
schedule and batches. stability_distance: each level >= 1 unit records its distance to the trained dense
network on its survivors (Frankle et al. 2019's stability to pruning; lt_core/sparsity/stability.py).
Every unit but a twin trains on the same batches in the same order (the data seed depends on the trial only).

`ImpProcedure` is this on the procedure contract (lt_core/procedures/base.py); `Trial` holds what one
trial's units share.
"""

from __future__ import annotations

import hashlib
import time

from dataclasses import dataclass, field

import torch

from ..checks import check_rules, one_of
from ..config import ConfigError, Experiment
from ..data import datasets
from ..nets import models
from ..provenance import provenance, start_weights_sha256
from ..sparsity import early_bird, pruning, stability
from ..sparsity.masks import Mask
from ..training import interpolation, stacked
from ..training.loop import DeviceData, check_batches, train
from .base import Procedure, Unit, register

SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
SHAPES.update({name: SHAPES[base] for name, (base, *_) in datasets.SUBSETS.items()})


def derive_seed(*parts) -> int:
    """A 63-bit seed from any parts; independent streams for init, data, reinit and random masks."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


def units(cfg: Experiment) -> list[Unit]:
    """Every unit of the experiment, in the order they are trained."""
    out = []
    twins = ["twin", "barrier"] if "twin" in cfg.controls else []
    for trial in range(cfg.trials):
        for level in range(cfg.levels + 1):
            out.append(Unit(trial, level, "ticket"))
            if level == 0:
                out += [Unit(trial, 0, c, d) for d in range(len(cfg.twin_iterations) + 1) for c in twins]
            if level not in levels_with_controls(cfg):
                continue
            if "reinit" in cfg.controls:
                out += [Unit(trial, level, "reinit", d) for d in range(cfg.reinit_draws)]
            if "random" in cfg.controls:
                out.append(Unit(trial, level, "random"))
            if "oneshot" in cfg.controls and level >= 2:
                out.append(Unit(trial, level, "oneshot"))
            if "early" in cfg.controls:  # draw 0 where the mask settled, then one per early_draws iteration
                out += [Unit(trial, level, "early", d) for d in range(len(cfg.early_draws) + 1)]
            out += [Unit(trial, level, c) for c in twins]
    return out


def start_iteration(cfg: Experiment, unit: Unit) -> int:
    """The step a unit's training starts at: k for a twin (it continues its ticket's training from W_k) and,
    with rewind_schedule continue, for every unit rewound to theta_k; otherwise 0."""
    if unit.control == "twin" and unit.draw:
        return cfg.twin_iterations[unit.draw - 1]
    if unit.control == "twin" or (unit.level > 0 and cfg.rewind_schedule == "continue"):
        return cfg.rewind_iteration
    return 0


def levels_with_controls(cfg: Experiment) -> list[int]:
    chosen = cfg.control_levels or range(1, cfg.levels + 1)
    return sorted(level for level in set(chosen) if 1 <= level <= cfg.levels)


def new_model(cfg: Experiment, seed: int, *, dropout: float | None = None, keep: float = 1.0):
    """The experiment's network, initialised from `seed` (dropout: the configuration's unless given; keep:
    the kept fraction of edge-popup's scaled inits); its names are checked against the registries here
    (config.py cannot import them), so a bad one is an error naming the parameter before anything runs."""
    check_rules(cfg, {"dataset": one_of(SHAPES), "model": one_of(models.BUILDERS), "init": one_of(models.INITS)})
    if cfg.width != 1.0 and cfg.model not in models.WIDE:
        raise ConfigError(f"'width' is {cfg.width}; only {', '.join(models.WIDE)} have a width multiplier, "
                          f"not {cfg.model}")
    return models.build(cfg.model, init=cfg.init, seed=seed, in_shape=SHAPES[cfg.dataset],
                        dropout=cfg.dropout if dropout is None else dropout, keep=keep, width=cfg.width,
                        num_classes=datasets.num_classes(cfg.dataset))


def plan(cfg: Experiment) -> list[float]:
    """Check what can be checked before any data is loaded; returns the density of each level."""
    check_batches(cfg)
    model = new_model(cfg, 0)
    spec = pruning.PruneSpec.of(model, cfg)
    sizes = {name: model.get_parameter(name).numel() for name in model.prunable}
    densities = pruning.planned_densities(sizes, spec, cfg.levels)
    # a round removes r * n weights rounded half up: once that rounds to 0 in every tensor, every later
    # level is the same network again (400 units of levels=100 trained nothing new)
    stuck = next((level for level in range(1, len(densities)) if densities[level] == densities[level - 1]), None)
    if stuck is not None:
        raise ConfigError(f"'levels' is {cfg.levels}; at these rates the weight counts stop falling after level "
                          f"{stuck - 1} (density {100 * densities[stuck - 1]:.3g}%: a round removes no weight), "
                          f"so use levels <= {stuck - 1}")
    return densities


@dataclass
class Start:
    """A unit ready to train (Trial.prepare): its mask and initialised model, the sha256 of that start, the
    iteration it starts at, its data seed, what the dense network keeps (theta_k, the twins' starts) and a
    ticket's mask trajectory (watch appends to it)."""
    mask: Mask
    model: torch.nn.Module
    start_weights: str
    start: int
    data_seed: int
    rewind: tuple[int, ...] = ()
    twins: tuple[int, ...] = ()
    watch: tuple | None = None
    trajectory: list = field(default_factory=list)


class Trial:
    """The state a trial's units share: theta_k, the masks, the ticket's trained weights."""

    def __init__(self, cfg: Experiment, store, trial: int, data: DeviceData, on_step=None):
        self.cfg, self.store, self.trial, self.data, self.on_step = cfg, store, trial, data, on_step
        self.seed = derive_seed(cfg.seed, trial)
        self.data_seed = derive_seed(self.seed, "data") % (2**31)
        self.twin_seed = derive_seed(self.seed, "twin") % (2**31)  # the twins' data order and augmentation
        self.spec = pruning.PruneSpec.of(new_model(cfg, 0), cfg)
        self.masks: dict[int, Mask] = {}
        self._trajectories: dict[int, tuple] = {}  # the last level asked -> Trial.trajectory

    def ticket_mask(self, level: int) -> Mask:
        if level not in self.masks:
            if level == 0:
                self.masks[0] = Mask.ones_like(new_model(self.cfg, 0))
            elif self.store.has(Unit(self.trial, level, "ticket"), "mask"):  # stored, or kept by a resume
                # through the store: verified against the unit's summary when it has one
                self.masks[level] = Mask(self.store.load_tensor(Unit(self.trial, level, "ticket"), "mask"))
            else:
                previous = self.store.load_tensor(Unit(self.trial, level - 1, "ticket"), "final")
                self.masks[level] = pruning.magnitude(previous, self.ticket_mask(level - 1), self.spec)
        return self.masks[level]

    @staticmethod
    def needs(unit: Unit) -> list[Unit]:
        """The units whose stored results unit_start reads for `unit` (lt_core/runs/pool.py starts a unit
        once these are stored): the level-(l-1) ticket for a ticket and the reinit and random controls of
        level l (mask_l; theta_k through the chain), the dense network for a one-shot control."""
        if unit.level == 0:
            return []
        if unit.control == "oneshot":
            return [Unit(unit.trial, 0, "ticket")]
        return [Unit(unit.trial, unit.level - 1, "ticket")]

    def early_mask(self, level: int, draw: int = 0) -> tuple[Mask, dict]:
        """The early ticket's mask at `level` (the unstructured Early-Bird analogue): of the masks the level-(l-1)
        ticket's trajectory recorded (what the next round would prune to, every mask_every steps), the one at
        which it settled (early_bird.settled_at); the last one, its end, where it never settled; draw d >= 1:
        the one at iteration early_draws[d-1]. With where it was drawn, and its distance to the level's
        ticket mask (drawn at the end)."""
        steps, masks, e = self.trajectory(level - 1)
        drawn = e if e is not None else len(masks) - 1
        if draw:
            drawn = steps.index(self.cfg.early_draws[draw - 1])
        mask, trained = masks[drawn], self.ticket_mask(level - 1)  # the mask the trajectory's ticket trained under
        return mask, {"mask_drawn_iteration": steps[drawn], "mask_settled": e is not None,
                      "distance_to_final_mask": early_bird.distance(mask, self.ticket_mask(level), trained)}

    def trajectory(self, level: int) -> tuple[list[int], list[Mask], int | None]:
        """The level-`level` ticket's recorded trajectory: its iterations, its masks and the index at which
        it settled (early_bird.settled_at, within the ticket's mask). Read and judged once for all of the
        next level's early draws, each of which asks twice (its start and its summary)."""
        if level not in self._trajectories:
            trajectory = self.store.load_tensor(Unit(self.trial, level, "ticket"), "trajectory")
            steps = sorted(trajectory, key=int)
            masks = [Mask(trajectory[k]) for k in steps]
            e = early_bird.settled_at(masks, self.cfg.settle_threshold, self.cfg.settle_window,
                                      self.ticket_mask(level))
            self._trajectories = {level: ([int(k) for k in steps], masks, e)}  # one level's: 6 MB for LeNet
        return self._trajectories[level]

    def unit_start(self, unit: Unit) -> tuple[Mask, torch.nn.Module]:
        """The mask and the initialised model a unit trains."""
        cfg = self.cfg
        if unit.control == "oneshot":  # from the trained dense network alone, not from the chain of tickets
            dense = self.store.load_tensor(Unit(self.trial, 0, "ticket"), "final")
            mask = pruning.oneshot(dense, self.ticket_mask(0), self.spec, unit.level)
        elif unit.control == "early":  # reset as the ticket is: theta_0, or theta_k with late resetting
            mask, _ = self.early_mask(unit.level, unit.draw)
        else:
            mask = self.ticket_mask(unit.level)
        if unit.control == "reinit":
            return mask, new_model(cfg, derive_seed(self.seed, "reinit", unit.level, unit.draw))
        model = new_model(cfg, derive_seed(self.seed, "init"))  # theta_0
        if unit.control == "twin" and unit.draw:  # the dense run's state at twin_iterations[draw-1]
            model.load_state_dict(self.store.load_trial_tensor(self.trial, f"state_{start_iteration(cfg, unit)}"))
        elif (unit.level > 0 or unit.control == "twin") and cfg.rewind_iteration > 0:
            model.load_state_dict(self.store.load_trial_tensor(self.trial, "rewind"))  # theta_k
        if unit.control == "random":
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "random", unit.level))
            mask = pruning.random_like(mask, generator)
        return mask, model

    def prepare(self, unit: Unit) -> "Start":
        """What a unit trains from and how (its model and mask, where it starts, its batches, what it keeps)."""
        cfg = self.cfg
        mask, model = self.unit_start(unit)
        start = Start(mask, model, start_weights_sha256(model), start_iteration(cfg, unit),  # theta_0, theta_k
                      self.twin_seed if unit.control == "twin" else self.data_seed)         # or a reinit's draw
        if cfg.mask_every and unit.control == "ticket":  # (iteration, the mask the next round would prune to)
            names = list(model.prunable)
            start.watch = (cfg.mask_every, lambda step, state: start.trajectory.append(
                (step, pruning.magnitude({n: state[n] for n in names}, mask, self.spec))))
        if unit.level == 0 and unit.control == "ticket":  # the dense network keeps theta_k and the twins' starts
            start.rewind = (cfg.rewind_iteration,) if cfg.rewind_iteration else ()
            start.twins = tuple(cfg.twin_iterations)
        return start

    def run_unit(self, unit: Unit) -> None:
        if unit.control == "barrier":
            return self.run_barrier(unit)
        s = self.prepare(unit)
        started = time.perf_counter()
        result = train(s.model, s.mask, self.data, self.cfg, data_seed=s.data_seed, keep_iterations=s.rewind + s.twins,
                       on_step=self.on_step, watch=s.watch, start_iteration=s.start)
        self.finish(unit, s, result, time.perf_counter() - started)

    def finish(self, unit: Unit, s: "Start", result, seconds: float, together: int = 1) -> None:
        """Store a trained unit: theta_k and the twins' starts (the dense network), its tensors, its summary.
        together > 1: it trained in one computation with together - 1 others (lt_core/training/stacked.py),
        and `seconds` is its share of their time (the summary's `stacked`)."""
        cfg, mask, model = self.cfg, s.mask, s.model
        for k in s.rewind:
            self.store.save_trial_tensor(self.trial, "rewind", result.kept_states[k])
        for k in s.twins:
            self.store.save_trial_tensor(self.trial, f"state_{k}", result.kept_states[k])
        tensors = {"mask": dict(mask)}
        if unit.control == "ticket":
            tensors["final"] = {n: result.final_state[n] for n in model.prunable}
        if unit.control in ("ticket", "twin") and "twin" in cfg.controls:  # what the barrier unit interpolates
            tensors["state"] = result.final_state
        settled = self.early_mask(unit.level, unit.draw)[1] if unit.control == "early" else {}
        if s.trajectory:
            tensors["trajectory"] = {str(step): dict(m) for step, m in s.trajectory}
            settled = settling(s.trajectory, cfg.settle_threshold, cfg.settle_window, mask)
        if cfg.stability_distance and unit.level > 0:
            settled.update(self.distance_to_dense(result.final_state, mask))
        if together > 1:
            settled["stacked"] = together
        summary = unit_summary(unit, mask, result.rows, seconds=seconds, steps=cfg.iterations - s.start,
                               seed=self.seed, data_seed=s.data_seed, device=str(self.data.x_train.device),
                               start_iteration=s.start, start_weights_sha256=s.start_weights, **settled)
        self.store.save_unit(unit, result.rows, summary, tensors)

    @staticmethod
    def needs_of_barrier(unit: Unit) -> list[Unit]:
        """The two copies a barrier unit interpolates: the level's ticket and the twin of its draw."""
        return [Unit(unit.trial, unit.level, "ticket"), Unit(unit.trial, unit.level, "twin", unit.draw)]

    def distance_to_dense(self, state: dict, mask: Mask) -> dict:
        """Stability to pruning: the L2 distance of a unit's trained weights to the trained dense network's
        on the unit's survivors, and the dense weights' norm there (the scale to read it against)."""
        dense = self.store.load_tensor(Unit(self.trial, 0, "ticket"), "final")
        return {"stability_distance": stability.distance(state, dense, mask), "stability_norm": stability.norm(dense, mask)}

    def run_barrier(self, unit: Unit) -> None:
        """The test error at interpolation_points evenly spaced points between the level's ticket (alpha 0)
        and its twin (alpha 1), its barrier, and the two copies' distance (stability to data order)."""
        cfg, copies = self.cfg, self.needs_of_barrier(unit)
        a, b = (self.store.load_tensor(u, "state") for u in copies)
        mask = self.ticket_mask(unit.level)
        started = time.perf_counter()
        path = interpolation.path_rows(lambda: new_model(cfg, 0), a, b, mask, self.data,
                                       points=cfg.interpolation_points, bn_examples=cfg.bn_examples,
                                       on_point=self.on_step)
        seconds = time.perf_counter() - started
        errors, losses = [1 - acc for _, _, acc in path], [loss for _, loss, _ in path]
        extra = {"alphas": [alpha for alpha, _, _ in path], "path_test_errors": errors, "path_test_losses": losses,
                 "error_barrier": stability.barrier(errors), "loss_barrier": stability.barrier(losses),
                 "copies_distance": stability.distance(a, b, mask), "copies_norm": stability.norm(a, mask)}
        rows = [(i, "path", loss, acc) for i, (_, loss, acc) in enumerate(path)]  # iteration: the point's index
        summary = unit_summary(unit, mask, [], seconds=seconds, steps=len(path), seed=self.seed,
                               data_seed=self.twin_seed, device=str(self.data.x_train.device), **extra)
        self.store.save_unit(unit, rows, summary, {})


def unit_summary(unit: Unit, mask: Mask, rows, *, seconds: float, steps: int, seed: int, data_seed: int,
                 device: str, **extra) -> dict:
    """What every procedure's summary.json says of a unit: its name, density, early stop and end, what the
    procedure adds (`extra`), its cost, its seeds and where it ran."""
    return {"trial": unit.trial, "level": unit.level, "control": unit.control, "draw": unit.draw,
            "density": mask.density(), "layer_densities": mask.layer_densities(), **early_stop(rows), **extra,
            "seconds": round(seconds, 3), "steps_per_second": round(steps / seconds, 1), "seed": seed,
            "data_seed": data_seed, **provenance(device)}


def settling(trajectory: list[tuple[int, Mask]], threshold: float, window: int, trained: Mask) -> dict:
    """When a ticket's next-round mask settled during its training: the iteration of early_bird.settled_at
    (None if never), per recorded iteration its distance to the mask before and to the final one, and the
    distance of every recorded mask to every other (You et al.'s distance-matrix figure; rounded to 1e-5).
    Distances are fractions of the weights the ticket trains (`trained`, its mask): the only positions in
    which the next round's masks can differ (early_bird.distance)."""
    matrix = early_bird.distance_matrix([m for _, m in trajectory], trained)  # every distance below is in it
    e = early_bird.settle_index(matrix, threshold, window)
    return {"mask_settled_iteration": trajectory[e][0] if e is not None else None,
            "mask_distances": [[step, matrix[i][i - 1] if i else None, matrix[i][-1]]
                               for i, (step, _) in enumerate(trajectory)],
            "mask_distance_matrix": early_bird.rounded(matrix)}


def early_stop(rows) -> dict:
    """The early-stop iteration is the (first) iteration of minimum validation loss; test accuracy there."""
    val = [(loss, it) for it, split, loss, _ in rows if split == "val"]
    test = {it: acc for it, split, _, acc in rows if split == "test"}
    last = max(test) if test else None
    out = {"final_iteration": last, "final_test_accuracy": test.get(last)}
    if val:
        loss, it = min(val)
        out.update(early_stop_iteration=it, early_stop_val_loss=loss, early_stop_test_accuracy=test.get(it))
    train = {it: acc for it, split, _, acc in rows if split == "train"}
    if train:  # cfg.train_accuracy: at the early stop and at the end
        out.update(early_stop_train_accuracy=train.get(out.get("early_stop_iteration")),
                   final_train_accuracy=train.get(last))
    return out


@register
class ImpProcedure(Procedure):
    """IMP on the contract: the units above, Trial.needs, one Trial per trial and store."""
    name = "imp"

    def __init__(self, cfg: Experiment):
        super().__init__(cfg)
        self._trials: dict[tuple, Trial] = {}
        self._unstackable: str | None = None  # stacked.refusal's reason, "" if the network stacks

    def check(self) -> None:
        plan(self.cfg)

    def outline(self) -> str:
        return "levels: " + ", ".join(f"{i}:{100 * d:.1f}%" for i, d in enumerate(plan(self.cfg)))

    def units(self) -> list[Unit]:
        return units(self.cfg)

    def needs(self, unit: Unit) -> list[Unit]:
        if unit.control == "barrier":  # the two copies it interpolates
            return Trial.needs_of_barrier(unit)
        if unit.control == "twin" and unit.level == 0:  # W_k, which training the dense network stores
            return [Unit(unit.trial, 0, "ticket")] if (self.cfg.rewind_iteration or unit.draw) else []
        return Trial.needs(unit)

    def steps(self, unit: Unit) -> int:
        if unit.control == "barrier":
            return self.cfg.interpolation_points
        return self.cfg.iterations - start_iteration(self.cfg, unit)

    def reads_weights(self, unit: Unit, masks_known: bool = False) -> list[Unit]:
        """A ticket whose mask is not stored prunes the level-(l-1) ticket's trained weights; a one-shot
        control the dense network's; with late resetting every level > 0 starts from theta_k, which training
        level 0 stores. The reinit and random controls read only mask_l, which the level-l ticket stores."""
        if unit.control == "barrier":  # the copies' final states: never recorded
            return Trial.needs_of_barrier(unit)
        if unit.level == 0:
            return self.needs(unit)
        dense = unit.control == "oneshot" or self.cfg.rewind_iteration or self.cfg.stability_distance
        out = {Unit(unit.trial, 0, "ticket")} if dense else set()
        if (unit.control == "ticket" and not masks_known) or unit.control == "early":
            out.add(Unit(unit.trial, unit.level - 1, "ticket"))  # early: its trajectory, never recorded
        return sorted(out)

    def resume_tensors(self, unit: Unit) -> tuple[str, ...]:
        return ("mask",) if unit.control == "ticket" else ()  # the controls' masks are derived from it

    def priority(self, unit: Unit):
        return unit.control != "ticket"  # each trial's chain of tickets is the longest path: tickets first

    def trial(self, store, trial: int, data, on_step=None) -> Trial:
        key = (str(store.dir), trial)
        if key not in self._trials:
            self._trials[key] = Trial(self.cfg, store, trial, data, on_step)
        return self._trials[key]

    def run_unit(self, unit: Unit, store, data, on_step=None) -> None:
        self.trial(store, unit.trial, data, on_step).run_unit(unit)

    def stack_key(self, unit: Unit):
        """Units of equal key may train as one stacked computation: every trained unit that starts at the same
        iteration, of any trial (each keeps its own batches), unless the network cannot be stacked (dropout,
        train_accuracy: stacked.refusal) or the unit watches its masks as it trains (mask_every tickets)."""
        if self._unstackable is None:
            self._unstackable = stacked.refusal(new_model(self.cfg, 0), self.cfg) or ""
        if self._unstackable or unit.control == "barrier" or (self.cfg.mask_every and unit.control == "ticket"):
            return None
        return start_iteration(self.cfg, unit)

    def run_units(self, units_: list[Unit], store, data, on_step=None) -> None:
        """Train units of one stack_key as one computation (lt_core/training/stacked.py); each is stored as
        run_unit stores it, with `stacked` (how many trained together) and its share of their seconds."""
        trials = [self.trial(store, u.trial, data, on_step) for u in units_]
        starts = [t.prepare(u) for t, u in zip(trials, units_)]
        began = time.perf_counter()
        keep = sorted({k for s in starts for k in s.rewind + s.twins})
        results = stacked.train_stacked([s.model for s in starts], [s.mask for s in starts], data, self.cfg,
                                        data_seeds=[s.data_seed for s in starts], start_iteration=starts[0].start,
                                        keep_iterations=tuple(keep), on_step=on_step)
        seconds = (time.perf_counter() - began) / len(units_)
        for t, u, s, result in zip(trials, units_, starts, results):
            t.finish(u, s, result, seconds, together=len(units_))
