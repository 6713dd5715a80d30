"""The replication report around a chapter's numbers: what was run at what scale, what it cost, the command
that reproduces it, and tables that a phone can read.

A chapter shows two runs: the recorded one at (or near) the paper's settings, which is the one to quote,
and this execution at the profile the book was built with. `runs_table` sets both beside the paper's
scale; `scale_warning` says when an execution is too small for its verdicts to hold from one run to the
next; `run_command` rebuilds, from a run's stored configuration, the exact command line that trains it;
`cost` adds up the seconds its networks took. `Table` renders any DataFrame as HTML whose cells wrap
(book/_static/lt-book.css), so no text is cut and no table is wider than a phone.
"""

from __future__ import annotations

import html
import json
import math
import shlex

import pandas as pd

from .. import config
from ..procedures.base import procedure_for
from ..provenance import REPO

# Not measured here (no GPU was lent to the sessions that wrote this): a batch-60 LeNet step on a GPU is
# bound by kernel-launch latency, about 1,000-3,000 steps a second (README, Speed). Printed as an estimate.
GPU_STEPS_PER_SECOND = {"lenet_300_100": (1000, 3000)}
# Verdicts below these are not stable from one run to the next (trials of the recorded LeNet run disagree
# on 4 of 8 claims at 3 trials; see the chapter's spread column).
STABLE_TRIALS = 3


