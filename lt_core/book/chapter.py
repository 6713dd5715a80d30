"""What the chapter notebooks call, so that their cells stay one or two lines each.

A chapter's parameters cell holds `experiment`, `profile`, `base`, `profiles`, `overrides`; papermill's
`-f params/<experiment>.yaml` injects base and profiles, and `-p profile paper` picks a profile.
`configure` turns them into an Experiment; the rest turns tables into what the page shows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import config
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
    return config.resolve(experiment, base, profiles, profile, overrides)


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


def settings(cfg: config.Experiment) -> pd.DataFrame:
    """The parameters that differ from the paper's defaults, beside the full list."""
    changed = cfg.changed()
    rows = [{"parameter": k, "value": str(v), "changed": "yes" if k in changed else ""}
            for k, v in cfg.to_dict().items()]
    return pd.DataFrame(rows).set_index("parameter")


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


def provenance(summary: pd.DataFrame) -> pd.DataFrame:
    """Where the numbers come from: code versions, devices, machines (with their kind of CPU, which decides
    the summation order of the last digits) and dates of the units shown."""
    cols = [c for c in ("code_version", "torch", "device", "machine", "cpu", "threads") if c in summary]
    if not cols:
        return pd.DataFrame()
    out = summary.groupby(cols, dropna=False).agg(units=("control", "size"),
                                                 first=("finished", "min"), last=("finished", "max"))
    return out.reset_index()


def nearest(masks: dict, densities) -> dict:
    """The entries of `masks` (density -> mask) at the densities nearest (in log scale) to the asked ones."""
    have = np.array(sorted(masks))
    picked = {float(have[np.argmin(abs(np.log(have) - np.log(d)))]) for d in densities}
    return {d: masks[d] for d in sorted(picked, reverse=True)}
