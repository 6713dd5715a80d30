"""Experiment configuration: one frozen dataclass, read from `params/<experiment>.yaml` and a profile.

A params file has four top-level keys, so that papermill can pass it straight to a chapter notebook with
`-f params/<experiment>.yaml` (it injects exactly these four names):

    experiment: lenet_mnist        # names the run folder
    profile: quick                 # the profile used when none is asked for
    base: {...}                    # the paper's settings (fields of Experiment)
    profiles: {smoke: {...}, quick: {...}, paper: {}}   # overrides of base, per profile

Runs are named by a hash of the fields that differ from the defaults below (open_lth's trick: adding a new
field with a default keeps every old name valid), leaving out the fields that only say how much to run
(`EXTENT`): more trials or levels extend a run instead of starting a new one.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CONTROLS = ("ticket", "reinit", "random", "oneshot")
# Fields that say how much of an experiment to run, not what it is: left out of the run's name.
EXTENT = ("experiment", "levels", "trials", "controls", "control_levels", "reinit_draws", "device")


class ConfigError(ValueError):
    """A parameter file or override that cannot describe an experiment; the message says how to fix it."""


@dataclass(frozen=True)
class Experiment:
    experiment: str = "lenet_mnist"
    # data
    dataset: str = "mnist"
    val_size: int = 5000              # held out of the training set (Frankle & Carbin: 5,000)
    split_seed: int = 0
    augment: bool = False             # CIFAR: random crop (padding 4) + horizontal flip
    # model
    model: str = "lenet_300_100"
    init: str = "glorot_normal"       # the paper's Gaussian Glorot
    dropout: float = 0.0
    # training
    optimizer: str = "adam"           # adam | sgd
    lr: float = 1.2e-3
    momentum: float = 0.9             # sgd only
    weight_decay: float = 0.0
    batch_size: int = 60
    iterations: int = 50_000
    warmup_iterations: int = 0        # linear warmup from 0 to lr
    lr_drops: tuple[int, ...] = ()    # iterations at which lr is multiplied by lr_drop_factor
    lr_drop_factor: float = 0.1
    eval_every: int = 100
    # pruning
    pruning: str = "layerwise"        # layerwise | global
    rates: tuple[tuple[str, float], ...] = (("fc", 0.2), ("output", 0.1))  # per layer kind, per round
    rewind_iteration: int = 0         # 0: reset to theta_0; k > 0: late resetting to theta_k
    seed: int = 0                     # trial t derives all its seeds from (seed, t)
    # extent: how much to run (not part of the run's name)
    levels: int = 2                   # pruning rounds after the dense level 0
    trials: int = 1
    controls: tuple[str, ...] = CONTROLS
    control_levels: tuple[int, ...] = ()   # levels at which controls run; () = every level
    reinit_draws: int = 1
    device: str = "auto"              # auto | cpu | cuda

    def __post_init__(self):
        _check(self)

    @property
    def rate(self) -> dict[str, float]:
        return dict(self.rates)

    def changed(self) -> dict:
        """The fields that differ from the defaults, as plain JSON-able values."""
        default = Experiment()
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(default, f.name)}

    def digest(self) -> str:
        """Ten hex digits naming what this experiment computes (defaults and extent left out)."""
        identity = {k: v for k, v in self.changed().items() if k not in EXTENT}
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def levels_with_controls(self) -> list[int]:
        chosen = self.control_levels or range(1, self.levels + 1)
        return sorted(level for level in set(chosen) if 1 <= level <= self.levels)


FIELDS = {f.name: f for f in dataclasses.fields(Experiment)}


def _plain(value):
    if isinstance(value, tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {k: v for k, v in value}
        return list(value)
    return value


def _coerce(name: str, value):
    """YAML/papermill values -> the dataclass's types (lists -> tuples, rate dicts -> sorted pairs)."""
    if name == "rates":
        if not isinstance(value, dict):
            raise ConfigError(f"'rates' must be a mapping of layer kind to rate, e.g. {{fc: 0.2}}; got {value!r}")
        return tuple(sorted((str(k), float(v)) for k, v in value.items()))
    default = FIELDS[name].default
    if isinstance(default, tuple):
        return tuple(value) if isinstance(value, (list, tuple)) else (value,)
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _check(cfg: Experiment) -> None:
    for f in dataclasses.fields(cfg):
        value, default = getattr(cfg, f.name), f.default
        if isinstance(default, (int, float, str)) and not isinstance(value, type(default)) \
                and not (isinstance(default, float) and isinstance(value, int)):
            raise ConfigError(f"'{f.name}' must be a {type(default).__name__}; got {value!r}")
    for kind, rate in cfg.rates:
        if not 0.0 <= rate < 1.0:
            raise ConfigError(f"pruning rate for '{kind}' is {rate}: a rate is the fraction of surviving "
                              "weights removed per round and must be in [0, 1)")
    problems = [
        (cfg.optimizer not in ("adam", "sgd"), f"optimizer '{cfg.optimizer}' is not one of adam, sgd"),
        (cfg.pruning not in ("layerwise", "global"), f"pruning '{cfg.pruning}' is not one of layerwise, global"),
        (cfg.device not in ("auto", "cpu", "cuda"), f"device '{cfg.device}' is not one of auto, cpu, cuda"),
        (cfg.iterations < 1 or cfg.batch_size < 1 or cfg.eval_every < 1,
         "iterations, batch_size and eval_every must be at least 1"),
        (not 0 <= cfg.rewind_iteration <= cfg.iterations,
         f"rewind_iteration {cfg.rewind_iteration} must lie between 0 and iterations ({cfg.iterations})"),
        (cfg.levels < 0 or cfg.trials < 1 or cfg.reinit_draws < 1,
         "levels must be >= 0, trials and reinit_draws >= 1"),
        (not 0.0 <= cfg.dropout < 1.0, f"dropout {cfg.dropout} must be in [0, 1)"),
        (any(c not in CONTROLS for c in cfg.controls),
         f"controls {list(cfg.controls)} may only name {', '.join(CONTROLS)}"),
        ("ticket" not in cfg.controls, "controls must include 'ticket': the controls are defined by its masks"),
    ]
    for bad, message in problems:
        if bad:
            raise ConfigError(message)


