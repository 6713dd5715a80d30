#!/usr/bin/env python3
"""Build the Lottery Ticket Book: execute the chapter notebooks with papermill, render HTML.

Used by `make book` and tests/test_book_build.py:

    python tools/build_book.py [--profile smoke|quick|paper] [--out DIR] [--force]

Steps
  1. read _toc.yml; every entry `book/<name>` must be book/<name>.md or book/<name>.ipynb
     (a missing file is an error naming the entry); every notebook entry needs a row in
     book/chapters.yml (params file + profile).
  2. lay out a staging source tree <out>/src: _config.yml, _toc.yml, book/ (without notebooks),
     book/_static -> _static (small hand-written css/js, loaded on every page).
  3. execute each chapter:  papermill book/X.ipynb <out>/src/book/X.ipynb -f params/<p>.yaml
     -p profile <profile>, with the repo root as working directory.  Executed copies are cached
     in <out>/exec-cache keyed by the notebook, every params file, profile, lt_core sources, recorded
     runs, _config.yml, requirements.lock and how it trains (--workers, --executor, --stack); --force
     re-executes.  The page shows papermill's injected-parameters cell
     (the values actually used) and drops the notebook's default parameters cell (`remove-cell`).
     While a chapter trains, a line per network it stores (lt_core.book.progress); at the end, what
     each chapter cost.
  4. fetch require.js, @jupyter-widgets/html-manager and MathJax from the npm registry
     (`npm pack`, pinned versions and integrity, cached in _build/npm-cache) into
     <out>/src/_widgets/_static/{widgets,mathjax} so saved widget state and math render offline
     (see _config.yml: nb_ipywidgets_js, mathjax_path).
  5. `jupyter-book build` with execution off; the HTML ends up in <out>/html (index.html).
  6. check that no page loads a script from http(s); pack <out>/book.tar.gz (the HTML, to host
     anywhere).
The book-wide scorecard (book/scorecard.md) is filled in while staging, from lt_core.chapters.catalogue.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

TOOLS = Path(__file__).resolve().parent
REPO = TOOLS.parent
DEFAULT_PROFILE = "quick"

# JavaScript the rendered pages need, fetched from the npm registry with `npm pack` (which runs
# no install scripts), pinned by version and integrity, and served from the book's _static/ so
# the HTML works offline.  Each package: files (tar path -> path under _static/<dest>/) and/or
# tree (tar prefix copied with its layout, minus `exclude`).
JS_PACKAGES = {
    # AMD loader the ipywidgets embedder needs (myst-nb's default takes it from a CDN).
    "requirejs": {
        "version": "2.3.8",
        "integrity": "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
        "dest": "widgets",
        "files": {"package/require.js": "require.js"},
        "license": "MIT",
    },
    # ipywidgets 8 embedder (widget model versions base 2.0, controls 2.0, output 1.0).
    # embed-amd.js bundles base, controls and output, so those need no further download; it
    # loads its Font Awesome fonts relative to its own URL, so they sit beside it.
    "@jupyter-widgets/html-manager": {
        "version": "1.0.15",
        "integrity": "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        "dest": "widgets",
        "files": {"package/dist/embed-amd.js": "embed-amd.js"},
        "tree": ("package/dist/", r".*\.(js|map|txt)$"),
        "license": "BSD-3-Clause",
    },
    # Sphinx loads MathJax 3 from a CDN unless mathjax_path is local (see _config.yml).
    # tex-mml-chtml.js loads TeX extensions and fonts lazily from paths relative to itself.
    "mathjax": {
        "version": "3.2.2",
        "integrity": "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        "dest": "mathjax",
        "files": {"package/es5/tex-mml-chtml.js": "tex-mml-chtml.js"},
        "tree": ("package/es5/", r"^(?![^/]*/)|^output/svg|^sre/mathmaps/(?!en\.json)"),
        "license": "Apache-2.0",
    },
}

BOOKWIDE_MARKER = "<!-- BOOKWIDE-SCORECARD: tools/build_book.py writes the table here -->"
EXTERNAL_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//", re.I)


class BuildError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[build_book] {msg}", flush=True)


# --------------------------------------------------------------------------- table of contents
def toc_entries(toc: dict) -> list[str]:
    """All `file` entries of a jb-book toc, root first, in order."""
    out = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                out.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk({k: v for k, v in toc.items() if k != "root"})
    return out


def resolve_entries(repo: Path) -> tuple[list[Path], list[dict]]:
    """Return (markdown pages, chapter rows) for the toc; raise BuildError on a missing file."""
    toc = yaml.safe_load((repo / "_toc.yml").read_text())
    chapters_file = repo / "book" / "chapters.yml"
    rows = []
    if chapters_file.exists():
        rows = (yaml.safe_load(chapters_file.read_text()) or {}).get("chapters") or []
    by_nb = {}
    for row in rows:
        if not isinstance(row, dict) or "notebook" not in row or "params" not in row:
            raise BuildError(f"book/chapters.yml: each chapter needs `notebook` and `params`: {row!r}")
        by_nb[Path(row["notebook"]).with_suffix("").as_posix()] = row

    pages, chapters = [], []
    for entry in toc_entries(toc):
        stem = Path(entry).with_suffix("").as_posix()
        nb, md = repo / f"{stem}.ipynb", repo / f"{stem}.md"
        if nb.exists():
            row = by_nb.get(stem)
            if row is None:
                raise BuildError(
                    f"_toc.yml lists notebook {stem}.ipynb but book/chapters.yml has no row for it "
                    "(add: - notebook: ...  params: params/<experiment>.yaml  profile: quick)")
            params = repo / row["params"]
            if not params.exists():
                raise BuildError(f"book/chapters.yml: params file {row['params']} for {stem}.ipynb does not exist")
            chapters.append({**row, "stem": stem, "nb": nb, "params_path": params})
        elif md.exists():
            pages.append(md)
        else:
            raise BuildError(f"_toc.yml entry '{entry}' has no file: neither {stem}.ipynb nor {stem}.md exists")
    return pages, chapters


# --------------------------------------------------------------------------- staging
def stage_sources(repo: Path, src: Path) -> None:
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(repo / name, src / name)
    book = repo / "book"
    ignore = shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints", "__pycache__", "_static", "chapters.yml")
    shutil.copytree(book, src / "book", ignore=ignore)
    if (book / "_static").is_dir():
        shutil.copytree(book / "_static", src / "_static")


# --------------------------------------------------------------------------- execution
def exec_key(repo: Path, ch: dict, profile: str, how: dict | None = None) -> str:
    """What a chapter's execution depends on. `how` is how it trains (workers, executor, stack): the numbers
    agree within one thread against two, but the page shows those parameters, and `make book STACK=16` on a
    GPU after a build on the CPU should execute there, not show the CPU's execution as if it had."""
    h = hashlib.sha256()
    h.update(profile.encode())
    h.update(json.dumps(how or {}, sort_keys=True).encode())
    for path in [ch["nb"], ch["params_path"], repo / "requirements.lock", repo / "_config.yml"]:
        h.update(path.name.encode())
        h.update(path.read_bytes() if path.exists() else b"")
    # the code, the recorded runs a chapter shows beside its own execution, and every params file: a chapter
    # configures more experiments than its chapters.yml row names (the transfer chapter five), and
    # _config.yml above gives the repository URL the provenance tables link to
    for folder, pattern in ((repo / "lt_core", "*.py"), (repo / "book" / "recorded", "*"), (repo / "params", "*.yaml")):
        for path in sorted(p for p in folder.rglob(pattern) if p.is_file()) if folder.is_dir() else []:
            h.update(path.relative_to(repo).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def show_used_parameters(nb_path: Path) -> None:
    """The page shows the parameters the chapter ran with: papermill's injected-parameters cell stays, the
    notebook's own default parameters cell (which papermill keeps above it) is removed (`remove-cell`)."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    tags_of = [cell.get("metadata", {}).get("tags", []) for cell in nb.cells]
    if not any("injected-parameters" in tags for tags in tags_of):
        return
    for cell, tags in zip(nb.cells, tags_of):
        if "parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = list(tags) + ["remove-cell"]
    nbformat.write(nb, nb_path)


def progress_watcher(repo: Path, ch: dict, profile: str):
    """A watcher of the chapter's run store (lt_core.book.progress), or a no-op when the params file is
    not an lt_core experiment (the scratch books of the tests)."""
    import contextlib
    try:
        from lt_core import config, procedures  # noqa: F401  (procedures: every procedure's fields registered)
        from lt_core.book.progress import Watcher
        cfg = config.load(ch["params_path"], profile)
    except Exception:  # not an experiment: nothing to watch
        return contextlib.nullcontext(None)
    return Watcher(cfg, None, say=log)


def execute_chapters(repo: Path, chapters: list[dict], src: Path, cache: Path,
                     profile_override: str | None, force: bool, workers: int = 1,
                     executor: str = "local", stack: int = 1) -> list[dict]:
    """Execute (or take from the cache) every chapter; returns what each cost: chapter, profile, how,
    seconds, networks trained."""
    import papermill as pm

    cache.mkdir(parents=True, exist_ok=True)
    costs = []
    for ch in chapters:
        profile = profile_override or ch.get("profile") or DEFAULT_PROFILE
        target = src / f"{ch['stem']}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        key = exec_key(repo, ch, profile, {"workers": workers, "executor": executor, "stack": stack})
        cached = cache / (ch["stem"].replace("/", "__") + f".{profile}.ipynb")
        keyfile = cached.with_suffix(".key")
        if not force and cached.exists() and keyfile.exists() and keyfile.read_text() == key:
            log(f"{ch['stem']}.ipynb: unchanged since last run (profile {profile}), using cached execution")
            shutil.copy2(cached, target)
            costs.append({"chapter": ch["stem"], "profile": profile, "how": "cached", "seconds": 0.0, "trained": 0})
            continue
        params = yaml.safe_load(ch["params_path"].read_text()) or {}
        params["profile"] = profile
        params["workers"] = workers
        if executor != "local":  # the chapters' `executor` parameter: ray trains each network as a Ray task
            params["executor"] = executor
        if stack > 1:  # the chapters' `stack` parameter: networks of one schedule as one computation (a GPU)
            params["stack"] = stack
        log(f"executing {ch['stem']}.ipynb  -f {ch['params']} -p profile {profile}")
        t0 = time.time()
        try:
            with progress_watcher(repo, ch, profile) as watcher:
                pm.execute_notebook(
                    str(ch["nb"]), str(target), parameters=params, cwd=str(repo),
                    progress_bar=False, log_output=False, request_save_on_cell_execute=False,
                )
        except Exception as exc:  # papermill keeps the partial output for inspection
            raise BuildError(f"{ch['stem']}.ipynb failed (profile {profile}); partial output in {target}:\n{exc}") from exc
        show_used_parameters(target)
        shutil.copy2(target, cached)
        keyfile.write_text(key)
        seconds = time.time() - t0
        trained = watcher.trained if watcher is not None else 0
        costs.append({"chapter": ch["stem"], "profile": profile, "how": "executed", "seconds": seconds,
                      "trained": trained})
        log(f"{ch['stem']}.ipynb executed in {seconds:.0f} s ({trained} networks trained)")
    return costs


def fill_bookwide_scorecard(src: Path) -> None:
    """Write the book-wide scorecard into the staged book/scorecard.md, at its marker."""
    page = src / "book" / "scorecard.md"
    if not page.exists():
        return
    from lt_core.chapters import catalogue
    text = page.read_text()
    if BOOKWIDE_MARKER not in text:
        raise BuildError(f"book/scorecard.md lost its marker line {BOOKWIDE_MARKER!r}")
    page.write_text(text.replace(BOOKWIDE_MARKER, catalogue.markdown(catalogue.bookwide())))


def pack(html: Path, dest: Path) -> None:
    """<dest> = the HTML folder as a .tar.gz (written beside, then renamed: never half a file)."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(html, arcname="html")
    os.replace(tmp, dest)


def report_costs(costs: list[dict]) -> None:
    log("what each chapter cost:")
    for c in costs:
        log(f"  {c['chapter']:<28} profile {c['profile']:<6} {c['how']:<8} {c['seconds']:7.0f} s  "
            f"{c['trained']} networks trained")
    log(f"  total execution {sum(c['seconds'] for c in costs):.0f} s (budget: 30 minutes on 2 CPU cores)")


# --------------------------------------------------------------------------- offline widgets
def _sri(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch_js(cache: Path, static: Path) -> None:
    """npm pack the pinned packages (cached), check their integrity, copy what pages load."""
    cache.mkdir(parents=True, exist_ok=True)
    notice = ["Third-party JavaScript, fetched from the npm registry by tools/build_book.py:"]
    for name, spec in JS_PACKAGES.items():
        tgz = cache / (name.lstrip("@").replace("/", "-") + f"-{spec['version']}.tgz")
        if not tgz.exists() or _sri(tgz) != spec["integrity"]:
            npm = shutil.which("npm")
            if npm is None:
                raise BuildError("npm is needed to fetch the book's JavaScript (apt-get install -y npm)")
            log(f"npm pack {name}@{spec['version']}")
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                subprocess.run([npm, "pack", f"{name}@{spec['version']}", "--pack-destination", tmp,
                                "--silent", "--ignore-scripts"], check=True, stdout=subprocess.DEVNULL)
                (got,) = Path(tmp).glob("*.tgz")
                if _sri(got) != spec["integrity"]:
                    raise BuildError(f"{name}@{spec['version']}: integrity mismatch ({_sri(got)})")
                os.replace(got, tgz)
        dest = static / spec["dest"]
        prefix, exclude = spec.get("tree", (None, None))
        with tarfile.open(tgz) as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                out = spec.get("files", {}).get(member.name)
                if out is None and prefix and member.name.startswith(prefix):
                    rel = member.name[len(prefix):]
                    if not re.search(exclude, rel):
                        out = rel
                if out is None:
                    continue
                target = dest / out
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
        notice.append(f"  _static/{spec['dest']}/: {name}@{spec['version']} ({spec['license']})")
    (static / "THIRD-PARTY-JS.txt").write_text("\n".join(notice) + "\n")
    # hand-written glue (require.js paths for embed-amd's fonts; MathJax 2 API shim)
    shutil.copy2(TOOLS / "js" / "widgets-setup.js", static / "widgets" / "widgets-setup.js")


# --------------------------------------------------------------------------- html
def jupyter_book_build(src: Path, work: Path, html: Path) -> None:
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(src),
           "--path-output", str(work), "--builder", "html"]
    log(" ".join(cmd))
    subprocess.run(cmd, check=True)
    built = work / "_build" / "html"
    if not (built / "index.html").exists():
        raise BuildError(f"jupyter-book produced no {built / 'index.html'}")
    if html.exists():
        shutil.rmtree(html)
    os.replace(built, html)


def drop_duplicate_inline_scripts(html: Path) -> None:
    """sphinx-thebe's config script (`const THEBE_JS_URL = ...`) lands twice in every page with
    jupyter-book 1.0.4, and the second copy throws "Identifier has already been declared" in the
    console.  Keep the first copy of any identical inline <script> line."""
    for page in html.rglob("*.html"):
        lines = page.read_text().split("\n")
        seen, kept = set(), []
        for line in lines:
            key = line.strip()
            if key.startswith("<script>const ") and key.endswith("</script>"):
                if key in seen:
                    continue
                seen.add(key)
            kept.append(line)
        if len(kept) != len(lines):
            page.write_text("\n".join(kept))


def lighten_pages(html: Path) -> None:
    """Page weight: figures as palette PNGs (lt_core.book.views.compact_png, about a third of the bytes) and
    loaded lazily, so the first paint waits for neither them nor the figures below the fold (the widget
    scripts are deferred in _config.yml)."""
    from lt_core.book.views import compact_png
    for png in (html / "_images").glob("*.png") if (html / "_images").is_dir() else []:
        data = png.read_bytes()
        smaller = compact_png(data)
        if len(smaller) < len(data):
            png.write_bytes(smaller)
    for page in html.rglob("*.html"):
        text = page.read_text()
        lazy = re.sub(r"<img (?![^>]*\bloading=)", '<img loading="lazy" decoding="async" ', text)
        if lazy != text:
            page.write_text(lazy)


def external_scripts(html: Path) -> list[str]:
    bad = []
    for page in sorted(html.rglob("*.html")):
        for line in page.read_text(errors="replace").splitlines():
            if EXTERNAL_SCRIPT.search(line):
                bad.append(f"{page.relative_to(html)}: {line.strip()[:160]}")
    return bad


def build(repo: Path = REPO, out: Path | None = None, profile: str | None = None,
          force: bool = False, npm_cache: Path | None = None, workers: int = 1, executor: str = "local",
          stack: int = 1) -> Path:
    repo = repo.resolve()
    out = (out or repo / "_build").resolve()
    src = out / "src"
    pages, chapters = resolve_entries(repo)
    log(f"{len(pages)} page(s), {len(chapters)} chapter notebook(s); staging in {src}")
    stage_sources(repo, src)
    fill_bookwide_scorecard(src)
    costs = execute_chapters(repo, chapters, src, out / "exec-cache", profile, force, workers, executor, stack)
    fetch_js(npm_cache or REPO / "_build" / "npm-cache", src / "_widgets" / "_static")
    html = out / "html"
    jupyter_book_build(src, out / "jb", html)
    drop_duplicate_inline_scripts(html)
    lighten_pages(html)
    bad = external_scripts(html)
    if bad:
        raise BuildError("pages load scripts from the network:\n  " + "\n  ".join(bad))
    pack(html, out / "book.tar.gz")
    report_costs(costs)
    log(f"done: {html / 'index.html'} (and {out / 'book.tar.gz'})")
    return html


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=os.environ.get("PROFILE") or None,
                    help="profile for every chapter (smoke|quick|paper); default: each chapter's "
                         f"profile in book/chapters.yml, else {DEFAULT_PROFILE}")
    ap.add_argument("--out", type=Path, default=None, help="output root (default: <repo>/_build); HTML in <out>/html")
    ap.add_argument("--repo", type=Path, default=REPO, help="book source root (default: this repo)")
    ap.add_argument("--force", action="store_true", help="re-execute notebooks even if unchanged")
    ap.add_argument("--workers", type=int, default=1,
                    help="training processes per chapter (the notebooks' `workers` parameter; README, Speed)")
    ap.add_argument("--executor", choices=["local", "ray"], default="local",
                    help="ray: train each network as a Ray task (the notebooks' `executor` parameter; README, Ray)")
    ap.add_argument("--stack", type=int, default=1,
                    help="networks of one schedule trained as one computation (the notebooks' `stack` parameter; "
                         "for a GPU: README, Speed: 'Stacking')")
    args = ap.parse_args(argv)
    try:
        build(args.repo, args.out, args.profile, args.force, workers=args.workers, executor=args.executor,
              stack=args.stack)
    except (BuildError, subprocess.CalledProcessError) as exc:
        print(f"[build_book] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
