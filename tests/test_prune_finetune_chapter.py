"""The prune-and-fine-tune chapter's tables and verdicts (lt_core/chapters/prune_finetune.py) on small made-up
runs whose answers are known: the pruned-before-retraining rows, the means per method, Tables 1 and 2, each
claim's measure and rule, the mask regions, and the figures on empty and full tables."""

import numpy as np
import pandas as pd
import pytest

from lt_core.book import scorecard as sc
from lt_core.chapters import prune_finetune as pf
from lt_core.chapters import prune_finetune_plots as pfp
from lt_core.procedures.base import Unit

STORED = {"model": "lenet_300_100", "weight_decay": 1e-4, "l1_penalty": 0.0}
DENSITIES = {0: 1.0, 1: 0.3, 2: 0.0818}


def run(acc: dict, start: dict | None = None, trials=(0, 1), **stored):
    """acc: (level, control) -> early-stop accuracy; start: level -> the fine-tuned unit's accuracy at
    iteration 0 (before retraining)."""
    rows = []
    for t in trials:
        for (level, control), a in acc.items():
            rows.append({"trial": t, "level": level, "control": control, "density": DENSITIES[level],
                         "early_stop_test_accuracy": a + 0.001 * t, "start_test_accuracy": (start or {}).get(level),
                         "density_fc1": DENSITIES[level] * 0.98, "quality_fc1": 0.5 * level if level else None})
    return pd.DataFrame(rows), {**STORED, **stored}


L2 = {(0, "dense"): 0.980, (1, "finetune"): 0.983, (2, "finetune"): 0.981, (2, "ticket"): 0.982,
      (2, "reinit"): 0.975, (2, "scratch"): 0.978, (2, "oneshot"): 0.979}


def test_combine_adds_the_pruned_rows_and_the_regularisation():
    summary = pf.combine([run(L2, {1: 0.97, 2: 0.90}), run({(0, "dense"): 0.979, (2, "finetune"): 0.977},
                                                           {2: 0.95}, weight_decay=0, l1_penalty=1e-4)])
    assert set(summary.regularisation) == {"L1", "L2"}
    pruned = summary[(summary.control == "pruned") & (summary.regularisation == "L2")]
    assert sorted(pruned.level.unique()) == [1, 2] and pruned.accuracy.max() == pytest.approx(0.97)
    table = pf.means(summary)
    assert table.loc[0, "ticket"] == pytest.approx(0.9805)  # the dense network starts every method's line
    assert table.loc[2, "scratch"] == pytest.approx(0.9785) and table.loc[2, "density"] == pytest.approx(0.0818)


def test_the_claims_verdicts_follow_the_numbers():
    summary = pf.combine([run(L2, {1: 0.97, 2: 0.90}),
                          run({(0, "dense"): 0.979, (2, "finetune"): 0.977}, {2: 0.95}, weight_decay=0, l1_penalty=1e-4)])
    card = sc.scorecard(pf.claims(), summary)
    assert card.loc["lenet300-12x", "verdict"] == sc.REPRODUCED  # +0.1 pts
    assert "1.95% -> 1.85%" in card.loc["lenet300-12x", "ours"]
    assert card.loc["keep-survivors", "verdict"] == sc.REPRODUCED  # beats scratch and reinit
    assert card.loc["l2-after-retraining", "verdict"] == sc.REPRODUCED  # 0.9815 vs 0.9775
    assert "-5.00 pts before retraining" in card.loc["l2-after-retraining", "ours"]
    assert card.loc["lenet5-12x", "verdict"] == sc.UNMEASURED
    worse = pf.combine([run({**L2, (2, "finetune"): 0.970, (2, "scratch"): 0.972}, {2: 0.9})])
    card = sc.scorecard(pf.claims(), worse)
    assert card.loc["lenet300-12x", "verdict"] == sc.NOT  # -1 point
    assert card.loc["keep-survivors", "verdict"] == sc.NOT
    assert card.loc["l2-after-retraining", "verdict"] == sc.UNMEASURED  # no L1 run


def test_a_run_short_of_the_papers_density_is_not_measured():
    DENSITIES[3] = 0.3
    try:
        summary = pf.combine([run({(0, "dense"): 0.98, (3, "finetune"): 0.98})])
        assert sc.scorecard(pf.claims(), summary).loc["lenet300-12x", "verdict"] == sc.UNMEASURED
    finally:
        del DENSITIES[3]


def test_tables_one_and_two():
    summary = pf.combine([run(L2, {1: 0.97, 2: 0.9})])
    t1 = pf.table1(summary)
    assert t1.iloc[0]["error before -> after (ours)"] == "1.95% -> 1.85%"
    assert t1.iloc[0]["compression (paper / ours)"] == "12x / 12.2x"
    t2 = pf.table2(summary)
    assert t2.loc["fc1", "kept % (paper)"] == 8 and t2.loc["fc1", "kept % (ours)"] == pytest.approx(8.0, abs=0.1)
    assert t2.loc["fc1", "quality q per round (ours)"] == "0.50, 1.00"


