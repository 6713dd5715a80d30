"""What the chapter notebooks call, so that their cells stay one or two lines each.

A chapter's parameters cell holds `experiment`, `profile`, `base`, `profiles`, `overrides`; papermill's
`-f params/<experiment>.yaml` injects base and profiles, and `-p profile paper` picks a profile.
`configure` turns them into an Experiment; the rest turns tables into what the page shows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import config
from ..procedures.base import procedure_for
from ..procedures.imp import new_model, plan
from ..provenance import REPO
from ..sparsity import pruning

PARAMS = REPO / "params"


def configure(experiment: str, profile: str, base: dict | None = None, profiles: dict | None = None,
              overrides: dict | None = None) -> config.Experiment:
    """The chapter's experiment: params/<experiment>.yaml (or the injected base/profiles) + profile."""
    if base is None or profiles is None:
        doc = config.read(PARAMS / f"{experiment}.yaml")
        base = doc["base"] if base is None else base
        profiles = doc["profiles"] if profiles is None else profiles
    cfg = config.resolve(experiment, base, profiles, profile, overrides)
    procedure_for(cfg).check()  # names, levels, batch size: the notebook's first cell says what is wrong
    return cfg


def glue(name: str, value, display: bool = False):
    """myst-nb's glue: `value` becomes `{glue:text}`name`` or `{glue:figure} name` in the chapter's markdown
    (numbered figures with captions and alt text; numbers in the prose filled in from the run). A figure is
    also shown in its cell (the book removes that output: its cell is tagged remove-output)."""
    from myst_nb import glue as myst_glue
    myst_glue(name, value, display=display)
    return None


def describe(cfg: config.Experiment) -> pd.DataFrame:
    """Each level's overall density and per-layer survivor counts, as the counting rule fixes them."""
    model = new_model(cfg, 0)
    sizes = {name: model.get_parameter(name).numel() for name in model.prunable}
    spec = pruning.PruneSpec.of(model, cfg)
    rows = []
    for level, density in enumerate(plan(cfg)):
        counts = pruning.level_counts(sizes, spec, level)
        row = {"level": level, "density %": round(100 * density, 2)}
        row.update(counts if isinstance(counts, dict) else {"pooled weights": counts})
        rows.append(row)
    return pd.DataFrame(rows).set_index("level")


def settings(cfg: config.Experiment, paper: dict) -> pd.DataFrame:
    """Every parameter of the run beside the paper's value where the paper states one (`paper`, from the
    chapter's module), and whether they differ. Parameters the paper does not state show "not stated"."""
    rows = []
    for name, value in cfg.to_dict().items():
        theirs = paper.get(name)
        rows.append({"parameter": name, "this run": _plain(value),
                     "paper": "not stated" if name not in paper else _plain(theirs),
                     "differs": "" if name not in paper else ("yes" if value != theirs else "")})
    return pd.DataFrame(rows).set_index("parameter")


def _plain(value) -> str:
    """Lists and mappings without quotes: [ticket, reinit], {fc: 0.2}."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_plain(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    return str(value)


def level_table(summary: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """Mean over trials (and reinit draws) per level and control: early-stop iteration and test accuracy
    in percent at `digits` decimals (tests/test_chapter_numbers.py compares a fresh run with the committed table)."""
    table = summary.assign(es_acc=100 * summary.early_stop_test_accuracy,
                           end_acc=100 * summary.final_test_accuracy)
    out = (table.groupby(["level", "control"])
           .agg(density=("density", "first"), early_stop=("early_stop_iteration", "mean"),
                acc_at_early_stop=("es_acc", "mean"), acc_at_end=("end_acc", "mean"))
           .reset_index())
    out["density"] = (100 * out.density).round(2)
    out["early_stop"] = out.early_stop.round(0).astype(int)
    return out.round({"acc_at_early_stop": digits, "acc_at_end": digits}).set_index(["level", "control"])


def repository_url() -> str:
    """The code's repository (`repository: url:` in _config.yml), or "" when none is configured."""
    import yaml
    path = REPO / "_config.yml"
    doc = yaml.safe_load(path.read_text()) if path.exists() else {}
    return str(((doc or {}).get("repository") or {}).get("url") or "").rstrip("/")


def provenance(summary: pd.DataFrame, repository: str | None = None):
    """Where the numbers come from: code versions, devices, machines (with their kind of CPU, which decides
    the summation order of the last digits) and dates of the units shown. With a repository URL (default:
    _config.yml's), each code version links to its commit (a table styled with the links)."""
    cols = [c for c in ("code_version", "torch", "device", "machine", "cpu", "threads") if c in summary]
    if not cols:
        return pd.DataFrame()
    out = summary.groupby(cols, dropna=False).agg(units=("control", "size"),
                                                 first=("finished", "min"), last=("finished", "max"))
    out = out.reset_index()
    url = repository_url() if repository is None else repository.rstrip("/")
    if not url or "code_version" not in out:
        return out

    def link(version):  # "+dirty": uncommitted changes on top of that commit
        commit = str(version).split("+")[0]
        return f'<a href="{url}/commit/{commit}">{version}</a>'
    return out.style.format({"code_version": link}).hide(axis="index")


def nearest(masks: dict, densities) -> dict:
    """The entries of `masks` (density -> mask) at the densities nearest (in log scale) to the asked ones."""
    have = np.array(sorted(masks))
    picked = {float(have[np.argmin(abs(np.log(have) - np.log(d)))]) for d in densities}
    return {d: masks[d] for d in sorted(picked, reverse=True)}
