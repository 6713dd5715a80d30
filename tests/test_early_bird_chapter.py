"""The finding-tickets-early chapter's tables (lt_core/chapters/early_bird.py) on a small made-up IMP summary
whose answers are known: trajectories read from summary.csv's text as from summary.json's lists, where each
round settled, the early draws against the end, the cost saved, the findings, the paper's claims (not
measured without the structured search), the structured search's settle table and eb-emerge score, and the
figures on empty and full tables."""

import math

import pandas as pd
import pytest
from matplotlib.figure import Figure

from lt_core.book import scorecard as sc
from lt_core.chapters import early_bird as eb
from lt_core.chapters import early_bird_channels as ebc
from lt_core.chapters import early_bird_plots as ebp

ITERATIONS = 400
DENSITY = {0: 1.0, 1: 0.8, 2: 0.64}
# per level of ticket: (the recorded masks' distance to the final one, where the rule fired or None)
TRAJECTORY = {0: ([0.3, 0.2, 0.1, 0.0], 300), 1: ([0.2, 0.1, 0.05, 0.0], None), 2: ([0.1, 0.05, 0.02, 0.0], 200)}


def ticket(trial, level, acc, as_text):
    to_final, fired = TRAJECTORY[level]
    steps = [100, 200, 300, 400]
    distances = [[s, None if i == 0 else round(to_final[i - 1] - to_final[i], 3), f]
                 for i, (s, f) in enumerate(zip(steps, to_final))]
    matrix = [[abs(a - b) for b in to_final] for a in to_final]
    return {"trial": trial, "level": level, "control": "ticket", "draw": 0, "density": DENSITY[level],
            "early_stop_test_accuracy": acc, "final_iteration": ITERATIONS, "seconds": 40.0,
            "mask_settled_iteration": fired, "mask_distances": str(distances) if as_text else distances,
            "mask_distance_matrix": str(matrix) if as_text else matrix}


def early(trial, level, draw, at, acc, far, settled=math.nan):
    return {"trial": trial, "level": level, "control": "early", "draw": draw, "density": DENSITY[level],
            "early_stop_test_accuracy": acc, "final_iteration": ITERATIONS, "seconds": 40.0,
            "mask_drawn_iteration": at, "mask_settled": settled, "distance_to_final_mask": far}


def summary(as_text=True, trials=(0, 1)):
    rows = []
    for t in trials:
        bump = 0.002 * t
        rows += [ticket(t, 0, 0.98 + bump, as_text), ticket(t, 1, 0.982 + bump, as_text),
                 ticket(t, 2, 0.981 + bump, as_text)]
        # level 2's draws come from level 1's trajectory, which never settled: draw 0 is its end
        rows += [early(t, 2, 0, 400, 0.981 + bump, 0.0, settled=False), early(t, 2, 1, 100, 0.970 + bump, 0.2),
                 early(t, 1, 0, 300, 0.980 + bump, 0.1, settled=True), early(t, 1, 1, 100, 0.975 + bump, 0.3)]
        rows.append({"trial": t, "level": 2, "control": "reinit", "draw": 0, "density": 0.64,
                     "early_stop_test_accuracy": 0.975 + bump, "final_iteration": ITERATIONS, "seconds": 40.0})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("as_text", [True, False])
def test_trajectories_read_alike_from_csv_text_and_from_lists(as_text):
    traj = eb.trajectories(summary(as_text))
    level1 = traj[(traj.trial == 0) & (traj.level == 1)]  # the level-0 ticket's: the masks of level 1
    assert list(level1.iteration) == [100, 200, 300, 400] and list(level1.to_final) == [0.3, 0.2, 0.1, 0.0]
    assert math.isnan(level1.to_previous.iloc[0]) and level1.density.iloc[0] == 0.8
    matrix, iterations = eb.trajectory_matrix(summary(as_text), level=1)
    assert iterations == [100, 200, 300, 400] and matrix[0, 3] == pytest.approx(0.3) and matrix[2, 2] == 0


def test_settle_table_says_where_each_round_settled_and_how_far_from_the_end():
    table = eb.settle_table(summary())
    # levels 1 and 2 (the last ticket's trajectory, level 3's masks, names no trained level)
    assert list(table.index) == [1, 2]
    assert table.loc[1, "settled at (iteration)"] == 300 and table.loc[1, "trials settled"] == "2 of 2"
    assert table.loc[1, "share of training %"] == 75.0 and table.loc[1, "distance to final mask"] == 0.1
    assert table.loc[2, "settled at (iteration)"] == "never" and table.loc[2, "trials settled"] == "0 of 2"


