"""The replication report's pieces: the command that reproduces a stored run, the scale warning, the cost,
wrapped tables, provenance links to commits, and the build's per-network progress."""

import json
import shlex

import pandas as pd

from lt_core import config
from lt_core.book import chapter, report
from lt_core.book.progress import Watcher
from lt_core.provenance import REPO
from lt_core.runs import recorded

PARAMS = "params/lenet_mnist.yaml"


def test_run_command_trains_exactly_the_recorded_run():
    _, _, doc = recorded.recorded("lenet_mnist_paper")
    words = shlex.split(report.run_command(PARAMS, "paper", doc["config"]))
    assert words[:7] == ["python", "-m", "lt_core", "run", PARAMS, "--profile", "paper"]
    sets = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    cfg = config.load(REPO / PARAMS, "paper", config.parse_overrides(sets))
    assert cfg.digest() == doc["digest"] == "44136fa355"
    ours = cfg.to_dict()
    assert all(ours[name] == value for name, value in doc["config"].items() if name in ours)


def test_scale_warning_only_below_the_stable_scale():
    smoke = config.load(REPO / PARAMS, "smoke")
    assert "too small" in report.scale_warning(PARAMS, smoke, smoke.trials)
    paper = config.load(REPO / PARAMS, "paper")
    assert report.scale_warning(PARAMS, paper, paper.trials) == ""
    assert "too small" in report.scale_warning(PARAMS, paper, 2)


def test_cost_sums_the_networks_seconds_and_labels_the_gpu_estimate():
    summary = pd.DataFrame({"seconds": [1800.0, 1800.0], "cpu": ["x (AVX2)", "x (AVX2)"], "threads": [1, 1],
                            "trial": [0, 0]})
    spent = report.cost(summary, {"iterations": 50000, "model": "lenet_300_100"})
    assert spent["cpu_hours"] == 1.0 and spent["kinds"] == ["x (AVX2)"] and spent["threads"] == [1]
    assert spent["gpu"] == "estimate, not measured: 33 s to 1.7 min at 1,000-3,000 steps/s (kernel-launch bound)"


def test_table_keeps_every_character_and_labels_cells():
    long = "a claim of more than fifty characters, with <markup> & quotes \" in it, kept whole"
    html = report.Table(pd.DataFrame({"claim": [long], "verdict": ["partly"]}, index=pd.Index(["c1"], name="id")),
                        widths=[20, 60, 20])._repr_html_()
    assert '<td data-label="claim">a claim of more than fifty characters, with &lt;markup&gt; &amp; quotes' in html
    assert "kept whole</td>" in html and '<td data-label="id">c1</td>' in html
    assert html.count("<col ") == 3 and 'class="lt-table"' in html
    numbers = report.Table(pd.DataFrame({"P_m %": [80.04], "own": [97.5]}, index=pd.Index([3], name="level")))
    assert '<td data-label="level">3</td>' in numbers._repr_html_()  # a whole level, though the row is all numbers


def test_provenance_links_code_versions_when_a_repository_is_configured():
    summary = pd.DataFrame({"code_version": ["abc123+dirty"], "torch": ["2"], "device": ["cpu"], "machine": ["m"],
                            "threads": [1], "control": ["ticket"], "finished": ["2026-01-01"]})
    plain = chapter.provenance(summary, repository="")
    assert isinstance(plain, pd.DataFrame) and plain.code_version.iloc[0] == "abc123+dirty"
    linked = chapter.provenance(summary, repository="https://example.org/lt/book/").to_html()
    assert '<a href="https://example.org/lt/book/commit/abc123">abc123+dirty</a>' in linked


