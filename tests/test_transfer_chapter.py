"""The ticket-transfer chapter's tables and verdicts (lt_core/chapters/transfer.py) on small made-up runs whose
answers are known: own tickets from the source runs, the means per control, the gaps over the sparse levels,
each claim's rule, and the figures on empty and full tables."""

import numpy as np
import pandas as pd
import pytest

from lt_core.book import scorecard as sc
from lt_core.chapters import transfer as tr
from lt_core.chapters import transfer_plots as trp
from lt_core.provenance import REPO
from lt_core.runs import results

DENSITIES = {0: 1.0, 4: 0.41, 8: 0.168, 12: 0.069, 18: 0.018}


def target(source: str, data: str, acc: dict, fraction: float = 1.0, trials=(0, 1), optimizers=("adam", "adam")):
    """A transfer run: acc is (level, control) -> early-stop accuracy (trial t adds 0.001 t)."""
    stored = {"experiment": f"t_{source}_{data}", "procedure": "transfer", "dataset": data, "optimizer": optimizers[1],
              "source": {"experiment": f"s_{source}", "dataset": source, "train_fraction": fraction,
                         "optimizer": optimizers[0]}}
    return _rows(acc, trials), stored


def source(data: str, acc: dict, trials=(0, 1), optimizer="adam"):
    """A source IMP run: acc is level -> the ticket's accuracy."""
    return _rows({(level, "ticket"): a for level, a in acc.items()}, trials), \
        {"experiment": f"s_{data}", "procedure": "imp", "dataset": data, "optimizer": optimizer}


def _rows(acc, trials):
    return pd.DataFrame([{"trial": t, "level": level, "control": control, "density": DENSITIES[level],
                          "early_stop_test_accuracy": a + 0.001 * t}
                         for t in trials for (level, control), a in acc.items()])


def moved(dense, ticket, reinit, random):
    """Transfer accuracies at levels 0, 8, 12 (8 and 12 lie in the sparse span), controls at 8 and 12."""
    out = {(0, "transfer"): dense}
    for level in (8, 12):
        out.update({(level, "transfer"): ticket, (level, "transfer_reinit"): reinit, (level, "random"): random})
    return out


OWN = {0: 0.90, 8: 0.91, 12: 0.90}


def runs(ticket=0.905, random=0.88, ticket_back=0.975, tenth=None):
    out = [target("mnist", "fashion_mnist", moved(0.90, ticket, 0.89, random)),
           target("fashion_mnist", "mnist", moved(0.98, ticket_back, 0.97, 0.96)),
           source("fashion_mnist", OWN), source("mnist", {0: 0.98, 8: 0.982, 12: 0.98})]
    if tenth is not None:
        out.append(target("mnist", "mnist", {(0, "transfer"): 0.98, (8, "transfer"): tenth, (12, "transfer"): tenth},
                          fraction=0.1))
    return tr.combine(out)


def test_a_source_run_is_the_other_directions_own_ticket():
    summary = runs()
    own = summary[summary.control == "own"]
    assert set(zip(own.source_data, own.target_data)) == {("mnist", "mnist"), ("fashion_mnist", "fashion_mnist")}
    rows = tr.direction(summary, "mnist", "fashion_mnist")
    assert set(rows.control) == {"own", "transfer", "transfer_reinit", "random"}
    assert set(rows[rows.control == "own"].target_data) == {"fashion_mnist"}
    table = tr.means(rows)
    assert list(table.index) == [0, 8, 12]  # whole levels
    assert table.loc[0, "random"] == table.loc[0, "own"] == pytest.approx(0.9005)  # dense from the target's init
    assert table.loc[8, "transfer"] == pytest.approx(0.9055)