def test_draws_name_each_ticket_and_gaps_are_early_minus_end():
    table = eb.draws(summary())
    assert eb.draw_order(table) == ["iteration 100", eb.SETTLED, eb.END]
    assert set(table[table.draw == eb.END].drawn_at) == {ITERATIONS}
    value, levels = eb.gap(table, "iteration 100")
    assert levels == 2 and value == pytest.approx(100 * ((0.970 - 0.981) + (0.975 - 0.982)) / 2)
    assert eb.gap(table, eb.SETTLED)[0] == pytest.approx(100 * (0 + (0.980 - 0.982)) / 2)
    acc = eb.accuracy_table(summary())
    assert acc.loc[2, "iteration 100"] == pytest.approx(97.1) and acc.loc[2, "reinit (mask at the end, fresh weights)"] == 97.6
    assert acc.loc[1, "settled mask drawn at"] == 300


def test_cost_saved_is_the_rest_of_the_round_pro_rata():
    cost = eb.cost_saved(summary())
    assert cost.loc["iteration 100", "iterations saved a round"] == 300
    assert cost.loc["iteration 100", "CPU seconds saved a round (pro rata)"] == 30.0  # 3/4 of 40 s
    assert cost.loc[eb.END, "iterations saved a round"] == 0
    assert cost.loc[eb.SETTLED, "drawn at (mean iteration)"] == 350  # 300 at level 1, 400 at level 2


def test_findings_state_computed_numbers():
    found = eb.findings(summary())
    text = " ".join(found.ours)
    assert "2 of 4 rounds" in found.ours.iloc[0] and "iteration 300" in found.ours.iloc[0]
    assert "-0.90 pts over 2 levels" in text  # iteration 100 minus end: (-1.1 - 0.7) / 2
    # each early draw minus reinit at level 2: 97.0 - 97.5 and 98.1 - 97.5
    assert found.ours.iloc[-1] == "iteration 100 -0.50 pts; settled +0.60 pts (over 1 level)"
    assert eb.findings(summary().iloc[0:0]).empty


def rewound(shift=0.004):
    """The made-up run with every network rewound: each early draw `shift` higher, the end ticket alike, one
    trial, and level 1 without early draws (so that only level 2 is compared)."""
    moved = summary(trials=(0,))
    moved = moved[~((moved.control == "early") & (moved.level == 1))].copy()
    moved.loc[moved.control == "early", "early_stop_test_accuracy"] += shift
    return moved


def test_reset_table_compares_the_draws_at_the_levels_both_resets_trained():
    table = eb.reset_table({"theta_0": summary(), "rewound": rewound()})
    assert list(table.index) == ["iteration 100", eb.SETTLED, eb.END]
    # level 2 only: theta_0 over trials 0 and 1 (97.0, 97.2), rewound trial 0 at 97.0 + 0.4
    assert table.loc["iteration 100", "theta_0: accuracy %"] == pytest.approx(97.1)
    assert table.loc["iteration 100", "theta_0: minus end, pts"] == pytest.approx(-1.1)
    assert table.loc["iteration 100", "rewound: accuracy %"] == pytest.approx(97.4)
    assert table.loc["iteration 100", "rewound: minus end, pts"] == pytest.approx(-0.7)
    assert table.loc[eb.SETTLED, "rewound: minus end, pts"] == pytest.approx(0.4)
    assert table.loc[eb.END, "rewound: minus end, pts"] == 0.0
    assert eb.reset_table({"theta_0": summary().iloc[0:0]}).empty


def test_the_rewound_run_adds_its_own_finding():
    assert len(eb.findings(summary())) == 4
    found = eb.findings(summary(), rewound(), rewind_iteration=1000)
    assert len(found) == 5 and "rewound to iteration 1,000" in found.finding.iloc[-1]
    assert found.ours.iloc[-1] == ("iteration 100 -0.70 pts; settled +0.40 pts (over 1 level, 1 trial(s)); the mask "
                                   "settled in 1 of 2 rounds; median at iteration 300 (75% of training)")
    assert len(eb.findings(summary(), rewound().iloc[0:0], 1000)) == 4


