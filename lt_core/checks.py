"""The rules a parameter's value must follow, checked before anything is trained or written.

A value reaches an experiment from a params file, `--set key=value`, papermill's `-p`/`-y` or a notebook's
`overrides`: YAML or Python values, never yet of the field's type. `coerce` turns one into the type the
field is annotated with (shared fields and every procedure's section alike) or says, in one line, which
parameter, which value and what is allowed. Booleans must be real booleans (the string "no" is truthy),
whole numbers real whole numbers (True is an int to Python) and floats finite. Ranges and name sets are
`Rule`s that config.py attaches to fields by name (`check_rules`).

Every message is one line naming the parameter, the value and what is allowed: the command line prints
it as it is (lt_core/__main__.py), and a notebook's first cell shows it.
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass
from typing import Any, Callable


class ConfigError(ValueError):
    """A parameter file or override that cannot describe an experiment; the message says how to fix it."""


# PyYAML reads 1e-3 as a string (YAML 1.1 wants 1.0e-3); a float field takes such a decimal number
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a name"}
PLURALS = {bool: "true/false values", int: "whole numbers", float: "numbers", str: "names"}


def field_types(cls) -> dict[str, Any]:
    """A dataclass's field annotations as types (they are strings under `from __future__ import
    annotations`); {} where they cannot be resolved, and the field's default then says the type."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation naming something its module cannot see: fall back to defaults
        return {}


def coerce(name: str, value, hint):
    """`value` as the type `hint` (bool, int, float, str, tuple[X, ...], tuple[tuple[str, X], ...] stated
    as a mapping, e.g. rates: {fc: 0.2}); anything else is passed through. A single value for a list is a
    list of one (`--set controls=ticket`)."""
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else Any
        if typing.get_origin(item) is tuple:
            return _pairs(name, value, typing.get_args(item)[-1])
        items = value if isinstance(value, (list, tuple)) else (value,)
        try:
            return tuple(_scalar(name, v, item) for v in items)
        except ConfigError:
            raise ConfigError(f"'{name}' must be a list of {PLURALS.get(item, 'values')}; got {value!r}") from None
    return _scalar(name, value, hint)


def _pairs(name: str, value, kind) -> tuple:
    """A mapping (or its stored form, sorted (key, value) pairs) as sorted pairs of name and `kind`."""
    items = value.items() if isinstance(value, dict) else value
    try:
        return tuple(sorted((str(k), _scalar(name, v, kind)) for k, v in items))
    except (ConfigError, TypeError, ValueError):  # not a mapping, or a value of the wrong type
        raise ConfigError(f"'{name}' must map names to {PLURALS.get(kind, 'values')}, e.g. {{fc: 0.2}}; "
                          f"got {value!r}") from None


def _scalar(name: str, value, kind):
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        if isinstance(value, str) and NUMBER.fullmatch(value.strip()):
            value = float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is str:
        ok = isinstance(value, str)
    else:
        return value
    if not ok:
        raise ConfigError(f"'{name}' must be {KINDS[kind]}; got {value!r}")
    return value


@dataclass(frozen=True)
class Rule:
    """What a field's value (or each item of a list field) may be: `test` it, `allowed` says it in words."""
    test: Callable[[Any], bool]
    allowed: str

    def problem(self, name: str, value) -> str | None:
        for item in (value if isinstance(value, tuple) else (value,)):
            pair = item if isinstance(item, tuple) else None  # a mapping's entry: its value is tested
            x = pair[1] if pair else item
            if (isinstance(x, float) and not math.isfinite(x)) or not self.test(x):
                what = f"'{name}' has {pair[0]}: {x!r}" if pair else \
                       f"'{name}' contains {x!r}" if isinstance(value, tuple) else f"'{name}' is {x!r}"
                return f"{what}; it must be {self.allowed}"
        return None


def at_least(low) -> Rule:
    return Rule(lambda v: v >= low, f"a finite number >= {low}" if isinstance(low, float) else f">= {low}")


def above(low: float) -> Rule:
    return Rule(lambda v: v > low, f"a finite number > {low}")


def fraction(high_open: bool = True) -> Rule:
    """[0, 1) or [0, 1]."""
    if high_open:
        return Rule(lambda v: 0 <= v < 1, "in [0, 1)")
    return Rule(lambda v: 0 <= v <= 1, "in [0, 1]")


def one_of(names) -> Rule:
    names = tuple(names)
    return Rule(lambda v: v in names, f"one of {', '.join(names)}")


# an experiment names a folder of the results root: a plain name, no path
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
folder_name = Rule(lambda v: bool(NAME.fullmatch(v)),
                   "a plain name of letters, digits, '_', '-' and '.' (a folder inside the results root, no path)")


def check_rules(obj, rules: dict[str, Rule]) -> None:
    """ConfigError for the first field of `obj` whose value breaks its rule."""
    for name, rule in rules.items():
        problem = rule.problem(name, getattr(obj, name))
        if problem:
            raise ConfigError(problem)


def raise_first(problems: list[tuple[bool, str]]) -> None:
    """Raise ConfigError with the message of the first (bad, message) pair that is bad."""
    for bad, message in problems:
        if bad:
            raise ConfigError(message)
