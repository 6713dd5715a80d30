"""The three descriptions of the environment agree, and the running env is the locked one.

requirements.lock  exact pins (what `make` installs and the book is executed with)
environment.yml    conda users: same pins for the packages we name directly
pyproject.toml     ranges; they must admit the locked versions
"""
from __future__ import annotations

import importlib.metadata as md
import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)\s*$")


def _pins(lines, source):
    pins = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("-") else raw.strip()
        if not line or line.startswith("-e") or line.startswith("--"):
            continue
        m = PIN.match(line)
        assert m, f"{source}: not an exact pin (name==version): {raw.strip()!r}"
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


@pytest.fixture(scope="module")
def lock():
    return _pins((ROOT / "requirements.lock").read_text().splitlines(), "requirements.lock")


@pytest.fixture(scope="module")
def env_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert pip_sections, "environment.yml has no pip section"
    return _pins([str(x) for x in pip_sections[0]], "environment.yml")


@pytest.fixture(scope="module")
def pyproject_reqs():
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in proj["dependencies"]]
    for extra in proj.get("optional-dependencies", {}).values():
        reqs += [Requirement(r) for r in extra]
    return reqs


def test_lock_has_only_exact_pins_from_an_index(lock):
    text = (ROOT / "requirements.lock").read_text()
    assert "://" not in text and " @ " not in text, "requirements.lock must not point at URLs or files"
    assert "torch" in lock and "torchvision" in lock


def test_environment_yml_pins_equal_lock(lock, env_pins):
    for name, version in sorted(env_pins.items()):
        assert name in lock, f"environment.yml pins {name}=={version}, which requirements.lock does not contain"
        assert version == lock[name], (
            f"{name}: environment.yml pins {version} but requirements.lock pins {lock[name]}")


def test_environment_yml_names_every_direct_dependency(env_pins, pyproject_reqs):
    for req in pyproject_reqs:
        assert canonicalize_name(req.name) in env_pins, (
            f"{req.name} is a dependency in pyproject.toml but has no pin in environment.yml")


def test_pyproject_ranges_admit_locked_versions(lock, pyproject_reqs):
    for req in pyproject_reqs:
        name = canonicalize_name(req.name)
        assert name in lock, f"{req.name} (pyproject.toml) is missing from requirements.lock"
        assert req.specifier.contains(Version(lock[name]), prereleases=True), (
            f"{req.name}: pyproject.toml range '{req.specifier}' does not admit the locked {lock[name]}")


def test_locked_torch_is_the_running_torch(lock):
    import torch
    import torchvision

    for mod, name in ((torch, "torch"), (torchvision, "torchvision")):
        running = Version(mod.__version__)  # e.g. 2.14.1+cu130: the local tag is ignored by ==
        assert SpecifierSet(f"=={lock[name]}").contains(running), (
            f"{name} {mod.__version__} is running but requirements.lock pins {lock[name]}: "
            "run `make test` (it reinstalls .venv from the lock)")


def test_installed_versions_match_lock_for_direct_dependencies(lock, pyproject_reqs):
    for req in pyproject_reqs:
        name = canonicalize_name(req.name)
        try:
            installed = md.version(req.name)
        except md.PackageNotFoundError:
            pytest.fail(f"{req.name} is not installed in the running environment")
        assert SpecifierSet(f"=={lock[name]}").contains(Version(installed), prereleases=True), (
            f"{req.name} {installed} is installed but requirements.lock pins {lock[name]}")


def test_make_test_runs_the_notebooks_in_an_empty_run_store():
    """results/ may hold runs of an older engine (a store is named by the parameters, not the code): nbval
    must compare the committed outputs with what the current code computes, so `make test` empties a store
    of its own and points LT_RESULTS at it before pytest starts."""
    import subprocess
    lines = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    store = str(ROOT / "_build" / "test-results")
    pytest_line = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert f"LT_RESULTS={store} " in lines[pytest_line]
    assert f"rm -rf {store}" in lines[:pytest_line]
