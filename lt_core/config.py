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


class ConfigError(ValueError):
    """A parameter file or override that cannot describe an experiment; the message says how to fix it."""


@dataclass(frozen=True)
class Imp:
    """Iterative magnitude pruning with its controls and late resetting (lt_core/procedures/imp.py)."""
    pruning: str = "layerwise"        # layerwise | global
    rates: tuple[tuple[str, float], ...] = (("fc", 0.2), ("output", 0.1))  # per layer kind, per round
    rewind_iteration: int = 0         # 0: reset to theta_0; k > 0: late resetting to theta_k
    # extent
    levels: int = 2                   # pruning rounds after the dense level 0
    controls: tuple[str, ...] = ("ticket", "reinit", "random", "oneshot")
    control_levels: tuple[int, ...] = ()   # levels at which controls run; () = every level
    reinit_draws: int = 1

    EXTENT = ("levels", "controls", "control_levels", "reinit_draws")

    def check(self, cfg: "Experiment") -> None:
        for kind, rate in self.rates:
            if not 0.0 <= rate < 1.0:
                raise ConfigError(f"pruning rate for '{kind}' is {rate}: a rate is the fraction of surviving "
                                  "weights removed per round and must be in [0, 1)")
        controls = Imp.controls  # the default names every control there is
        raise_first([
            (self.pruning not in ("layerwise", "global"), f"pruning '{self.pruning}' is not one of layerwise, global"),
            (not 0 <= self.rewind_iteration <= cfg.iterations,
             f"rewind_iteration {self.rewind_iteration} must lie between 0 and iterations ({cfg.iterations})"),
            (self.levels < 0 or self.reinit_draws < 1, "levels must be >= 0 and reinit_draws >= 1"),
            (any(c not in controls for c in self.controls),
             f"controls {list(self.controls)} may only name {', '.join(controls)}"),
            ("ticket" not in self.controls, "controls must include 'ticket': the controls are defined by its masks"),
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
    seed: int = 0                     # trial t derives all its seeds from (seed, t)
    # extent: how much to run (not part of the run's name)
    trials: int = 1
    device: str = "auto"              # auto | cpu | cuda
    settings: Any = None              # the procedure's section (None: its defaults)

    def __post_init__(self):
        if self.procedure not in SECTIONS:
            raise ConfigError(f"procedure '{self.procedure}' is not one of {', '.join(SECTIONS)}")
        if self.settings is None:
            object.__setattr__(self, "settings", SECTIONS[self.procedure]())
        elif type(self.settings) is not SECTIONS[self.procedure]:
            raise ConfigError(f"settings of type {type(self.settings).__name__} do not belong to procedure "
                              f"'{self.procedure}'")
        _check_types(self)
        _check_shared(self)
        _check_types(self.settings)
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
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def to_dict(self) -> dict:
        out = {f.name: _plain(getattr(self, f.name)) for f in _shared_fields()}
        out.update({f.name: _plain(getattr(self.settings, f.name)) for f in dataclasses.fields(self.settings)})
        return out


def _shared_fields():
    return [f for f in dataclasses.fields(Experiment) if f.name != "settings"]


SHARED = {f.name: f for f in _shared_fields()}


def _names(cls) -> dict:
    return {f.name: f for f in dataclasses.fields(cls)}


def _plain(value):
    if isinstance(value, tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {k: v for k, v in value}
        return list(value)
    return value


def _coerce(name: str, value, spec: dataclasses.Field):
    """YAML/papermill values -> the dataclass's types (lists -> tuples, rate dicts -> sorted pairs)."""
    if name == "rates":
        if not isinstance(value, dict):
            raise ConfigError(f"'rates' must be a mapping of layer kind to rate, e.g. {{fc: 0.2}}; got {value!r}")
        return tuple(sorted((str(k), float(v)) for k, v in value.items()))
    default = spec.default
    if isinstance(default, tuple):
        return tuple(value) if isinstance(value, (list, tuple)) else (value,)
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _check_types(obj) -> None:
    """Types of a dataclass's fields against their defaults' (shared fields and sections alike)."""
    for f in dataclasses.fields(obj):
        value, default = getattr(obj, f.name), f.default
        if isinstance(default, (int, float, str)) and not isinstance(value, type(default)) \
                and not (isinstance(default, float) and isinstance(value, int)):
            raise ConfigError(f"'{f.name}' must be a {type(default).__name__}; got {value!r}")


def raise_first(problems: list[tuple[bool, str]]) -> None:
    """Raise ConfigError with the message of the first (bad, message) pair that is bad."""
    for bad, message in problems:
        if bad:
            raise ConfigError(message)


def _check_shared(cfg: Experiment) -> None:
    raise_first([
        (cfg.optimizer not in ("adam", "sgd"), f"optimizer '{cfg.optimizer}' is not one of adam, sgd"),
        (cfg.device not in ("auto", "cpu", "cuda"), f"device '{cfg.device}' is not one of auto, cpu, cuda"),
        (cfg.iterations < 1 or cfg.batch_size < 1 or cfg.eval_every < 1,
         "iterations, batch_size and eval_every must be at least 1"),
        (cfg.trials < 1, "trials must be >= 1"),
        (not 0.0 <= cfg.dropout < 1.0, f"dropout {cfg.dropout} must be in [0, 1)"),
    ])


def make(values: dict) -> Experiment:
    """An Experiment from one flat mapping: shared fields, `procedure` (default imp) and that procedure's
    fields. An unknown field, or a missing one the procedure requires, is one error naming both."""
    procedure = values.get("procedure", "imp")
    if procedure not in SECTIONS:
        raise ConfigError(f"procedure '{procedure}' is not one of {', '.join(SECTIONS)}")
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
    shared = {k: _coerce(k, v, SHARED[k]) for k, v in values.items() if k in SHARED}
    settings = SECTIONS[procedure](**{k: _coerce(k, v, own[k]) for k, v in values.items() if k in own})
    return Experiment(**shared, settings=settings)


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