def test_gaps_average_the_sparse_levels_or_take_the_sparsest_one():
    rows = tr.direction(runs(), "mnist", "fashion_mnist")
    gap, where, trials = tr.gaps(rows, "own")
    assert gap == pytest.approx(100 * ((0.905 - 0.91) + (0.905 - 0.90)) / 2) and trials == 2
    assert where == "2 levels, P_m 17% to 6.9%"
    short = rows[rows.level.isin([0, 4]) | (rows.control == "own")]
    assert np.isnan(tr.gaps(short, "random")[0])  # no random ticket at all
    one = pd.concat([rows[rows.level == 0], rows[rows.level == 8]])
    one = one.assign(density=one.density.where(one.level == 0, 0.5))  # outside the span: the sparsest level only
    assert tr.gaps(one, "random")[1] == "P_m 50.0% only"


def test_the_claims_verdicts_follow_the_numbers():
    card = sc.scorecard(tr.claims(), runs(tenth=0.97))
    assert card.loc["close-to-own", "verdict"] == sc.REPRODUCED  # 0 and -0.55 points
    assert card.loc["beats-random", "verdict"] == sc.REPRODUCED  # +2.5 and +1.5 points
    assert card.loc["larger-source", "verdict"] == sc.REPRODUCED  # own 98.1 against a tenth's 97.0
    assert "+1.10 pts" in card.loc["larger-source", "ours"]
    assert card.loc["across-optimizers", "verdict"] == card.loc["natural-images", "verdict"] == sc.UNMEASURED
    worse = sc.scorecard(tr.claims(), runs(ticket=0.87, random=0.875, ticket_back=0.95))
    assert worse.loc["close-to-own", "verdict"] == sc.NOT  # -3.5 and -3.05 points
    assert worse.loc["beats-random", "verdict"] == sc.NOT  # -0.5 and -1.0 points
    assert worse.loc["larger-source", "verdict"] == sc.UNMEASURED  # no tenth-of-MNIST run
    one_way = sc.scorecard(tr.claims(), runs(random=0.91, ticket_back=0.975))
    assert one_way.loc["beats-random", "verdict"] == sc.PARTLY  # -0.5 one way, +1.5 the other


def test_what_transfers_splits_the_mask_from_its_weights():
    table = tr.what_transfers(runs())
    row = table.loc["MNIST -> Fashion-MNIST"]
    assert row["ticket - mask on fresh weights (the weights)"] == pytest.approx(1.5)
    assert row["mask on fresh weights - random (the mask)"] == pytest.approx(1.0)
    assert row["levels: ticket - own"] == row["levels: fresh weights"] == 2 and row.trials == 2


def test_what_transfers_counts_the_levels_each_mean_covers():
    """The fresh-weight controls train at every second level: their means cover fewer levels than the
    ticket's against its own, and the table says how many each."""
    extra = {(4, "transfer"): 0.90}  # P_m 41%: outside the span
    acc = {**moved(0.90, 0.905, 0.89, 0.88), (10, "transfer"): 0.905}
    DENSITIES[10] = 0.108
    try:
        summary = tr.combine([target("mnist", "fashion_mnist", {**acc, **extra}),
                              source("mnist", {0: 0.98, 8: 0.982, 12: 0.98}),
                              source("fashion_mnist", {**OWN, 10: 0.905})])
        row = tr.what_transfers(summary).loc["MNIST -> Fashion-MNIST"]
    finally:
        del DENSITIES[10]
    assert row["levels: ticket - own"] == 3 and row["levels: fresh weights"] == 2


def test_a_source_two_targets_name_is_one_run_in_the_tables():
    """MNIST's source IMP run is loaded for MNIST -> Fashion-MNIST and again for Adam -> SGD: its own
    tickets (and their curves, the slider's line) appear once, not twice."""
    own = source("mnist", {0: 0.98, 8: 0.982, 12: 0.98})
    once, twice = tr.combine([own]), tr.combine([own, own])
    assert len(twice) == len(once)
    curves = own[0].assign(split="test", iteration=0)
    assert len(tr.combine_curves([(curves, own[1]), (curves, own[1])])) == len(tr.combine_curves([(curves, own[1])]))
    other = source("mnist", {0: 0.98, 8: 0.982, 12: 0.98}, optimizer="sgd")  # another run: kept
    assert len(tr.combine([own, other])) == 2 * len(once)


