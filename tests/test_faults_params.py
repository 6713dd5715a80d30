"""Fault suite, parameters (issue 21, groups 3-4): every bad parameter, through every path a value takes
(a params file, `--set`, papermill's injected base/profiles and a notebook's `overrides`), stops before
anything is trained or written, with one line naming the parameter, the value and what is allowed.

The command line is called in this process (lt_core.__main__.main: the same code as `python -m lt_core`,
without a fresh interpreter per case); one case goes through a real `python -m lt_core` and one through
papermill, to see that nothing between them and main adds a traceback."""

import dataclasses
import os
import subprocess
import sys

import papermill as pm
import pytest
import torch

from lt_core import __main__ as cli
from lt_core.book import chapter
from lt_core.config import ConfigError, load, make
from lt_core.provenance import REPO

PARAMS = "params/lenet_mnist.yaml"


def run_cli(capsys, tmp_path, *args):
    """`python -m lt_core run ...` into an empty results root: (exit status, stderr lines, root)."""
    root = tmp_path / "results"
    status = cli.main(["run", *args, "--results", str(root), "--quiet"])
    err = capsys.readouterr().err
    return status, [line for line in err.splitlines() if line.strip()], root


def assert_one_line(status, lines, root, *words):
    assert status == 2, lines
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not root.exists() or not any(root.rglob("*")), f"a rejected run wrote {list(root.rglob('*'))}"


# (--set items, words the one line must hold): the parameter, the value, what is allowed
BAD = [
    (["lr=.nan"], ["'lr' is nan", "finite number > 0"]),
    (["lr=.inf"], ["'lr' is inf", "finite number > 0"]),
    (["lr=-0.1"], ["'lr' is -0.1", "> 0"]),
    (["lr=fast"], ["'lr' must be a number", "'fast'"]),
    (["warmup_iterations=-5"], ["'warmup_iterations' is -5", ">= 0"]),
    (["momentum=.nan"], ["'momentum' is nan", "[0, 1)"]),
    (["momentum=1.5"], ["'momentum' is 1.5", "[0, 1)"]),
    (["lr_drop_factor=.nan"], ["'lr_drop_factor' is nan", "(0, 1]"]),
    (["lr_drop_factor=0"], ["'lr_drop_factor' is 0.0", "(0, 1]"]),
    (["weight_decay=-1e-4"], ["'weight_decay' is -0.0001", ">= 0"]),
    (["dropout=1.5"], ["'dropout' is 1.5", "[0, 1)"]),
    (["iterations=true"], ["'iterations' must be a whole number", "True"]),
    (["iterations=2.5"], ["'iterations' must be a whole number", "2.5"]),
    (["iterations=0"], ["'iterations' is 0", ">= 1"]),
    (["batch_size=false"], ["'batch_size' must be a whole number", "False"]),
    (["eval_every=0"], ["'eval_every' is 0", ">= 1"]),
    (["trials=0"], ["'trials' is 0", ">= 1"]),
    (["seed=-1"], ["'seed' is -1", ">= 0"]),
    (["val_size=-1"], ["'val_size' is -1", ">= 0"]),
    (["augment='no'"], ["'augment' must be true or false", "'no'"]),
    (["augment=1"], ["'augment' must be true or false", "1"]),
    (["control_levels=[2, 30]"], ["'control_levels' contains [30]", "1..levels (2)"]),
    (["control_levels=[0]"], ["'control_levels' contains 0", ">= 1"]),
    (["experiment=../../x"], ["'experiment' is '../../x'", "plain name", "inside the results root"]),
    (["experiment=/tmp/x"], ["'experiment' is '/tmp/x'", "plain name"]),
    (["levels=100"], ["'levels' is 100", "stop falling after level 51", "levels <= 51"]),
    (["levels=-1"], ["'levels' is -1", ">= 0"]),
    (["reinit_draws=0"], ["'reinit_draws' is 0", ">= 1"]),
    (["rewind_iteration=400"], ["'rewind_iteration' is 400", "0..iterations (300)"]),
    (["rewind_iteration=-1"], ["'rewind_iteration' is -1", ">= 0"]),
    (["rates={fc: null}"], ["'rates' must map names to numbers", "{'fc': None}"]),
    (["rates={fc: 1.0}"], ["'rates' has fc: 1.0", "[0, 1)"]),
    (["rates=0.2"], ["'rates' must map names to numbers", "{fc: 0.2}"]),
    (["lr_drops=[abc]"], ["'lr_drops' must be a list of whole numbers", "['abc']"]),
    (["lr_drops=[300]"], ["'lr_drops' contains [300]", "1..299"]),
    (["model=lenet"], ["'model' is 'lenet'", "lenet_300_100, lenet5, conv2"]),
    (["dataset=svhn"], ["'dataset' is 'svhn'", "mnist, fashion_mnist, cifar10"]),
    (["init=xavier"], ["'init' is 'xavier'", "glorot_normal"]),
    (["optimizer=adamw"], ["'optimizer' is 'adamw'", "adam, sgd"]),
    (["pruning=magnitude"], ["'pruning' is 'magnitude'", "layerwise, global"]),
    (["procedure=nope"], ["procedure 'nope' is not one of imp"]),
    (["controls=[ticket, rand]"], ["'controls' contains 'rand'", "ticket, reinit, random, oneshot"]),
    (["controls=[reinit]"], ["'controls' is ['reinit']", "must include ticket"]),
    (["device=tpu"], ["'device' is 'tpu'", "auto, cpu, cuda"]),
    (["batch_size=60000"], ["'batch_size' is 60000", "at most the 55000 training examples"]),
    (["val_size=60000"], ["'val_size' is 60000", "below the 60000"]),
    (["lr=[1,"], ["--set lr=[1,", "line 1, column", "not valid YAML"]),
    (["lr"], ["override 'lr' must look like key=value"]),
    (["learning_rate=0.1"], ["unknown parameter 'learning_rate'"]),
]


