"""The house's one rule: a module of lt_core imports only from its own wing and the wings before it
(lt_core/__init__.py lists them in order), and chapter-specific code lives in its chapter's module."""

import ast
import re

from lt_core.provenance import REPO

PACKAGE = REPO / "lt_core"
# stage of each wing; modules at the package's top level are named without ".py" (checks comes before
# config: config builds its fields' checks from it)
STAGES = ["checks", "config", "provenance", "data", "nets", "sparsity", "training", "procedures", "runs", "book",
          "chapters", "speed", "__main__"]


def wing(module: str) -> str:
    """'lt_core.runs.store' -> 'runs'; 'lt_core' -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(path) -> list[str]:
    """The lt_core modules that `path` imports, anywhere in the file (function-level imports too)."""
    module = ".".join(path.relative_to(REPO).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    if path.name == "__init__.py":
        module = package
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("lt_core")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("lt_core"):
                # `from . import x` names modules: count each
                out += [target if node.module else f"{target}.{a.name}" for a in node.names
                        if node.module or not a.name.startswith("_")]  # `from . import __version__`
    return out


def upward_imports() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        own = wing(module)
        if own not in STAGES:  # lt_core/__init__.py (the version only)
            assert own == "__init__", f"{module}: a wing that STAGES does not place"
            continue
        for target in imports(path):
            other = wing(target)
            if other in ("", "__init__"):
                continue
            assert other in STAGES, f"{module} imports {target}: a wing that STAGES does not place"
            if STAGES.index(other) > STAGES.index(own):
                bad.append(f"{module} imports {target}")
    return bad


def test_no_module_imports_a_later_stage():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The walk above would catch one: a training module that imports the run store."""
    probe = PACKAGE / "training" / "_probe_upward.py"
    probe.write_text("from ..runs.store import RunStore\n")
    try:
        assert upward_imports() == ["lt_core.training._probe_upward imports lt_core.runs.store"]
    finally:
        probe.unlink()


def test_every_wing_says_what_lives_there():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"{init.parent.name}/__init__.py has no docstring saying what lives there"
    listed = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text()))
    for stage in STAGES:
        assert re.search(rf"^\s+(\w+, )?{stage}\b", listed, re.M), f"lt_core/__init__.py does not list {stage}"


def test_lenet_specific_code_lives_in_the_lenet_chapter():
    """The 28x28 picture and LeNet's claims belong to chapters/lenet_mnist.py, nowhere else in lt_core."""
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "chapters" or path.parent.name == "speed":  # speed benches LeNet on purpose
            continue
        text = path.read_text()
        for marker in ("reshape(28, 28)", "lenet_claims", "def claims(", "PAPER_DENSITIES"):
            assert marker not in text, f"{path.relative_to(REPO)} holds LeNet chapter code ({marker!r})"
