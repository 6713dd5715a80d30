"""The book builds with the same tool `make book` uses, and its pages load nothing from the web.

* the real book, smoke profile, into a temporary directory;
* a scratch book (temporary repo) with one papermill-executed IntSlider notebook: saved widget
  state is rendered by the locally served require.js + html-manager, papermill's injected
  parameters are applied and shown in place of the defaults, and (when Chromium is installed) the slider appears in
  headless Chromium with the network blocked.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "build_book.py"

# <script src="http...">, <script src="//...">, <link rel=stylesheet href="http...">
REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^\"'\s>]*", re.I)
REMOTE_LINK = re.compile(r"<link\b[^>]*\brel=[\"']?(?:stylesheet|preload|modulepreload)[^>]*\bhref=[\"']?(?:https?:)?//[^\"'\s>]*", re.I)


def _tool():
    spec = importlib.util.spec_from_file_location("build_book", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _remote_loads(html: Path) -> list[str]:
    found = []
    for page in html.rglob("*.html"):
        text = page.read_text(errors="replace")
        found += [f"{page.relative_to(html)}: {m.group(0)}" for m in REMOTE_SCRIPT.finditer(text)]
        found += [f"{page.relative_to(html)}: {m.group(0)}" for m in REMOTE_LINK.finditer(text)]
    return found


def test_book_builds_offline(real_book):
    html = real_book
    assert (html / "index.html").exists()
    assert (html / "book" / "intro.html").exists()
    assert "The Lottery Ticket Book" in (html / "book" / "intro.html").read_text()
    assert _remote_loads(html) == []


def _scratch_repo(root: Path) -> Path:
    (root / "book").mkdir(parents=True)
    (root / "params").mkdir()
    shutil.copy2(ROOT / "_config.yml", root / "_config.yml")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n- file: book/widget_demo\n")
    (root / "book" / "intro.md").write_text("# Scratch\n\nA page with math: $a^2 + b^2 = c^2$.\n")
    (root / "book" / "chapters.yml").write_text(
        "chapters:\n  - notebook: book/widget_demo.ipynb\n    params: params/demo.yaml\n    profile: quick\n")
    (root / "params" / "demo.yaml").write_text("start: 7\n")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Widget demo\n\nInline math $E = mc^2$."),
        nbformat.v4.new_code_cell("profile = 'smoke'\nstart = 3", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import os, ipywidgets as w\n"
            "print(f'cwd={os.path.basename(os.getcwd())} profile={profile} start={start}')\n"
            "w.IntSlider(value=start, min=0, max=10, description='demo')"),
    ]
    nbformat.write(nb, root / "book" / "widget_demo.ipynb")
    return root


@pytest.fixture(scope="module")
def widget_book(tmp_path_factory):
    repo = _scratch_repo(tmp_path_factory.mktemp("scratch") / "repo")
    html = _tool().build(repo=repo, out=repo / "_build")
    return repo, html


def test_widget_page_uses_local_javascript(widget_book):
    repo, html = widget_book
    page = (html / "book" / "widget_demo.html").read_text()
    assert 'type="application/vnd.jupyter.widget-state+json"' in page
    for script in ("widgets/require.js", "widgets/widgets-setup.js", "widgets/embed-amd.js"):
        assert f'src="../_static/{script}' in page, script
        assert (html / "_static" / script).exists(), script
    assert 'src="../_static/mathjax/tex-mml-chtml.js' in page
    assert _remote_loads(html) == []
    # papermill ran from the repo root with -f params/demo.yaml -p profile quick ...
    assert f"cwd={repo.name} profile=quick start=7" in page
    # ... the page shows its injected-parameters cell (the values used), open, and not the notebook's
    # own defaults (`start = 3`), which would read as if they had been used
    injected = re.search(r'<div class="cell [^"]*tag_injected-parameters[^"]*"', page)
    assert injected and "tag_hide-input" not in injected.group(0)
    assert "start = 3" not in page and "start" in page[injected.start():]


def test_missing_toc_entry_fails_clearly(tmp_path):
    tool = _tool()
    repo = _scratch_repo(tmp_path / "repo")
    (repo / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n- file: book/nope\n")
    with pytest.raises(tool.BuildError, match="book/nope"):
        tool.resolve_entries(repo)


def test_toc_notebook_needs_a_chapters_row(tmp_path):
    tool = _tool()
    repo = _scratch_repo(tmp_path / "repo")
    (repo / "book" / "chapters.yml").write_text("chapters: []\n")
    with pytest.raises(tool.BuildError, match="widget_demo.ipynb"):
        tool.resolve_entries(repo)


@pytest.mark.skipif(not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()),
                    reason="needs Debian chromium + chromium-driver (make browser-deps)")
def test_widget_renders_in_headless_chromium_offline(widget_book):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    _, html = widget_book
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--host-resolver-rules=MAP * ~NOTFOUND"):  # no host name resolves: offline
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.get((html / "book" / "widget_demo.html").as_uri())
        deadline, sliders = time.time() + 30, []
        while time.time() < deadline and not sliders:
            sliders = driver.find_elements(By.CSS_SELECTOR, ".widget-slider")
            time.sleep(0.3)
        assert sliders, "IntSlider was not rendered from the saved widget state"
        assert "7" in sliders[0].text
        assert driver.find_elements(By.CSS_SELECTOR, "mjx-container"), "MathJax did not render"
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], "console errors on the widget page"
    finally:
        driver.quit()


def test_book_is_packed_and_its_scorecard_page_filled(real_book):
    import tarfile
    with tarfile.open(real_book.parent / "book.tar.gz") as tar:
        names = tar.getnames()
    assert "html/index.html" in names and "html/book/lenet_mnist.html" in names
    page = (real_book / "book" / "scorecard.html").read_text()
    assert "BOOKWIDE-SCORECARD" not in page and "ticket-earlier-21" in page
    assert 'href="lenet_mnist.html"' in page


def test_footer_names_licence_authors_and_build_date(real_book):
    page = (real_book / "book" / "lenet_mnist.html").read_text()
    assert "MIT licence" in page and "CC BY 4.0" in page and "The Lottery Ticket Book authors" in page
    assert re.search(r"Last updated on\s+20\d\d-\d\d-\d\d", page), "no build date in the footer"


def test_progress_watcher_knows_every_procedure():
    """make book watches a chapter's run store whatever its procedure (edge-popup's fields register when
    lt_core.procedures loads), and watches nothing for a params file that is not an experiment."""
    tool = _tool()
    watcher = tool.progress_watcher(ROOT, {"params_path": ROOT / "params" / "edge_popup_lenet.yaml"}, "smoke")
    assert type(watcher).__name__ == "Watcher" and watcher.total == 2
    assert tool.progress_watcher(ROOT, {"params_path": ROOT / "_config.yml"}, "smoke").__enter__() is None


def test_a_chapter_executes_again_when_it_is_asked_to_train_another_way(tmp_path):
    """The execution cache is keyed on how a chapter trains as well as on what it is: `make book STACK=16`
    after `make book` executes the chapter again (its page shows `stack: 16`), and the same call twice
    takes the cached execution."""
    tool = _tool()
    repo = _scratch_repo(tmp_path / "repo")
    _, chapters = tool.resolve_entries(repo)
    src, cache = tmp_path / "src", tmp_path / "cache"

    def how(**kw):
        return [c["how"] for c in tool.execute_chapters(repo, chapters, src, cache, None, False, **kw)]

    assert how() == ["executed"]
    assert how() == ["cached"]
    assert how(stack=16) == ["executed"]
    assert "stack = 16" in (src / "book" / "widget_demo.ipynb").read_text()
    assert how(stack=16) == ["cached"]
    assert how(workers=2) == ["executed"]
    assert how(executor="ray") == ["executed"]
    assert how() == ["executed"]  # the cache holds one execution a chapter and profile: the last one
    # what a chapter reads besides its own row: another experiment's params file, the repository URL
    (repo / "params" / "other.yaml").write_text("start: 1\n")
    assert how() == ["executed"]
    with open(repo / "_config.yml", "a") as f:
        f.write("\n# edited\n")
    assert how() == ["executed"] and how() == ["cached"]