@pytest.mark.parametrize("sets, words", BAD, ids=[" ".join(s) for s, _ in BAD])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_bad_parameter_is_one_line_before_anything_is_written(capsys, tmp_path, sets, words, workers):
    args = [PARAMS, "--profile", "smoke", "--workers", workers]
    for item in sets:
        args += ["--set", item]
    assert_one_line(*run_cli(capsys, tmp_path, *args), *words)


def test_the_same_values_in_a_params_file(capsys, tmp_path):
    """A params file states the values YAML reads itself: a quoted "no" is a string, 1e-3 a string too
    (YAML 1.1), which a float field takes as the number it spells."""
    path = tmp_path / "p.yaml"
    for line, words in [('augment: "no"', ["'augment' must be true or false", "'no'"]),
                        ("iterations: true", ["'iterations' must be a whole number"]),
                        ("lr: .nan", ["'lr' is nan"]),
                        ("experiment_name: x", ["unknown parameter 'experiment_name'"])]:
        path.write_text(f"experiment: p\nbase:\n  iterations: 10\nprofiles:\n  smoke:\n    {line}\n")
        assert_one_line(*run_cli(capsys, tmp_path, str(path), "--profile", "smoke"), *words)
    path.write_text("experiment: p\nbase:\n  lr: 1e-3\nprofiles: {smoke: {}}\n")
    assert load(path, "smoke").lr == 0.001


@pytest.mark.parametrize("text, words", [
    ("base:\n\tlr: 0.1\n", ["line 2, column 1", "not valid YAML", "'\\t'", "spaces, not tabs"]),
    ("base: {lr: [1,\n", ["line 2, column 1", "not valid YAML"]),
    ("base:\n  lr: 1\n lr: 2\n", ["line 3, column", "not valid YAML"]),
    ("- lr: 0.1\n", ["a params file is a mapping", "this one is list"]),
    ("3\n", ["a params file is a mapping", "this one is int 3"]),
    ("base:\n  lr: 0.1\nprofiles:\n  smoke: 3\n", ["profile 'smoke' must be a mapping", "got int 3"]),
    ("base:\n  lr: 0.1\nprofiles:\n  smoke: [iterations]\n", ["profile 'smoke' must be a mapping"]),
    ("base: [lr]\nprofiles: {smoke: {}}\n", ["base must be a mapping", "got list"]),
    ("base: {}\nprofiles: [smoke]\n", ["profiles must be a mapping", "got list"]),
    ("base: {}\nprofile: [smoke]\nprofiles: {smoke: {}}\n", ["profile ['smoke'] is not defined"]),
    ("lr: 0.1\n", ["a params file has the keys experiment, profile, base and profiles"]),
])
def test_a_broken_params_file_is_one_line_with_where(capsys, tmp_path, text, words):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    profile = [] if "profile:" in text else ["--profile", "smoke"]
    status, lines, root = run_cli(capsys, tmp_path, str(path), *profile)
    assert_one_line(status, lines, root, *words)
    if "line " in words[0]:
        assert str(path) in lines[0]


def test_a_params_path_that_is_a_folder_or_missing_is_one_line(capsys, tmp_path):
    status, lines, root = run_cli(capsys, tmp_path, "params", "--profile", "smoke")
    assert_one_line(status, lines, root, "params is a folder, not a parameter file", "params/lenet_mnist.yaml")
    status, lines, root = run_cli(capsys, tmp_path, "params/lenet.yaml", "--profile", "smoke")
    assert_one_line(status, lines, root, "no parameter file params/lenet.yaml", "lenet_mnist.yaml")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA device")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_device_cuda_without_a_gpu_is_one_line(capsys, tmp_path, workers):
    assert_one_line(*run_cli(capsys, tmp_path, PARAMS, "--profile", "smoke", "--set", "device=cuda",
                             "--workers", workers), "device=cuda", "no CUDA device", "device=cpu or device=auto")