def test_without_the_structured_search_the_papers_claims_are_not_measured():
    card = sc.scorecard(eb.claims(), summary())
    assert set(card.verdict) == {sc.UNMEASURED}
    assert "not in this checkout" in card.loc["eb-emerge", "ours"] and "no trained channel tickets" in card.loc["eb-retrain", "ours"]


# The structured search (lt_core/chapters/early_bird_channels.py): masks at iterations 100..800, an epoch of
# (50,000 - 5,000) // 450 = 100 iterations. Each trajectory's masks lie at "positions" p, distance |p_i - p_j|;
# with the rule's window of 4 and threshold 0.1: B settles at mask 4 (iteration 500), A at mask 5 (600), C never.
MASK_AT = [100 * k for k in range(1, 9)]
P = {"A": [0.2, 0.1, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03], "B": [0.1, 0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03],
     "C": [0.2 * k for k in range(8)]}
SETTLED = {"A": 600, "B": 500, "C": None}


def search_rows(as_text=True, trials=(0, 1), lr_drops=(600, 700)):
    shapes = {0: {0.3: "B", 0.5: "A"}, 1: {0.3: "B", 0.5: "C"}}
    rows = []
    for t in trials:
        ratios = [{"ratio": r, "settled_iteration": SETTLED[k], "iterations": MASK_AT,
                   "matrix": [[round(abs(a - b), 5) for b in P[k]] for a in P[k]]} for r, k in shapes[t].items()]
        rows.append({"trial": t, "level": 0, "control": "search", "draw": 0, "density": 1.0,
                     "early_stop_test_accuracy": 0.9, "early_stop_iteration": 700, "final_test_accuracy": 0.89,
                     "seconds": 100.0 + t, "steps_per_second": 8.0, "ratios": str(ratios) if as_text else ratios})
    config = {"dataset": "cifar10", "val_size": 5000, "batch_size": 450, "iterations": 800,
              "lr_drops": list(lr_drops)}
    return pd.DataFrame(rows), config


@pytest.mark.parametrize("as_text", [True, False])
def test_the_channel_settle_table_reads_each_ratios_trajectory(as_text):
    rows = ebc.scored(*search_rows(as_text))
    table = ebc.settle_table(rows)
    first, second = table.loc["30%"], table.loc["50%"]
    assert first["trials settled"] == "2 of 2" and first["settled at (epoch)"] == 5.0 and first.iteration == 500
    assert first["share of training %"] == 62.5 and first["before the first lr drop"] == "2 of 2"
    assert first["distance to the last mask"] == pytest.approx(0.03) and first["fires for thresholds above"] == pytest.approx(0.04)
    # up to the drop at 600, masks 4 and 5 (iterations 500, 600) have a full window: B 0.04, A 0.05, C 0.8
    assert first["closest before the drop"] == pytest.approx(0.04)
    assert second["closest before the drop"] == pytest.approx((0.05 + 0.8) / 2)
    # A's mask at 600, the drop's own iteration, was trained at the first rate only (steps 0..599): it counts;
    # C never settles, and its window distances are all 0.8
    assert second["trials settled"] == "1 of 2" and second["before the first lr drop"] == "1 of 2"
    assert second["distance to the last mask"] == pytest.approx(0.02)
    assert second["fires for thresholds above"] == pytest.approx((0.04 + 0.8) / 2)
    matrix, iterations = ebc.channel_matrix(rows, 0.5, trial=1)
    assert iterations == MASK_AT and matrix[7][0] == pytest.approx(1.4)
    assert ebc.channel_matrix(rows, 0.7)[1] == []
    dense = ebc.dense_table(rows)
    assert list(dense["at the early stop"]) == [90.0, 90.0] and list(dense["early-stop epoch"]) == [7.0, 7.0]
    assert list(dense["at the end"]) == [89.0, 89.0] and list(dense["training seconds"]) == [100, 101]
    assert ebc.dense_table(rows.iloc[0:0]).empty


@pytest.mark.parametrize("drops, verdict, value", [((600, 700), sc.PARTLY, 0.75), ((500,), sc.PARTLY, 0.5),
                                                   ((300,), sc.NOT, 0.0), ((), sc.PARTLY, 0.75)])