def test_the_settings_table_names_the_papers_networks():
    """The paper's networks are VGG-19 and ResNet-50 (a secondary source's reading), not LeNet: the settings
    table says so and marks the row as differing."""
    from lt_core import config
    from lt_core.book import chapter
    table = chapter.settings(config.load(REPO / "params/transfer_lenet.yaml", "smoke"), tr.PAPER_SETTINGS)
    assert "VGG-19" in table.loc["model", "paper"] and "ResNet-50" in table.loc["model", "paper"]
    assert table.loc["model", "differs"] == "yes" and table.loc["model", "this run"] == "lenet_300_100"


def test_the_beats_random_claim_quotes_the_replications_transferred_ticket():
    """The ReScience replication (paper-claims.md section 5): CIFAR-10's own ticket 80.60, the CIFAR-100 ticket
    transferred to it 77.87, a random ticket 10, at 99.88% pruned."""
    paper = next(c for c in tr.claims() if c.id == "beats-random").paper_value
    assert "77.87%" in paper and "80.60%" in paper and "10%" in paper and "ReScience" in paper
    assert "80.6% against" not in paper


def test_the_sweep_is_in_the_recorded_runs_table_as_dense_networks():
    summary = pd.DataFrame({"trial": [0], "level": [0], "control": ["ticket"]})
    stored = {"procedure": "imp", "experiment": "transfer_sgd_sweep", "dataset": "mnist", "optimizer": "sgd",
              "lr": 0.003, "levels": 0, "iterations": 20000}
    _, columns, _ = tr.describe(summary, stored)
    assert columns["what"] == "dense network, sgd, lr 0.003 (the SGD sweep)" and columns["levels"] == "0"


def test_figures_and_tables_draw_full_and_empty_tables():
    summary, empty = runs(), tr.combine([])
    for table in (summary, empty):
        assert trp.accuracy_vs_density(table, tr.RECORDED).axes
    curves = summary.assign(split="test", iteration=0)
    assert trp.level_view(curves, tr.RECORDED, 8, 0.168).axes
    assert trp.level_view(empty, tr.RECORDED, 8, 0.168).axes
    assert tr.level_table(empty, "mnist", "fashion_mnist").empty and tr.what_transfers(empty).empty
    assert list(tr.level_table(summary, "mnist", "fashion_mnist").columns)[0] == "P_m %"


def test_across_optimizers_each_ticket_meets_its_optimizers_own():
    """Adam's MNIST tickets trained with SGD against SGD's own tickets, and the reverse."""
    base = [source("mnist", {0: 0.98, 8: 0.982, 12: 0.98}), source("mnist", {0: 0.97, 8: 0.975, 12: 0.97}, optimizer="sgd")]
    adam_sgd = target("mnist", "mnist", moved(0.97, 0.965, 0.96, 0.95), optimizers=("adam", "sgd"))
    sgd_adam = target("mnist", "mnist", moved(0.98, 0.97, 0.96, 0.95), optimizers=("sgd", "adam"))
    summary = tr.combine(base + [adam_sgd, sgd_adam])
    rows = tr.direction(summary, "mnist", "mnist", "adam", "sgd")
    assert set(rows[rows.control == "own"].optimizer) == {"sgd"} and set(rows.source_optimizer) == {"adam", "sgd"}
    card = sc.scorecard(tr.claims(), summary)
    # Adam -> SGD: 96.55 against SGD's own 97.55 and 97.05: -0.75; SGD -> Adam: 97.05 against 98.25, 98.05: -1.1
    assert card.loc["across-optimizers", "verdict"] == sc.PARTLY
    assert "MNIST, Adam -> SGD -0.75 pts; MNIST, SGD -> Adam -1.10 pts" in card.loc["across-optimizers", "ours"]
    assert card.loc["close-to-own", "verdict"] == sc.UNMEASURED  # no dataset transfer in these runs