@pytest.mark.parametrize("overrides, words", [
    ([("trials", 2)], ["overrides must be a mapping", "got list"]),
    ("trials=2", ["overrides must be a mapping", "got str"]),
    ({"lr": float("nan")}, ["'lr' is nan"]),
    ({"augment": "no"}, ["'augment' must be true or false"]),
    ({"iterations": True}, ["'iterations' must be a whole number"]),
    ({"levels": 100}, ["'levels' is 100", "levels <= 51"]),
    ({"dataset": "svhn"}, ["'dataset' is 'svhn'"]),
])
def test_a_notebooks_overrides_are_checked_as_the_command_line_is(overrides, words):
    """chapter.configure is what a chapter's first cell calls with papermill's injected parameters."""
    with pytest.raises(ConfigError) as caught:
        chapter.configure("lenet_mnist", "smoke", overrides=overrides)
    message = str(caught.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_papermills_injected_base_and_profiles_are_checked():
    with pytest.raises(ConfigError, match=r"profile 'smoke' must be a mapping.*got str 'fast'"):
        chapter.configure("lenet_mnist", "smoke", base={}, profiles={"smoke": "fast"})
    with pytest.raises(ConfigError, match=r"base must be a mapping.*got list"):
        chapter.configure("lenet_mnist", "smoke", base=["lr"], profiles={"smoke": {}})
    with pytest.raises(ConfigError, match=r"profile 3 is not defined for lenet_mnist; choose one of: .*smoke"):
        chapter.configure("lenet_mnist", 3)
    with pytest.raises(ConfigError, match=r"'experiment' is '\.\./x'"):
        chapter.configure("../x", "smoke", base={}, profiles={"smoke": {}})


def test_a_list_for_overrides_through_papermill_fails_in_the_first_cell_and_writes_nothing(tmp_path):
    """-y '{overrides: [1, 2]}': the notebook stops at configure with the one line, before any training."""
    with pytest.raises(pm.PapermillExecutionError) as caught:
        pm.execute_notebook(str(REPO / "book" / "lenet_mnist.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={"profile": "smoke", "overrides": [1, 2],
                                        "results_root": str(tmp_path / "results")},
                            cwd=str(REPO / "book"), progress_bar=False)
    assert caught.value.ename == "ConfigError"
    assert "overrides must be a mapping of parameter to value" in caught.value.evalue
    assert not (tmp_path / "results").exists()


def test_every_way_of_making_an_experiment_is_checked():
    """dataclasses.replace and direct construction go through the same checks as a params file."""
    cfg = load(PARAMS, "smoke")
    with pytest.raises(ConfigError, match="'lr' is nan"):
        dataclasses.replace(cfg, lr=float("nan"))
    with pytest.raises(ConfigError, match="'augment' must be true or false"):
        dataclasses.replace(cfg, augment="yes")
    # what a valid value becomes does not depend on the way it came: the names of runs stay
    assert make({"lr": 1, "lr_drops": [100], "iterations": 200}) == \
        dataclasses.replace(make({"iterations": 200}), lr=1, lr_drops=[100])


def test_valid_edges_are_accepted_and_run_names_are_unchanged():
    assert make({"levels": 51}).levels == 51  # the last level whose counts still fall
    assert make({"lr": "1e-3"}).lr == 0.001 and make({"rates": {"fc": 0, "output": 0.5}}).rates == \
        (("fc", 0.0), ("output", 0.5))
    assert make({"rewind_iteration": 50_000}).rewind_iteration == 50_000
    assert make({"control_levels": [1, 2], "levels": 2}).control_levels == (1, 2)
    assert make({"experiment": "my-run.v2"}).experiment == "my-run.v2"
    # the recorded runs' names: the checks normalise values exactly as before
    assert load(PARAMS, "paper").digest() == "44136fa355"
    assert load(PARAMS, "paper", {"trials": 3, "reinit_draws": 1,
                                 "control_levels": [2, 3, 5, 7, 8, 9, 12, 15, 18]}).digest() == "44136fa355"
    assert load(PARAMS, "smoke").digest() == "95a062662a"
    assert load(PARAMS, "quick").digest() == "6ac425ef66"


def test_the_real_command_line_prints_the_line_without_a_traceback(tmp_path):
    run = subprocess.run([sys.executable, "-m", "lt_core", "run", PARAMS, "--profile", "smoke", "--set",
                          "iterations=true", "--results", str(tmp_path / "r")], cwd=REPO, capture_output=True,
                         text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert run.returncode == 2 and run.stderr.strip().splitlines() == \
        ["error: 'iterations' must be a whole number; got True"]
    assert not (tmp_path / "r").exists()