def test_eb_emerge_is_the_share_of_ratios_settled_before_the_first_drop(drops, verdict, value):
    """Scored on the unstructured run's summary with the search's rows beside it (scoring_summary); no drop
    at all means the whole run is at the first rate."""
    scored = eb.scoring_summary(summary(), search_rows(lr_drops=drops))
    m, v = sc.judge(eb.claims()[0], scored)
    assert (m.value, v) == (pytest.approx(value), verdict)
    assert "8 epochs" in m.shown and "30% removed: epoch 5.0 (62% of training)" in m.shown
    card = sc.scorecard(eb.claims(), scored, trials=True)
    assert list(card.verdict)[1:] == [sc.UNMEASURED, sc.UNMEASURED]
    only_first = eb.scoring_summary(summary(trials=(0,)), search_rows(trials=(0,), lr_drops=(600,)))
    assert sc.judge(eb.claims()[0], only_first)[1] == sc.REPRODUCED


def test_the_spread_over_trials_reads_each_trials_search():
    card = sc.scorecard(eb.claims(), eb.scoring_summary(summary(), search_rows(lr_drops=(700,))), trials=True)
    assert card.loc["eb-emerge", "over trials"] == "50% to 100%" and card.loc["eb-emerge", "trials agreeing"] == "1 of 2"
    # three LeNet trials beside the search's first alone: only the search's trial measures eb-emerge
    alone = sc.scorecard(eb.claims(), eb.scoring_summary(summary(trials=(0, 1, 2)), search_rows(trials=(0,))), trials=True)
    assert alone.loc["eb-emerge", "over trials"] == "one trial" and alone.loc["eb-emerge", "trials agreeing"] == ""


def test_figures_draw_on_full_and_empty_tables():
    full, empty = summary(), summary().iloc[0:0]
    for table in (full, empty):
        assert isinstance(ebp.matrices(table, [1, 2]), Figure)
        assert isinstance(ebp.distances(table), Figure)
        assert isinstance(ebp.early_vs_end(table), Figure)
    assert isinstance(ebp.draw_view(full, "iteration 100"), Figure)
    rows = ebc.scored(*search_rows())
    for table in (rows, rows.iloc[0:0]):
        assert isinstance(ebp.channel_matrices(table), Figure)