class Table:
    """A DataFrame shown as an HTML table that wraps (class `lt-table`) and as plain text elsewhere.
    `widths` (percentages, one per column, index first) fix the column widths on narrow screens."""

    def __init__(self, frame: pd.DataFrame, widths: list[int] | None = None, caption: str = ""):
        self.frame, self.widths, self.caption = frame, widths, caption

    def _repr_html_(self) -> str:
        frame = self.frame.reset_index() if _named_index(self.frame) else self.frame
        cols = list(frame.columns)
        out = ['<table class="lt-table">']
        if self.caption:
            out.append(f"<caption>{html.escape(self.caption)}</caption>")
        if self.widths:
            out.append("<colgroup>" + "".join(f'<col style="width:{w}%">' for w in self.widths) + "</colgroup>")
        out.append("<thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in cols) + "</tr></thead><tbody>")
        places = [_places(frame.iloc[:, i]) for i in range(len(cols))]  # one precision a column
        for values in frame.itertuples(index=False, name=None):  # not iterrows: a row of numbers is one
            out.append("<tr>" + "".join(f'<td data-label="{html.escape(str(c))}">{html.escape(_cell(v, d))}</td>'
                                        for c, v, d in zip(cols, values, places)) + "</tr>")  # dtype (3 as 3.0)
        out.append("</tbody></table>")
        return "".join(out)

    def __repr__(self) -> str:
        with pd.option_context("display.max_colwidth", None, "display.width", 200):
            return self.frame.to_string()


def _named_index(frame: pd.DataFrame) -> bool:
    return any(name is not None for name in frame.index.names)


def _cell(value, places: int | None = None) -> str:
    """A cell's text: blank for a missing value; a float with `places` decimals (its column's, `_places`), or
    alone at the precision its size needs; anything else as str."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{_needed(value) if places is None else places}f}"
    return str(value)


def _needed(value: float) -> int:
    """The decimals a float needs: at most 2 from 1 up (accuracies, percentages: 98.01, not the binary
    fraction's 98.00999999999999 that sums and differences leave), 3 significant digits below (0.419,
    0.0001), none for a whole number (4533, not 4533.0)."""
    if not math.isfinite(value) or value == 0:
        return 0
    cap = 2 if abs(value) >= 1 else max(2, 2 - math.floor(math.log10(abs(value))))
    return next(d for d in range(cap + 1) if round(value, d) == round(value, cap))


def _places(column: pd.Series) -> int | None:
    """One number of decimals for a column's floats, the most any of them needs, so that a column reads
    98.0 / 98.1 / 96.2, not 98 / 98.1 / 96.2; None for a column without floats."""
    floats = [v for v in column if isinstance(v, float) and math.isfinite(v)]
    return max(map(_needed, floats)) if floats else None


def _paper(params: str) -> config.Experiment:
    return config.load(REPO / params, "paper")


def networks(cfg: config.Experiment) -> int:
    """How many networks (units) the experiment trains."""
    return len(procedure_for(cfg).units())


def run_command(params: str, profile: str, stored: dict) -> str:
    """`python -m lt_core run <params> --profile <profile> --set ...`: every field of the stored configuration
    that differs from the profile becomes a --set, so the command trains exactly the stored run."""
    profile_cfg = config.load(REPO / params, profile).to_dict()
    words = ["python", "-m", "lt_core", "run", params, "--profile", profile]
    for name, value in stored.items():
        if name in profile_cfg and profile_cfg[name] != value and not _same(profile_cfg, name, value):
            words += ["--set", f"{name}={json.dumps(value, separators=(',', ':'))}"]
    return shlex.join(words)


def _same(cfg: dict, name: str, value) -> bool:
    """Whether `value` (as a config.json stores it) is the field's value in `cfg` once parsed: a mapping
    stored as [key, value] pairs (a transfer's source, its rates) is the mapping."""
    try:
        return config.make({**cfg, name: value}).to_dict()[name] == cfg[name]
    except (config.ConfigError, TypeError, ValueError):
        return False


def shortest_command(params: str, stored: dict) -> str:
    """The `run` command of a stored run from the params file's profile closest to it (fewest --set words):
    `--profile cpu --set trials=1` rather than every difference from `paper`."""
    profiles = ["paper"] + [p for p in config.read(REPO / params).get("profiles", {}) if p != "paper"]
    return min((run_command(params, p, stored) for p in profiles), key=lambda c: (c.count(" --set "), len(c)))


def notebook_command(notebook: str, params: str, profile: str) -> str:
    """The papermill command that re-executes the chapter at `profile`."""
    return shlex.join(["papermill", notebook, "out.ipynb", "-f", params, "-p", "profile", profile])


def cost(summary: pd.DataFrame, stored: dict) -> dict:
    """Measured CPU time of the networks in `summary` (their recorded seconds) and the kind of machine, with
    a GPU estimate (labelled as such) from the steps they trained."""
    seconds = float(pd.to_numeric(summary.get("seconds"), errors="coerce").sum()) if "seconds" in summary else float("nan")
    kinds = sorted(summary.cpu.dropna().unique()) if "cpu" in summary else []
    if not kinds and "machine" in summary:  # recorded before the CPU model was: the platform, said so
        kinds = [f"{m} (CPU model not recorded)" for m in sorted(summary.machine.dropna().unique())]
    threads = sorted(int(t) for t in summary.threads.dropna().unique()) if "threads" in summary else []
    steps = len(summary) * int(stored["iterations"])
    rate = GPU_STEPS_PER_SECOND.get(stored.get("model"))
    gpu = (f"estimate, not measured: {duration(steps / rate[1])} to {duration(steps / rate[0])} at "
           f"{rate[0]:,}-{rate[1]:,} steps/s (kernel-launch bound)") if rate else "no estimate"
    return {"cpu_hours": seconds / 3600, "kinds": kinds or ["not recorded"], "threads": threads, "gpu": gpu}


def duration(seconds: float) -> str:
    """12 s, 3.5 min, 1.9 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _trials(summary: pd.DataFrame) -> int:
    return int(summary.trial.nunique()) if len(summary) else 0


def runs_table(params: str, recorded: tuple | None, execution: tuple) -> Table:
    """The `paper` profile's scale (the params file's settings at the paper's scale, where the paper states
    them), the recorded run's and this execution's side by side. `recorded` and `execution`
    are (label, stored configuration dict, summary) or None."""
    paper = _paper(params)
    rows = [{"run": "paper profile", "trials": paper.trials, "iterations per network": f"{paper.iterations:,}",
             "networks": networks(paper), "training hours (sum over networks)": "", "machine": ""}]
    for entry in (recorded, execution):
        if entry is None:
            continue
        label, stored, summary = entry
        spent = cost(summary, stored)
        rows.append({"run": label, "trials": _trials(summary),
                     "iterations per network": f"{int(stored['iterations']):,}", "networks": len(summary),
                     "training hours (sum over networks)": f"{spent['cpu_hours']:.2f}", "machine": ", ".join(spent["kinds"])})
    return Table(pd.DataFrame(rows).set_index("run"), widths=[22, 10, 16, 12, 14, 26])


def scale_warning(params: str, cfg: config.Experiment, trials: int) -> str:
    """One line when a run is too small for its verdicts to be stable (fewer than STABLE_TRIALS trials or
    fewer iterations than the paper's), else an empty string."""
    paper = _paper(params)
    if trials >= STABLE_TRIALS and cfg.iterations >= paper.iterations:
        return ""
    return (f"Warning: {trials} trial(s) of {cfg.iterations:,} iterations (the paper profile: "
            f"{paper.trials} of {paper.iterations:,}) is too small a scale for these verdicts to be stable; quote the recorded run.")


def recorded_runs_table(names, describe, words: dict[str, str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """A chapter's committed runs, one row each, and the command that trains each (resumable; a chapter adds
    a comment where a recording holds less than its command trains; `--resume-from book/recorded/<name>`
    restores one without training). `describe(summary, stored)` gives
    the chapter's own columns: (the rows of the summary the run is counted by, {column: value}, words to
    append to its command); `words` (name -> words) what a run's command adds beyond its parameters (a
    resume it was trained with); the table adds trials, networks, CPU hours, machine and dates."""
    from ..runs import recorded as recorded_runs
    rows, commands = [], []
    for name in names:
        rec = recorded_runs.recorded(name)
        if rec is None:
            rows.append({"recorded run": name, "network": "not in this checkout", "networks": "", "CPU hours": ""})
            continue
        _, summary, doc = rec
        stored = doc["config"]
        summary, columns, suffix = describe(summary, stored)
        spent = cost(summary, stored)
        rows.append({"recorded run": name, **columns, "trials": int(summary.trial.nunique()), "networks": len(summary),
                     "CPU hours": round(spent["cpu_hours"], 2), "machine": ", ".join(spent["kinds"]),
                     "finished": finished_span(summary.finished)})
        params = f"params/{stored['experiment']}.yaml"
        commands.append(f"{name}: " + (shortest_command(params, stored) + suffix + (words or {}).get(name, "") if (REPO / params).is_file()
                                       else "trained by the run that names it as its source (a transfer's)"))
    columns = list(dict.fromkeys(k for row in rows for k in row))  # a run not in this checkout: blank cells,
    rows = [{k: row.get(k, "") for k in columns} for row in rows]   # so whole numbers stay whole
    return pd.DataFrame(rows).set_index("recorded run"), commands


def finished_span(finished: pd.Series) -> str:
    """When a run's networks finished, first to last: '2026-12-01T18:38 .. 23:10 UTC' within a day,
    '2026-12-01T18:38 .. 2026-12-03T17:34 UTC' across days (a time alone would read as ending before it began)."""
    first, last = str(finished.min())[:16], str(finished.max())[:16]
    return f"{first} .. {last[11:] if last[:10] == first[:10] else last} UTC"