def test_mask_regions_measure_the_centre_against_the_border():
    mask = np.zeros((300, 784), dtype=bool)
    centre = np.zeros((28, 28), dtype=bool)
    centre[4:-4, 4:-4] = True
    mask[:30, centre.reshape(-1)] = True  # 10% of the centre's connections, none of the border's
    border, inside = pf.regions(mask)
    assert border == 0 and inside == pytest.approx(0.1)
    summary = pf.combine([(*run(L2, {2: 0.9}, trials=(0,)), {Unit(0, 2, "finetune"): mask})])
    card = sc.scorecard(pf.claims(), summary)
    assert card.loc["first-layer-centre", "verdict"] == sc.REPRODUCED
    mask[:, ~centre.reshape(-1)] = True  # the whole border kept: the centre no longer stands out
    summary = pf.combine([(*run(L2, {2: 0.9}, trials=(0,)), {Unit(0, 2, "finetune"): mask})])
    assert sc.scorecard(pf.claims(), summary).loc["first-layer-centre", "verdict"] == sc.NOT


def test_figures_draw_full_and_empty_tables():
    summary = pf.combine([run(L2, {1: 0.97, 2: 0.9})])
    empty = pf.combine([])
    imp = pd.DataFrame({"control": ["ticket"] * 2, "level": [0, 1], "density": [1.0, 0.5],
                        "early_stop_test_accuracy": [0.98, 0.981]})
    for table in (summary, empty):
        assert pfp.accuracy_vs_density(table, imp).axes
        assert pfp.regularisation_figure(table).axes
    curves = pd.DataFrame({"split": "test", "level": 2, "control": ["finetune", "ticket"], "iteration": [0, 0],
                           "accuracy": [0.9, 0.1]})
    assert pfp.level_view(curves, np.ones((300, 784), dtype=bool), 2, 0.08).axes
    assert pfp.mask_pair({"a": np.ones((300, 784), dtype=bool)}).axes
    assert pf.methods_table(empty).empty and pf.table1(empty).empty


def test_hans_masks_are_set_beside_the_imp_ticket_of_the_nearest_density():
    summary = pf.combine([run(L2, {1: 0.97, 2: 0.9})])
    imp = pd.DataFrame({"level": [0, 5, 11, 11], "control": ["ticket", "ticket", "ticket", "reinit"],
                        "density": [1.0, 0.33, 0.087, 0.087], "early_stop_test_accuracy": [0.98, 0.981, 0.983, 0.97]})
    table = pf.against_imp(summary, imp)
    assert table.loc[2, "IMP level"] == 11 and table.loc[2, "IMP ticket %"] == pytest.approx(98.3)
    assert table.loc[2, "Han's mask on theta_0 %"] == pytest.approx(98.25) and table.loc[2, "IMP reinit %"] == 97.0
    assert table.loc[1, "IMP level"] == 5 and np.isnan(table.loc[1, "IMP reinit %"])
    assert pf.against_imp(summary, None).empty


def test_the_margin_note_says_when_a_verdict_rests_on_trial_noise():
    l1 = lambda acc, t: run({(0, "dense"): 0.979, (2, "finetune"): acc}, {2: 0.95}, trials=(t,))[0]
    # L2's fine-tuned net at level 2: 0.981 (trial 0), 0.982 (trial 1); L1's: 0.9815, 0.9795 (run adds 0.001 t)
    noisy = pf.combine([run(L2, {2: 0.90}), (pd.concat([l1(0.9815, 0), l1(0.9785, 1)]),
                                             {**STORED, "weight_decay": 0, "l1_penalty": 1e-4})])
    note = pf.margin_note(pf.claims(), noisy)
    assert note.startswith("l2-after-retraining reads reproduced by its rule on a margin of +0.10 pts; "
                           "1 of 2 trials agree (-0.05 pts to +0.25 pts over trials)")
    assert "within trial-to-trial noise" in note
    clear = pf.combine([run(L2, {2: 0.90}), run({(0, "dense"): 0.979, (2, "finetune"): 0.970}, {2: 0.95},
                                                weight_decay=0, l1_penalty=1e-4)])
    note = pf.margin_note(pf.claims(), clear)
    assert "2 of 2 trials agree" in note and "larger than the spread" in note
    assert pf.margin_note(pf.claims(), pf.combine([run(L2, {2: 0.9})])) == "l2-after-retraining is not measured here."


def test_the_mask_figure_alt_text_holds_for_the_recorded_runs():
    """Fig. 16's alt text: Han's two masks are dark at the border beside the centre, the ticket's border is not."""
    pictures = pf.mask_pictures()
    if len(pictures) < 3:
        pytest.skip("the recorded masks are not in this checkout")
    ratio = {label.split(",")[0]: pf.regions(m)[1] / pf.regions(m)[0] for label, m in pictures.items()}
    assert ratio["Han: iterative"] > 5 and ratio["Han: one-shot"] > 5 and ratio["IMP ticket (F&C)"] < 3


def test_the_zoomed_panel_never_shows_more_than_the_whole_range():
    """The right panel zooms from 2 points below the best; where every point lies above that, the window is
    cut to the left panel's range (it showed 96.5-98.5% beside a whole range of 97.1-98.5%) and says so."""
    near = pf.combine([run(L2)])  # every method within 98.0-98.3%
    fig = pfp.accuracy_vs_density(near)
    (full_lo, full_hi), (zoom_lo, zoom_hi) = fig.axes[0].get_ylim(), fig.axes[1].get_ylim()
    assert full_lo <= zoom_lo and zoom_hi <= full_hi and "whole range" in fig.axes[1].get_title()
    wide = pfp.accuracy_vs_density(pf.combine([run(L2, start={2: 0.5})]))  # pruned, not retrained: 50%
    assert wide.axes[1].get_ylim()[0] > wide.axes[0].get_ylim()[0] and "whole range" not in wide.axes[1].get_title()
