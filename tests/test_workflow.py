"""The GitHub Pages workflow parses and builds and deploys the book the way the Jupyter Book 1.x docs
describe: `make book`, then actions/upload-pages-artifact with _build/html, then actions/deploy-pages, with
the permissions Pages needs."""

from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "book.yml"


def _steps(job):
    return [(s.get("uses", "").split("@")[0], s.get("run", ""), s.get("with", {})) for s in job["steps"]]


def test_workflow_builds_then_deploys_the_book():
    doc = yaml.safe_load(WORKFLOW.read_text())
    jobs = doc["jobs"]
    build = _steps(jobs["build"])
    assert any("make book" in run for _, run, _ in build)
    upload = [w for uses, _, w in build if uses == "actions/upload-pages-artifact"]
    assert upload and upload[0]["path"] == "_build/html"
    make_at = next(i for i, (_, run, _) in enumerate(build) if "make book" in run)
    upload_at = next(i for i, (uses, _, _) in enumerate(build) if uses == "actions/upload-pages-artifact")
    assert make_at < upload_at
    assert jobs["deploy"]["needs"] == "build"
    assert [uses for uses, _, _ in _steps(jobs["deploy"])] == ["actions/deploy-pages"]
    assert doc["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    assert jobs["deploy"]["environment"]["name"] == "github-pages"
    # YAML reads the key `on` as True
    triggers = doc.get("on", doc.get(True))
    assert "push" in triggers and "workflow_dispatch" in triggers
