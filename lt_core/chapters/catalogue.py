"""The book's chapters in one list, and the book-wide scorecard built from it.

Each entry names a chapter's page, its claims (from the chapter's module), and the recorded run it quotes.
`bookwide` scores every chapter's claims on its recorded run with the very code the chapter calls
(lt_core.book.scorecard), so the book-wide page (book/scorecard.md, filled in by tools/build_book.py) and
the chapters cannot disagree; tests/test_bookwide.py checks the rows against the committed chapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from ..book import scorecard
from ..runs import recorded as recorded_runs
from . import early_bird, edge_popup, lenet_mnist, prune_finetune, stability, transfer


@dataclass(frozen=True)
class Chapter:
    page: str            # the notebook's stem under book/
    title: str
    paper: str           # short citation
    claims: Callable[[], list]
    recorded: str        # book/recorded/<name>: the run the chapter quotes
    tables: Callable | None = None  # () -> (curves, summary, run scale), for a chapter that quotes several runs


CHAPTERS = [
    Chapter("lenet_mnist", "LeNet-300-100 on MNIST", "Frankle & Carbin 2019", lenet_mnist.claims,
            "lenet_mnist_paper"),
    Chapter("edge_popup", "Edge-popup: subnetworks hidden in random weights", "Ramanujan et al. 2020",
            edge_popup.claims, "edge_popup_lenet_signed_constant_scaled", edge_popup.bookwide_tables),
    Chapter("prune_finetune", "Prune and fine-tune, against winning tickets", "Han et al. 2015",
            prune_finetune.claims, "prune_finetune_lenet_l2", prune_finetune.bookwide_tables),
    Chapter("transfer", "One ticket to win them all? Tickets between datasets", "Morcos et al. 2019",
            transfer.claims, "transfer_lenet_mnist_fmnist", transfer.bookwide_tables),
    Chapter("early_bird", "Finding tickets early: when does the mask settle?", "beyond the papers; You et al. 2020",
            early_bird.claims, early_bird.RECORDED, early_bird.bookwide_tables),
    Chapter("stability", "Late resetting and stability", "Frankle et al. 2019, 2020", stability.claims,
            "stability_lenet_k0", stability.bookwide_tables),
]


def run_scale(summary: pd.DataFrame, stored: dict) -> str:
    """'recorded, 3 trials x 50,000 iterations, 138 networks'."""
    return (f"recorded, {summary.trial.nunique()} trials x {int(stored['iterations']):,} iterations, "
            f"{len(summary)} networks")


def bookwide(chapters=CHAPTERS) -> pd.DataFrame:
    """Every claim of every chapter scored on the chapter's recorded run: chapter, claim id, claim, paper,
    ours, verdict and the scale of the run. A chapter without its recorded run gives one row saying so."""
    rows = []
    for ch in chapters:
        if ch.tables is not None:
            curves, summary, scale = ch.tables()
        else:
            rec = recorded_runs.recorded(ch.recorded)
            if rec is None:
                rows.append({"chapter": ch.page, "id": "", "claim": f"no recorded run book/recorded/{ch.recorded}",
                             "paper": "", "ours": "", "verdict": scorecard.UNMEASURED, "run": ""})
                continue
            curves, summary, doc = rec
            scale = run_scale(summary, doc["config"])
        card = scorecard.scorecard(ch.claims(), summary, curves)
        for claim_id, row in card.iterrows():
            rows.append({"chapter": ch.page, "id": claim_id, "claim": row.claim, "paper": row.paper,
                         "ours": row.ours, "verdict": row.verdict, "run": scale})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, chapters=CHAPTERS, link: str = "{page}.ipynb") -> str:
    """The book-wide table as a (MyST) markdown table, each chapter's name linking to `link` (its page in
    the book; the README links the notebook under book/)."""
    titles = {ch.page: f"[{ch.title}]({link.format(page=ch.page)}) ({ch.paper})" for ch in chapters}
    cols = ["chapter", "claim", "paper", "ours", "verdict", "run"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        cells = [titles.get(row.chapter, row.chapter), f"{row.claim} (`{row.id}`)" if row.id else row.claim,
                 row.paper, row.ours, f"**{row.verdict}**", row.run]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    counts = table.verdict.value_counts()
    summary = ", ".join(f"{counts.get(v, 0)} {v}" for v in (scorecard.REPRODUCED, scorecard.PARTLY,
                                                             scorecard.NOT, scorecard.UNMEASURED))
    return f"{len(table)} claims: {summary}.\n\n" + "\n".join(lines) + "\n"


README_START, README_END = "<!-- scorecard: python -m lt_core.chapters.catalogue -->", "<!-- /scorecard -->"


def readme_block() -> str:
    """What the README shows between its scorecard markers (tests/test_bookwide.py keeps them equal)."""
    return f"{README_START}\n{markdown(bookwide(), link='book/{page}.ipynb')}{README_END}"


def main() -> int:
    """Rewrite the README's scorecard block from the recorded runs (atomically)."""
    from ..data.files import atomic_write
    from ..provenance import REPO
    path = REPO / "README.md"
    text = path.read_text()
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    atomic_write(path, text[:start] + readme_block() + text[end:])
    print(f"wrote the scorecard of {len(CHAPTERS)} chapter(s) into {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