def test_progress_watcher_reports_each_new_network(tmp_path):
    cfg = config.load(REPO / PARAMS, "smoke")
    lines = []
    watcher = Watcher(cfg, tmp_path, say=lines.append, every=0.05)
    folder = watcher.folder
    (folder / "trial_00" / "level_00" / "ticket").mkdir(parents=True)
    (folder / "trial_00" / "level_00" / "ticket" / "summary.json").write_text(json.dumps({}))
    with watcher:
        for level in (1, 2):
            unit = folder / "trial_00" / f"level_0{level}" / "ticket"
            unit.mkdir(parents=True)
            (unit / "summary.json").write_text("{}")
    assert watcher.trained == 2
    assert lines[0].startswith(f"lenet_mnist: 1 of {watcher.total} networks already in")
    assert [ln.split(" (")[0] for ln in lines[1:]] == [
        "lenet_mnist: trained trial_00/level_01/ticket", "lenet_mnist: trained trial_00/level_02/ticket"]


def test_a_recorded_runs_command_comes_from_its_closest_profile():
    """A stored configuration (through config.json: mappings as [key, value] lists) gives the command with the
    fewest --set words: a transfer's whole source mapping is not restated when a profile holds it."""
    stored = json.loads(json.dumps(config.load(REPO / "params/transfer_lenet.yaml", "cpu", {"trials": 1}).to_dict()))
    assert report.shortest_command("params/transfer_lenet.yaml", stored) == \
        "python -m lt_core run params/transfer_lenet.yaml --profile cpu --set trials=1"
    changed = {**stored, "lr": 0.002}
    assert report.shortest_command("params/transfer_lenet.yaml", changed).endswith("--set lr=0.002 --set trials=1")


def test_cells_show_floats_at_one_precision_a_column_the_most_its_values_need():
    frame = pd.DataFrame({"ticket %": [98.00999999999999, 98.1, 96.2], "gap": [-7.0, -5.2, 0.3],
                          "iteration": [4533.0, 2733.0, 400.0], "distance": [1.0988581751547226, 0.41943607306265684, 0.77],
                          "lr": [1e-4, 3e-3, 1e-3], "note": ["a", None, "c"]})
    html = report.Table(frame)._repr_html_()
    cells = lambda column: [c.split(">")[1].split("<")[0] for c in html.split(f'data-label="{column}"')[1:]]
    assert cells("ticket %") == ["98.01", "98.10", "96.20"]  # not 98.00999999999999, nor 98.1 beside 98.01
    assert cells("gap") == ["-7.0", "-5.2", "0.3"]  # not -7 beside -5.2
    assert cells("iteration") == ["4533", "2733", "400"]  # whole numbers stay whole
    assert cells("distance") == ["1.099", "0.419", "0.770"]  # three significant digits below 1
    assert cells("lr") == ["0.0001", "0.0030", "0.0010"]
    assert cells("note") == ["a", "", "c"]


def test_the_finished_span_names_the_last_day_when_it_is_another():
    same = pd.Series(["2026-12-01T18:38:05+00:00", "2026-12-01T23:10:00+00:00"])
    assert report.finished_span(same) == "2026-12-01T18:38 .. 23:10 UTC"
    days = pd.Series(["2026-12-03T17:34:00+00:00", "2026-12-01T18:38:05+00:00"])
    assert report.finished_span(days) == "2026-12-01T18:38 .. 2026-12-03T17:34 UTC"


def test_the_scale_warning_names_the_profile_not_the_paper():
    smoke = config.load(REPO / PARAMS, "smoke")
    warning = report.scale_warning(PARAMS, smoke, smoke.trials)
    assert "the paper profile:" in warning and "(the paper:" not in warning


def test_a_run_recorded_before_the_cpu_model_was_names_its_platform():
    summary = pd.DataFrame({"seconds": [60.0], "machine": ["x86_64 vm"], "trial": [0]})
    assert report.cost(summary, {"iterations": 100})["kinds"] == ["x86_64 vm (CPU model not recorded)"]
    assert report.cost(summary.drop(columns="machine"), {"iterations": 100})["kinds"] == ["not recorded"]