def test_the_distance_figure_draws_the_levels_trained_only():
    """The last ticket's trajectory (level 2's: the masks of a level 3 that was not trained) is left out, as
    the settle table leaves it out; its settle dot with it."""
    left = ebp.distances(summary()).axes[0]
    labels = [line.get_label() for line in left.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["P_m 80.0%", "P_m 64.0%"] and "level 3" not in labels
    assert list(eb.settle_table(summary()).index) == [1, 2]
    dots = [line for line in left.get_lines() if line.get_label().startswith("_")]
    assert len(dots) == 1  # level 1's mask settled (the level-0 ticket's rule fired); level 3's dot is gone


def test_the_rule_fired_marker_survives_the_books_palette():
    """A white star edged in black on the heat map, not a red dot (quantised away in the 128-colour PNGs)."""
    fig = ebp.channel_matrices(ebc.scored(*search_rows()))
    marks = [line for ax in fig.axes for line in ax.get_lines() if line.get_label() == "rule fired"]
    assert marks and all(m.get_marker() == "*" and m.get_markerfacecolor() == "white"
                         and m.get_markeredgecolor() == "black" for m in marks)


def test_rule_at_reads_where_each_threshold_would_fire_from_the_matrix():
    """Level 1's masks (the level-0 ticket's trajectory): distances |a - b| of 0.3, 0.2, 0.1, 0; with a window
    of 2 the largest distance to the two before is 0.2 at masks 2 and 3."""
    table = eb.rule_at(summary(), thresholds=(0.15, 0.25), window=2)
    assert table.loc[1, "fires at 0.15"] == "never" and table.loc[1, "fires at 0.25"] == "300"
    assert table.loc[1, "fires for thresholds above"] == pytest.approx(0.2)


def with_tickets(rows_config, accuracies):
    """The search rows plus trained channel tickets: accuracies[(trial, ratio)] = {control: accuracy}."""
    rows, config = rows_config
    extra = [{"trial": t, "level": 1 + [0.3, 0.5].index(r), "control": c, "draw": 0, "density": 0.6 - 0.2 * (r > 0.4),
              "early_stop_test_accuracy": a, "ratio": r, "mask_drawn_iteration": 500 if c != "end" else 800,
              "distance_to_end_mask": 0.0 if c == "end" else 0.05}
             for (t, r), controls in accuracies.items() for c, a in controls.items()]
    return pd.concat([rows, pd.DataFrame(extra)], ignore_index=True), config


TICKET_ACC = {(0, 0.3): {"early": 0.895, "end": 0.893, "reinit": 0.88}, (1, 0.3): {"early": 0.90, "end": 0.899},
              (0, 0.5): {"early": 0.88, "end": 0.89}, (1, 0.5): {"early": 0.88, "end": 0.89}}


def test_the_ticket_table_sets_each_ratios_tickets_side_by_side():
    table = ebc.ticket_table(ebc.scored(*with_tickets(search_rows(), TICKET_ACC)))
    first, second = table.loc["30%"], table.loc["50%"]
    assert first["drawn where the rule fired %"] == 89.75 and first["drawn at the end %"] == 89.6
    assert first["early minus end (pts)"] == pytest.approx(0.15) and first["early mask, fresh weights %"] == 88.0
    assert second["early minus end (pts)"] == pytest.approx(-1.0) and first["dense (searched) %"] == 90.0
    assert first["early drawn at (iteration)"] == 500 and second["weights kept %"] == 40.0
    assert first["search saved by the early draw %"] == 37.5  # drawn at 500 of the search's 800 iterations
    assert ebc.ticket_table(ebc.scored(*search_rows())).empty


def test_the_trained_tickets_score_eb_distance_and_eb_retrain():
    """eb-distance: early minus end, per trial, then averaged: +0.15 at 30%, -1.0 at 50%, so partly; eb-retrain:
    early minus the dense searched network (90%): -0.25 and -2.0, partly. The LeNet run's own control "early"
    beside them does not count; without tickets both are not measured."""
    scored = eb.scoring_summary(summary(), with_tickets(search_rows(), TICKET_ACC))
    card = sc.scorecard(eb.claims(), scored, trials=True)
    assert list(card.verdict) == [sc.PARTLY, sc.PARTLY, sc.PARTLY]
    assert "30% removed +0.15 pts; 50% removed -1.00 pts" in card.loc["eb-distance", "ours"]
    assert "30% removed -0.25 pts; 50% removed -2.00 pts" in card.loc["eb-retrain", "ours"]
    assert "removed: not measured" not in card.loc["eb-distance", "ours"]  # both ratios searched are trained
    held = {**TICKET_ACC, (0, 0.5): {"early": 0.898, "end": 0.90}, (1, 0.5): {"early": 0.897, "end": 0.90}}
    card = sc.scorecard(eb.claims(), eb.scoring_summary(summary(), with_tickets(search_rows(), held)))
    assert card.loc["eb-distance", "verdict"] == card.loc["eb-retrain", "verdict"] == sc.REPRODUCED
    # the 50% ratio searched but its tickets not trained: not measured there, so partly at best, and ours says so
    only_30 = {k: v for k, v in TICKET_ACC.items() if k[1] == 0.3}
    card = sc.scorecard(eb.claims(), eb.scoring_summary(summary(), with_tickets(search_rows(), only_30)))
    assert card.loc["eb-distance", "verdict"] == card.loc["eb-retrain", "verdict"] == sc.PARTLY
    assert card.loc["eb-distance", "ours"].endswith("30% removed +0.15 pts; 50% removed: not trained, so not measured (2 trials)")
    assert "paper-claims" not in card.loc["eb-distance", "paper"] and "You et al." in card.loc["eb-distance", "paper"]
    bare = sc.scorecard(eb.claims(), eb.scoring_summary(summary(), search_rows()))
    assert list(bare.verdict)[1:] == [sc.UNMEASURED] * 2 and "no trained channel tickets" in bare.loc["eb-retrain", "ours"]


def test_the_recorded_runs_table_describes_the_search_and_its_tickets():
    rows, config = with_tickets(search_rows(), TICKET_ACC)
    stored = {**config, "ratios": [0.3, 0.5], "bn_l1": 1e-4, "mask_every": 100, "ticket_controls": ["early", "end"]}
    _, columns, _ = ebc.describe(rows, stored)
    assert "tickets early, end trained at 30%, 50% removed" in columns["what"] and columns["levels"] == "dense + tickets"
    _, columns, _ = ebc.describe(search_rows()[0], {**stored, "ticket_controls": []})
    assert columns["what"].endswith("every 100 steps") and columns["levels"] == "dense"
