"""The book-wide scorecard page lists every claim of every chapter with the verdict the chapter itself
shows: its rows are compared with the reproducibility summary stored in each committed chapter notebook."""

import html
import json

from lt_core.chapters import catalogue
from lt_core.provenance import REPO


def committed_summary(page: str) -> dict[str, str]:
    """id -> the HTML row of the chapter's recorded-run verdict table (its first lt-table)."""
    cells = json.loads((REPO / "book" / f"{page}.ipynb").read_text())["cells"]
    for cell in cells:
        for out in cell.get("outputs", []):
            text = "".join(out.get("data", {}).get("text/html", ""))
            if 'class="lt-table"' in text and "to quote" in text:
                return {r.split("</td>", 1)[0].rsplit(">", 1)[-1]: r for r in text.split("<tr>")[2:]}
    raise AssertionError(f"book/{page}.ipynb shows no recorded-run verdict table")


def test_every_chapter_is_in_the_catalogue():
    toc = (REPO / "_toc.yml").read_text()
    for ch in catalogue.CHAPTERS:
        assert f"book/{ch.page}" in toc and (REPO / "book" / "recorded" / ch.recorded).is_dir()


def test_bookwide_rows_equal_the_chapters_scorecards():
    table = catalogue.bookwide()
    for ch in catalogue.CHAPTERS:
        rows = table[table.chapter == ch.page]
        shown = committed_summary(ch.page)
        assert set(rows.id) == set(shown) and len(rows) == len(ch.claims())
        for _, row in rows.iterrows():
            for column in ("claim", "paper", "ours", "verdict"):
                cell = f'<td data-label="{column}">{html.escape(row[column])}</td>'
                assert cell in shown[row.id], (ch.page, row.id, column)


def test_markdown_page_holds_every_row_and_links_the_chapter():
    table = catalogue.bookwide()
    page = catalogue.markdown(table)
    assert page.count("\n| ") == len(table) + 1  # header + one line per claim
    for _, row in table.iterrows():
        assert f"`{row.id}`" in page and f"**{row.verdict}**" in page
    assert "(lenet_mnist.ipynb)" in page
    assert f"{len(table)} claims:" in page


def test_the_readme_shows_the_bookwide_scorecard_the_code_computes():
    text = (REPO / "README.md").read_text()
    start, end = text.index(catalogue.README_START), text.index(catalogue.README_END) + len(catalogue.README_END)
    assert text[start:end] == catalogue.readme_block(), (
        "README.md's scorecard differs from the recorded runs': run `python -m lt_core.chapters.catalogue`")


def test_no_committed_chapter_carries_papermill_injected_parameters():
    """Re-executing a chapter with `papermill -f params/<file>.yaml` injects that file's default profile
    (quick, for make book) into the notebook, and nbval would then execute the chapter at quick: the
    committed notebooks run their own parameter cells (profile smoke)."""
    for path in sorted((REPO / "book").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        injected = [c for c in cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
        assert not injected, f"{path.name} carries an injected parameters cell: delete it and re-execute without -f"


def test_every_recorded_cell_is_compared_by_nbval():
    """The recorded part of a chapter (from its reproducibility summary to "This execution") computes
    only from the committed `book/recorded/` tables, the same on every CPU, so `make test`'s nbval run
    compares each such cell's output with the committed one: a code change that moves a recorded number
    or verdict fails until the chapter is executed again. The execution part trains, and other CPUs sum
    in other orders, so it only has to run (tests/test_chapter_numbers.py compares LeNet's within that
    spread). The marker is the cell tag, not a `# NBVAL_CHECK_OUTPUT` comment the page would show."""
    for ch in catalogue.CHAPTERS:
        cells = json.loads((REPO / "book" / f"{ch.page}.ipynb").read_text())["cells"]
        heading = lambda title: next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                                     and title in "".join(c["source"]).splitlines())
        start, end = heading("## Reproducibility summary"), heading("## This execution")
        recorded = [c for c in cells[start:end] if c["cell_type"] == "code"]
        assert len(recorded) >= 3, ch.page
        for c in recorded:
            assert "nbval-check-output" in c["metadata"].get("tags", []), (ch.page, "".join(c["source"])[:80])
        for c in cells:
            assert "NBVAL_" not in "".join(c["source"]), (ch.page, "an nbval comment shows on the page")
