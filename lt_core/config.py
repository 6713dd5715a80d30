"""Experiment configuration: one frozen dataclass, read from `params/<experiment>.yaml` and a profile.

A params file has four top-level keys, so that papermill can pass it straight to a chapter notebook with
`-f params/<experiment>.yaml` (it injects exactly these four names):

    experiment: lenet_mnist        # names the run folder
    profile: quick                 # the profile used when none is asked for
    base: {...}                    # the paper's settings
    profiles: {smoke: {...}, quick: {...}, paper: {}}   # overrides of base, per profile

`base` states, at one level, the shared fields (data, model, init, optimizer, schedule, evaluation, seed:
`Experiment` below), `procedure:` (default `imp`) and that procedure's own fields (its section: `Imp` below
for iterative magnitude pruning; other procedures register theirs with `@section(name)`). A field that is
neither shared nor the procedure's is one error naming the field and the procedure.

Runs are named by a hash of the fields that differ from the defaults (open_lth's trick: adding a new
field with a default keeps every old name valid), leaving out the fields that only say how much to run
(`EXTENT` and each section's): more trials or levels extend a run instead of starting a new one.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .checks import (ConfigError, Rule, above, at_least, check_rules, coerce, field_types, folder_name, fraction,
                     one_of, raise_first)

__all__ = ["ConfigError", "Experiment", "Imp", "load", "make", "parse_overrides", "read", "resolve", "section"]


@dataclass(frozen=True)
class Imp:
    """Iterative magnitude pruning with its controls and late resetting (lt_core/procedures/imp.py)."""
    pruning: str = "layerwise"        # layerwise | global
    rates: tuple[tuple[str, float], ...] = (("fc", 0.2), ("output", 0.1))  # per layer kind, per round
    rewind_iteration: int = 0         # 0: reset to theta_0; k > 0: late resetting to theta_k
    # restart: a network rewound to theta_k trains `iterations` steps from step 0's learning rate and batch
    # (this book's runs before the late-resetting chapter); continue: steps k..iterations with the dense
    # run's learning rate and batch at each step (the papers' and open_lth's late resetting)
    rewind_schedule: str = "restart"
    # control twin (stability to SGD noise, Frankle et al. 2020): a copy of the level's ticket from the same
    # start (theta_k, or theta_0) under other data order and augmentation, and a barrier unit that evaluates
    # the test error at interpolation_points evenly spaced points between the two (lt_core/training/interpolation.py);
    # bn_examples training images recompute batch-norm statistics at each point (0: keep the interpolated ones)
    interpolation_points: int = 30
    bn_examples: int = 5000
    # the dense network's further twins (level 0): twin draw d >= 1 starts from the dense run's state at
    # twin_iterations[d-1] and trains from there, each with its barrier draw: instability against k from one
    # dense run (the sparse levels' twins start where their tickets do, at rewind_iteration)
    twin_iterations: tuple[int, ...] = ()
    # extent
    levels: int = 2                   # pruning rounds after the dense level 0
    controls: tuple[str, ...] = ("ticket", "reinit", "random", "oneshot")
    control_levels: tuple[int, ...] = ()   # levels at which controls run; () = every level
    reinit_draws: int = 1
    # what to record, not what to train (so in the extent too): every mask_every steps of a ticket's training,
    # the mask the next round would prune to, and when it settles (lt_core/sparsity/early_bird.py)
    mask_every: int = 0               # 0: no trajectory
    settle_threshold: float = 0.1     # settled: the newest mask within this distance of each of the
    settle_window: int = 4            # this many masks before it
    # control early's further draws: the previous ticket's trajectory masks at these iterations (multiples
    # of mask_every), trained as early draws 1, 2, ... (draw 0: the mask at which it settled)
    early_draws: tuple[int, ...] = ()
    # stability to pruning (Frankle et al. 2019): every unit of level >= 1 records the L2 distance of its
    # trained weights to the dense network's (level 0) on its mask's survivors
    stability_distance: bool = False

    EXTENT = ("levels", "controls", "control_levels", "reinit_draws", "mask_every", "settle_threshold",
              "settle_window", "early_draws", "stability_distance")
    RULES = {"pruning": one_of(("layerwise", "global")),
             "rates": Rule(lambda r: 0 <= r < 1, "in [0, 1) (the fraction of surviving weights a round removes)"),
             "rewind_iteration": at_least(0), "levels": at_least(0), "reinit_draws": at_least(1),
             "rewind_schedule": one_of(("restart", "continue")), "interpolation_points": at_least(2),
             "bn_examples": at_least(0), "twin_iterations": at_least(0),
             # the default's, early (Early-Bird's, needs mask_every) and twin (with its barrier unit)
             "controls": one_of(controls + ("early", "twin")),
             "control_levels": at_least(1), "mask_every": at_least(0), "settle_window": at_least(1),
             "settle_threshold": Rule(lambda t: 0 < t <= 1, "in (0, 1] (a fraction of positions)"),
             "early_draws": at_least(1)}

    def check(self, cfg: "Experiment") -> None:
        """What the rules above cannot say alone: limits set by other fields. (The levels past which the
        weight counts stop falling need the model's sizes: lt_core/procedures/imp.py, plan.)"""
        beyond = [level for level in self.control_levels if level > self.levels]
        raise_first([
            (self.rewind_iteration > cfg.iterations,
             f"'rewind_iteration' is {self.rewind_iteration}; it must lie in 0..iterations ({cfg.iterations}): "
             "the step of the dense network's training whose weights the tickets start from"),
            ("ticket" not in self.controls,
             f"'controls' is {list(self.controls)}; it must include ticket: the controls are defined by its masks"),
            (bool(beyond), f"'control_levels' contains {beyond}; they must lie in 1..levels ({self.levels}): "
                           "raise levels or drop them"),
            ("early" in self.controls and not self.mask_every,
             "'controls' includes early, whose mask is drawn while the previous level's ticket trains: set "
             "mask_every (e.g. 1000) so that its masks are recorded"),
            ("twin" in self.controls and self.rewind_iteration > 0 and self.rewind_schedule != "continue",
             f"'controls' includes twin with rewind_iteration {self.rewind_iteration}: a twin continues the "
             "ticket's training from step k, so the ticket must too; set rewind_schedule continue"),
            (bool(self.twin_iterations) and "twin" not in self.controls,
             f"'twin_iterations' is {list(self.twin_iterations)}; they are draws of control twin: add twin to controls"),
            (any(k >= cfg.iterations for k in self.twin_iterations),
             f"'twin_iterations' is {list(self.twin_iterations)}; each must lie in 0..iterations-1 "
             f"({cfg.iterations - 1}): a twin trains from there to the end"),
            (bool(self.early_draws) and "early" not in self.controls,
             f"'early_draws' is {list(self.early_draws)}; they are draws of control early: add early to controls"),
            (bool(self.mask_every) and any(i % self.mask_every or i > cfg.iterations for i in self.early_draws),
             f"'early_draws' is {list(self.early_draws)}; each must be a multiple of mask_every "
             f"({self.mask_every}) up to iterations ({cfg.iterations}), where a trajectory mask is recorded"),
        ])


# procedure name -> its section of fields; a procedure module adds its own with `section`
SECTIONS: dict[str, type] = {"imp": Imp}
CONTROLS = Imp.controls
# Shared fields that say how much of an experiment to run, not what it is: left out of the run's name
# (so are each section's EXTENT).
EXTENT = ("experiment", "trials", "device")


def section(name: str):
    """Register a dataclass as the fields of procedure `name` (a class decorator). Its fields must not
    reuse a shared field's name: a params file states both at one level."""
    def register(cls):
        clash = sorted(f.name for f in dataclasses.fields(cls) if f.name in SHARED)
        if clash:
            raise TypeError(f"procedure '{name}' redefines shared fields {clash}")
        SECTIONS[name] = cls
        return cls
    return register


@dataclass(frozen=True)
class Experiment:
    """Shared fields (data, model, init, optimizer, schedule, evaluation, seed) plus `settings`, the
    section of the procedure named by `procedure`. A section's fields read as attributes too:
    `cfg.levels` is `cfg.settings.levels`."""
    experiment: str = "lenet_mnist"
    procedure: str = "imp"
    # data
    dataset: str = "mnist"
    val_size: int = 5000              # held out of the training set (Frankle & Carbin: 5,000)
    split_seed: int = 0
    train_fraction: float = 1.0       # < 1: that share of each class's training examples (lt_core/data/datasets.py)
    augment: bool = False             # CIFAR: random crop (padding 4) + horizontal flip
    # model
    model: str = "lenet_300_100"
    init: str = "glorot_normal"       # the paper's Gaussian Glorot
    dropout: float = 0.0
    width: float = 1.0                # conv nets: every layer's width times this (Ramanujan et al.'s wide nets)
    # training
    optimizer: str = "adam"           # adam | sgd
    lr: float = 1.2e-3
    momentum: float = 0.9             # sgd only
    weight_decay: float = 0.0         # L2 regularisation, through the optimizer (biases included)
    l1_penalty: float = 0.0           # L1 regularisation of the prunable weights: l1_penalty * sign(w) added
                                      # to their gradients (Han et al. 2015 compare it with L2)
    batch_size: int = 60
    iterations: int = 50_000
    warmup_iterations: int = 0        # linear warmup from 0 to lr
    lr_drops: tuple[int, ...] = ()    # iterations at which lr is multiplied by lr_drop_factor
    lr_drop_factor: float = 0.1
    # steps: lr (after any warmup) times lr_drop_factor at each of lr_drops; cosine: from lr to 0 over the
    # iterations (after any warmup), as Ramanujan et al. train their dense baselines with SGD
    lr_schedule: str = "steps"
    eval_every: int = 100
    # False: the test split only where the numbers are read, the early stop and the end, which gives the same
    # early-stop and final numbers as True for fewer evaluations (no test curves). The engine's loop evaluates
    # it at each new validation minimum; edge-popup keeps the scores of the minimum and evaluates once, at the end
    # (lt_core/training/supermask.py), since under its cosine schedule nearly every evaluation is a new minimum
    test_curves: bool = True
    # True: also the training split's loss and accuracy, at the early stop and at the end (Frankle & Carbin's
    # Figure 5 plots train accuracy at early stop), from the weights kept at each new validation minimum
    train_accuracy: bool = False
    seed: int = 0                     # trial t derives all its seeds from (seed, t)
    # extent: how much to run (not part of the run's name)
    trials: int = 1
    device: str = "auto"              # auto | cpu | cuda
    settings: Any = None              # the procedure's section (None: its defaults)

    def __post_init__(self):
        _check_types(self)
        if self.procedure not in SECTIONS:
            raise ConfigError(f"procedure {self.procedure!r} is not one of {', '.join(SECTIONS)}")
        if self.settings is None:
            object.__setattr__(self, "settings", SECTIONS[self.procedure]())
        elif type(self.settings) is not SECTIONS[self.procedure]:
            raise ConfigError(f"settings of type {type(self.settings).__name__} do not belong to procedure "
                              f"'{self.procedure}'")
        _check_types(self.settings)
        check_rules(self, RULES)
        _check_shared(self)
        check_rules(self.settings, getattr(type(self.settings), "RULES", {}))
        self.settings.check(self)

    def __getattr__(self, name):  # only called for names that are not shared fields
        settings = self.__dict__.get("settings")
        if settings is not None and name in _names(type(settings)):
            return getattr(settings, name)
        raise AttributeError(f"an experiment of procedure '{self.__dict__.get('procedure')}' has no "
                             f"parameter '{name}'")

    def changed(self) -> dict:
        """The fields that differ from the defaults, as plain JSON-able values (one flat mapping: shared
        fields and the section's, as a params file states them)."""
        default_shared, default_section = Experiment(), type(self.settings)()
        out = {f.name: _plain(getattr(self, f.name)) for f in _shared_fields()
               if getattr(self, f.name) != getattr(default_shared, f.name)}
        out.update({f.name: _plain(getattr(self.settings, f.name)) for f in dataclasses.fields(self.settings)
                    if getattr(self.settings, f.name) != getattr(default_section, f.name)})
        return out

    def extent(self) -> tuple[str, ...]:
        return EXTENT + tuple(getattr(type(self.settings), "EXTENT", ()))

    def digest(self) -> str:
        """Ten hex digits naming what this experiment computes (defaults and extent left out). A new field
        with a default, shared or of a section, keeps every old name; so does a field that moves between
        the shared ones and a section, since both are hashed as one flat mapping."""
        identity = {k: v for k, v in self.changed().items() if k not in self.extent()}
        if hasattr(self.settings, "identity"):  # a section whose fields hold another experiment's (transfer)
            identity = self.settings.identity(identity)
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def to_dict(self) -> dict:
        out = {f.name: _plain(getattr(self, f.name)) for f in _shared_fields()}
        out.update({f.name: _plain(getattr(self.settings, f.name)) for f in dataclasses.fields(self.settings)})
        return out


def _shared_fields():
    return [f for f in dataclasses.fields(Experiment) if f.name != "settings"]


SHARED = {f.name: f for f in _shared_fields()}

# what each shared field may be (its type comes from its annotation; lt_core/checks.py). The names of
# datasets, models and inits are checked where their registries live (lt_core/procedures/imp.py, new_model).
RULES = {
    "experiment": folder_name, "optimizer": one_of(("adam", "sgd")), "device": one_of(("auto", "cpu", "cuda")),
    "val_size": at_least(0), "split_seed": at_least(0), "seed": at_least(0), "dropout": fraction(),
    "train_fraction": Rule(lambda f: 0 < f <= 1, "in (0, 1] (the share of the training split kept)"),
    "width": above(0.0), "lr": above(0.0), "momentum": fraction(), "weight_decay": at_least(0.0),
    "l1_penalty": at_least(0.0), "batch_size": at_least(1),
    "iterations": at_least(1), "warmup_iterations": at_least(0), "lr_drops": at_least(1),
    "lr_drop_factor": Rule(lambda v: 0 < v <= 1, "a finite number in (0, 1]"), "eval_every": at_least(1),
    "lr_schedule": one_of(("steps", "cosine")), "trials": at_least(1),
}


def _names(cls) -> dict:
    return {f.name: f for f in dataclasses.fields(cls)}


def _plain(value):
    if isinstance(value, tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {k: v for k, v in value}
        return list(value)
    return value


def _check_types(obj) -> None:
    """Every field of a dataclass (shared fields or a section) as the type its annotation names, in place:
    YAML lists become tuples, mappings sorted pairs, whole numbers floats where a float is wanted; any other
    mismatch is one ConfigError naming the field (lt_core/checks.py). Runs in Experiment.__post_init__,
    before the frozen objects are used, so every way of making one (make, dataclasses.replace) is checked."""
    types = field_types(type(obj))
    for f in dataclasses.fields(obj):
        hint = types.get(f.name, type(f.default) if f.default is not dataclasses.MISSING else Any)
        if f.name != "settings":
            object.__setattr__(obj, f.name, coerce(f.name, getattr(obj, f.name), hint))


def _check_shared(cfg: Experiment) -> None:
    """Limits of shared fields set by other fields."""
    late = [d for d in cfg.lr_drops if d >= cfg.iterations]
    raise_first([
        (bool(late), f"'lr_drops' contains {late}; a drop must come before the last iteration "
                     f"(1..{cfg.iterations - 1}), or it never happens"),
        (cfg.lr_schedule == "cosine" and bool(cfg.lr_drops),
         f"'lr_drops' {list(cfg.lr_drops)} with lr_schedule cosine: the cosine schedule has no drops; "
         "remove lr_drops or use lr_schedule steps"),
    ])


def make(values: dict) -> Experiment:
    """An Experiment from one flat mapping: shared fields, `procedure` (default imp) and that procedure's
    fields. An unknown field, or a missing one the procedure requires, is one error naming both."""
    procedure = values.get("procedure", "imp")
    if not isinstance(procedure, str) or procedure not in SECTIONS:
        raise ConfigError(f"procedure {procedure!r} is not one of {', '.join(SECTIONS)} (a procedure's fields "
                          "register when its module loads: import lt_core.procedures)")
    own = _names(SECTIONS[procedure])
    unknown = [k for k in values if k not in SHARED and k not in own]
    if unknown:
        known = list(SHARED) + list(own)
        hints = []
        for key in unknown:
            near = difflib.get_close_matches(key, known, n=1)
            hints.append(f"'{key}'" + (f" (did you mean '{near[0]}'?)" if near else ""))
        raise ConfigError(f"unknown parameter {', '.join(hints)} for procedure '{procedure}'; its parameters: "
                          f"{', '.join(own)}; shared parameters: {', '.join(SHARED)}")
    missing = [n for n, f in own.items() if n not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"procedure '{procedure}' needs the parameter{'s' * (len(missing) > 1)} "
                          f"{', '.join(repr(m) for m in missing)}")
    settings = SECTIONS[procedure](**{k: v for k, v in values.items() if k in own})  # checked by Experiment
    return Experiment(**{k: v for k, v in values.items() if k in SHARED}, settings=settings)


def resolve(experiment: str, base: dict, profiles: dict, profile: str, overrides: dict | None = None) -> Experiment:
    """base < profiles[profile] < overrides, as papermill hands them to a notebook."""
    _mapping("base", base, "{lr: 0.001}")
    _mapping("profiles", profiles, "{smoke: {iterations: 300}}")
    _mapping("overrides", overrides, "{trials: 2}")
    if not isinstance(profile, str) or profile not in (profiles or {}):
        raise ConfigError(f"profile {profile!r} is not defined for {experiment}; "
                          f"choose one of: {', '.join(profiles or {}) or '(none defined)'}")
    _mapping(f"profile '{profile}'", profiles[profile], "{iterations: 300}")
    # the file names the experiment unless a later layer renames it (--set experiment=NAME: a new folder)
    values = {"experiment": experiment, **(base or {}), **(profiles[profile] or {}), **(overrides or {})}
    return make(values)


def _mapping(what: str, value, example: str) -> None:
    """ConfigError unless `value` is a mapping (or None, read as empty)."""
    if value is not None and not isinstance(value, dict):
        raise ConfigError(f"{what} must be a mapping of parameter to value, e.g. {example}; "
                          f"got {type(value).__name__} {value!r:.80}")


def read(path: str | Path) -> dict:
    """The four top-level keys of a params file (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a parameter file; give one of its files: "
                          f"{', '.join(str(p) for p in sorted(path.glob('*.yaml'))) or '(it has none)'}")
    if not path.exists():
        raise ConfigError(f"no parameter file {path}; the experiments are: "
                          f"{', '.join(p.name for p in sorted(path.parent.glob('*.yaml'))) or '(none)'}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the parameter file {path}: {error}") from None
    doc = _yaml(text, str(path))
    doc = {} if doc is None else doc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a params file is a mapping with the keys experiment, profile, base and "
                          f"profiles; this one is {type(doc).__name__} {doc!r:.60}")
    extra = set(doc) - {"experiment", "profile", "base", "profiles"}
    if extra or "base" not in doc:
        raise ConfigError(f"{path}: a params file has the keys experiment, profile, base and profiles "
                          f"(found {sorted(map(str, doc))}); put experiment settings under 'base'")
    doc.setdefault("experiment", path.stem)
    doc.setdefault("profiles", {})
    return doc


def _yaml(text: str, where: str):
    """yaml.safe_load, its errors as one line with the line and column (tabs named: YAML forbids them)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())
        tab = "; indent with spaces, not tabs" if "\\t" in problem else ""
        raise ConfigError(f"{where}{at}: not valid YAML ({problem}){tab}") from None


def load(path: str | Path, profile: str | None = None, overrides: dict | None = None) -> Experiment:
    doc = read(path)
    return resolve(doc["experiment"], doc["base"], doc["profiles"], profile or doc.get("profile"), overrides)


def parse_overrides(pairs: list[str]) -> dict:
    """`key=value` strings from the command line; values are read as YAML (numbers, lists, mappings)."""
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if not _ or not key.strip():
            raise ConfigError(f"override '{pair}' must look like key=value, e.g. trials=2")
        out[key.strip()] = _yaml(value, f"--set {pair}")
    return out