def make(values: dict) -> Experiment:
    """An Experiment from a flat mapping, with a clear error for an unknown key."""
    unknown = [k for k in values if k not in FIELDS]
    if unknown:
        hints = []
        for key in unknown:
            near = difflib.get_close_matches(key, FIELDS, n=1)
            hints.append(f"'{key}'" + (f" (did you mean '{near[0]}'?)" if near else ""))
        raise ConfigError(f"unknown parameter {', '.join(hints)}; known parameters: {', '.join(FIELDS)}")
    return Experiment(**{k: _coerce(k, v) for k, v in values.items()})


def resolve(experiment: str, base: dict, profiles: dict, profile: str, overrides: dict | None = None) -> Experiment:
    """base < profiles[profile] < overrides, as papermill hands them to a notebook."""
    if profile not in (profiles or {}):
        raise ConfigError(f"profile '{profile}' is not defined for {experiment}; "
                          f"choose one of: {', '.join(profiles or {}) or '(none defined)'}")
    values = {**(base or {}), **(profiles[profile] or {}), **(overrides or {}), "experiment": experiment}
    return make(values)


def read(path: str | Path) -> dict:
    """The four top-level keys of a params file (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no parameter file {path}; the experiments are: "
                          f"{', '.join(p.name for p in sorted(path.parent.glob('*.yaml'))) or '(none)'}")
    doc = yaml.safe_load(path.read_text()) or {}
    extra = set(doc) - {"experiment", "profile", "base", "profiles"}
    if extra or "base" not in doc:
        raise ConfigError(f"{path}: a params file has the keys experiment, profile, base and profiles "
                          f"(found {sorted(doc)}); put experiment settings under 'base'")
    doc.setdefault("experiment", path.stem)
    doc.setdefault("profiles", {})
    return doc


def load(path: str | Path, profile: str | None = None, overrides: dict | None = None) -> Experiment:
    doc = read(path)
    return resolve(doc["experiment"], doc["base"], doc["profiles"], profile or doc.get("profile"), overrides)


def parse_overrides(pairs: list[str]) -> dict:
    """`key=value` strings from the command line; values are read as YAML (numbers, lists, mappings)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override '{pair}' must look like key=value, e.g. trials=2")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out
