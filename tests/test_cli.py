"""The command line as a user meets it: the smoke profile on real MNIST, status, results, clear errors."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lt_core.data.datasets import data_root, find_dir

REPO = Path(__file__).resolve().parent.parent


def cli(*args, env=None, check=True):
    run = subprocess.run([sys.executable, "-m", "lt_core", *args], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, timeout=600)
    if check and run.returncode != 0:
        raise AssertionError(f"exit {run.returncode}\n{run.stdout}\n{run.stderr}")
    return run


@pytest.mark.skipif(find_dir("mnist", data_root()) is None,
                    reason="MNIST not fetched: run `python -m lt_core data fetch mnist`")
def test_smoke_profile_runs_resumes_and_loads_as_tidy_table(tmp_path):
    results = str(tmp_path / "results")
    first = cli("run", "params/lenet_mnist.yaml", "--profile", "smoke", "--results", results, "--quiet")
    assert "8 of 8 units to train" in first.stdout
    status = cli("status", "params/lenet_mnist.yaml", "--profile", "smoke", "--results", results)
    assert "complete" in status.stdout and "1:80.0%" in status.stdout
    again = cli("run", "params/lenet_mnist.yaml", "--profile", "smoke", "--results", results, "--quiet")
    assert "all 8 units done" in again.stdout
    csv = tmp_path / "curves.csv"
    cli("results", "params/lenet_mnist.yaml", "--profile", "smoke", "--results", results, "--csv", str(csv))
    curves = pd.read_csv(csv)
    assert list(curves.columns) == ["experiment", "trial", "level", "density", "control", "draw",
                                    "iteration", "split", "loss", "accuracy"]
    assert set(curves.control) == {"ticket", "reinit", "random", "oneshot"}
    assert set(curves.split) == {"val", "test"}
    # real training on real data: after 300 steps LeNet is far above chance on MNIST
    final = curves[(curves.iteration == 300) & (curves.split == "test")]
    assert final.accuracy.min() > 0.85
    summary = tmp_path / "summary.csv"
    cli("results", "params/lenet_mnist.yaml", "--profile", "smoke", "--results", results, "--csv",
        str(summary), "--summary")
    table = pd.read_csv(summary)
    assert len(table) == 8 and table.early_stop_iteration.between(0, 300).all()


@pytest.mark.skipif(find_dir("mnist", data_root()) is None,
                    reason="MNIST not fetched: run `python -m lt_core data fetch mnist`")
def test_status_prints_the_command_that_trains_the_same_experiment(tmp_path):
    """The hint keeps the profile, every --set and the results root: run as printed, it completes *this* run."""
    results = str(tmp_path / "r d")  # a space: the hint must quote it
    args = ["params/lenet_mnist.yaml", "--profile", "smoke", "--set", "levels=1", "--set", "iterations=20",
            "--set", "controls=[ticket]", "--results", results]
    before = cli("status", *args)
    hint = before.stdout.split("`")[1]
    assert "2 units missing" in before.stdout and "--set levels=1" in hint
    words = shlex.split(hint)
    assert words[:4] == ["python", "-m", "lt_core", "run"] and words[4:] == args
    cli(*words[3:], "--quiet")
    assert "complete" in cli("status", *args).stdout


def test_unknown_parameter_stops_before_training(tmp_path):
    run = cli("run", "params/lenet_mnist.yaml", "--profile", "smoke", "--set", "learning_rate=0.1",
              "--results", str(tmp_path), check=False)
    assert run.returncode == 2
    assert "unknown parameter 'learning_rate'" in run.stderr and "Traceback" not in run.stderr
    assert not any(tmp_path.iterdir())


def test_impossible_sparsity_and_unknown_profile_are_one_line_errors(tmp_path):
    run = cli("run", "params/lenet_mnist.yaml", "--profile", "smoke", "--set", "levels=40",
              "--set", "rates={fc: 0.9, output: 0.9}", "--results", str(tmp_path), check=False)
    assert run.returncode == 2 and "impossible sparsity" in run.stderr
    run = cli("status", "params/lenet_mnist.yaml", "--profile", "huge", check=False)
    assert run.returncode == 2 and "profile 'huge' is not defined" in run.stderr and "smoke" in run.stderr


def test_missing_dataset_names_the_fix(tmp_path):
    run = cli("run", "params/lenet_mnist.yaml", "--profile", "smoke", "--results", str(tmp_path / "r"),
              env={"LT_DATA": str(tmp_path / "empty")}, check=False)
    assert run.returncode == 2
    assert "python -m lt_core data fetch mnist" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.skipif(find_dir("fashion_mnist", data_root()) is None or find_dir("mnist", data_root()) is None,
                    reason="MNIST or Fashion-MNIST not fetched: run `python -m lt_core data fetch`")
def test_a_transfer_and_its_source_are_read_and_exported_apart(tmp_path):
    """`results --source` names a transfer's source IMP run (recorded on its own); elsewhere one line."""
    results = str(tmp_path / "results")
    args = ["params/transfer_lenet.yaml", "--profile", "smoke", "--set", "iterations=60", "--results", results]
    cli("run", *args, "--quiet")
    cli("results", *args, "--source", "--summary", "--csv", str(tmp_path / "source.csv"))
    source = pd.read_csv(tmp_path / "source.csv")
    assert set(source.control) == {"ticket"} and set(source.experiment) == {"transfer_source_mnist"}
    cli("results", *args, "--source", "--export", str(tmp_path / "rec_source"))
    assert (tmp_path / "rec_source" / "masks.zip").is_file()
    wrong = cli("results", "params/lenet_mnist.yaml", "--profile", "smoke", "--source", check=False)
    assert wrong.returncode == 2 and "has 0 source experiments" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