def test_a_trial_stopped_midway_is_left_out_of_the_figures():
    summary, _ = target("mnist", "fashion_mnist", moved(0.90, 0.905, 0.89, 0.88), trials=(0, 1))
    partial = pd.concat([summary, summary[summary.level == 0].assign(trial=2)])  # trial 2: its dense net only
    assert sorted(results.whole_trials(partial).trial.unique()) == [0, 1]
    assert results.whole_trials(summary).equals(summary) and results.whole_trials(summary.iloc[:0]).empty


def test_an_experiment_is_labelled_by_what_it_moves():
    from lt_core import config
    assert tr.experiment_label(config.load(REPO / "params/transfer_lenet_sgd_adam.yaml", "smoke")) == "MNIST, SGD -> Adam"
    assert tr.experiment_label(config.load(REPO / "params/transfer_lenet_subset.yaml", "smoke")) == \
        "MNIST -> MNIST (found on a tenth)"


def test_the_output_layer_comparison_pairs_the_variants_level_by_level():
    """Fresh less transferred output layer per level and over the sparse span (levels 8, 12 and 18 lie in
    it, the dense level 0 does not), at the dense level, and how far this machine's transferred tickets sit from the
    recorded run over the same trials (here trial 0 of its two)."""
    from lt_core.chapters import transfer_output as tro
    acc = {(0, "transfer"): 0.90, (8, "transfer"): 0.88, (12, "transfer"): 0.86, (18, "transfer"): 0.80}
    transferred = tr.combine([target("mnist", "fashion_mnist", acc, trials=(0,))])
    fresh = tr.combine([target("mnist", "fashion_mnist", {k: a + d for (k, a), d in
                                                          zip(acc.items(), (0.01, 0.02, 0.04, -0.05))}, trials=(0,))])
    fresh = fresh.assign(density=fresh.density + 0.003)  # its output layer unpruned: more weights left
    rows = pd.concat([transferred.assign(output_layer="transfer"), fresh.assign(output_layer="fresh")])
    recorded = tr.combine([target("mnist", "fashion_mnist", {k: a - 0.01 for k, a in acc.items()})])  # trials 0, 1
    table = tro.level_table(rows, recorded, "mnist", "fashion_mnist")
    assert list(table["fresh - transferred"]) == [1.0, 2.0, 4.0, -5.0]
    assert list(table["P_m %"]) == [100.0, 16.8, 6.9, 1.8] and list(table["P_m % with it fresh"]) == [100.3, 17.1, 7.2, 2.1]
    assert list(table["recorded run, same trials"]) == [89.0, 87.0, 85.0, 79.0]  # trial 0's, not 0 and 1
    effect = tro.effect(rows, recorded, runs={("mnist", "fashion_mnist"): {}})
    row = effect.loc["MNIST -> Fashion-MNIST"]
    assert row["fresh - transferred, P_m 22% to 1.5%"] == 0.33 and row["fresh - transferred, dense"] == 1.0
    assert row["|this machine - recorded run|, every level"] == 1.0 and row["levels"] == 4 and row["trials"] == 1
    assert row["fresh - transferred, sparsest"] == -5.0
    assert "+0.33 points" in tro.sentence(effect) and "(1 trial each way)" in tro.sentence(effect)
    assert "within the 1.00 points by which another machine's theta_k alone moves" in tro.sentence(effect)
    assert "and at the sparsest level (MNIST -> Fashion-MNIST -5.00 points)" in tro.sentence(effect)
    assert tro.trials_phrase(rows, recorded) == "the first 1 of the 2 trials"
    assert tro.trials_phrase(rows, recorded[recorded.trial == 0]) == "the one trial"
    assert tro.trials_phrase(rows.iloc[:0], recorded) == ""
    assert row["sparsest P_m %, transferred / fresh"] == "1.80 / 2.10" and "P_m 2.10% against 1.80%" in tro.sentence(effect) and "22% to 1.5%" in tro.sentence(effect)
    assert tro.effect(rows.iloc[:0], recorded).empty and tro.sentence(pd.DataFrame()).startswith("not recorded")
    assert tro.level_table(rows[rows.output_layer == "fresh"], recorded, "mnist", "fashion_mnist").empty
