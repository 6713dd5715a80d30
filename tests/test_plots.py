"""Plot functions return figures of the expected shape, also with a single trial."""
import os
import sys

import matplotlib

matplotlib.use("Agg")
sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import synthetic  # noqa: E402
from lt_core.book import plots  # noqa: E402
from lt_core.chapters import lenet_mnist  # noqa: E402

PAPER_DENSITIES = [1.0, 0.513, 0.211, 0.070, 0.036, 0.019]


@pytest.fixture(scope="module", params=[1, 3], ids=["one-trial", "three-trials"])
def tables(request):
    return synthetic.make_tables(levels=19, trials=request.param, draws=2, noise=0.001)


def _data_lines(ax):
    return [ln for ln in ax.lines if not ln.get_label().startswith("_")]


def test_density_label():
    assert [plots.density_label(d) for d in (1.0, 0.2107, 0.0186)] == ["100.0%", "21.1%", "1.9%"]


def test_nearest_levels_picks_paper_densities(tables):
    curves, _ = tables
    levels = plots.nearest_levels(curves[curves.control == "ticket"], PAPER_DENSITIES)
    assert levels == [0, 3, 7, 12, 15, 18]


def test_random_sparse_curves(tables):
    _, summary = tables
    fig = plots.random_sparse_curves(summary, PAPER_DENSITIES)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_xscale() == "log" and ax.xaxis_inverted()
        random = ax.lines[0]
        assert len(random.get_xdata()) == 6  # dense anchor + the 5 random levels requested
    # early-stop iteration of random sparse nets grows as they get sparser (synthetic truth)
    assert np.all(np.diff(fig.axes[0].lines[0].get_ydata()) > 0)


def test_random_sparse_curves_read_each_networks_early_stop_from_its_summary(tables):
    """A recording's curves keep every fifth evaluation; Figure 1 shows the summary's early stop, the one the
    scorecard reads (the dense star at its mean), not one found again on the thinned curves."""
    _, summary = tables
    summary = summary.copy()
    dense = (summary.control == "ticket") & (summary.level == 0)
    summary.loc[dense, "early_stop_iteration"] = 1234.0
    fig = plots.random_sparse_curves(summary, PAPER_DENSITIES)
    star = [ln for ln in fig.axes[0].lines if ln.get_label() == "dense (100%)"][0]
    assert list(star.get_ydata()) == [1234.0]


def test_accuracy_during_training(tables):
    curves, _ = tables
    fig = plots.accuracy_during_training(curves, PAPER_DENSITIES)
    assert [ax.get_title() for ax in fig.axes] == ["ticket", "reinit"]
    for ax in fig.axes:
        labels = [ln.get_label() for ln in ax.lines]
        assert labels == ["100.0%", "51.3%", "21.1%", "7.0%", "3.6%", "1.9%"]
        assert len(ax.collections) == 6  # one min-max band per line
    # one legend under the panels, each density once: inside, it covered the sparsest reinit lines
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["100.0%", "51.3%", "21.1%", "7.0%", "3.6%", "1.9%"]


def test_accuracy_during_training_dedupes_nearby_requests(tables):
    curves, _ = tables
    fig = plots.accuracy_during_training(curves, [0.21, 0.211, 0.5], controls=("random",))
    assert [ln.get_label() for ln in fig.axes[0].lines] == ["21.1%", "51.3%"]


def test_early_stop_vs_density(tables):
    _, summary = tables
    fig = plots.early_stop_vs_density(summary)
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert [ln.get_label() for ln in ax.lines] == ["ticket", "reinit", "random", "oneshot"]
        assert all(ln.get_xdata()[0] == 1.0 for ln in ax.lines)  # all start at the dense net
        assert ax.get_xticklabels()[0].get_text() == "100.0%"
    ticket = fig.axes[0].lines[0]
    assert len(ticket.get_xdata()) == 19
    # one legend, under the panels, naming each control once and the paper's marks
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["ticket", "reinit", "random", "oneshot"]
    marked = plots.early_stop_vs_density(summary, marks=lenet_mnist.PAPER_MARKS)
    assert [t.get_text() for t in marked.legends[0].get_texts()][-1] == "paper, relative to our dense"


def test_early_stop_vs_density_subset_of_controls():
    _, summary = synthetic.make_tables(levels=4, trials=1, controls=("ticket",))
    fig = plots.early_stop_vs_density(summary)
    assert [ln.get_label() for ln in fig.axes[0].lines] == ["ticket"]


def test_reinit_draws_are_averaged_within_a_trial():
    _, summary = synthetic.make_tables(levels=3, trials=2, draws=3, noise=0.01)
    runs = plots.per_trial(summary, "reinit")
    assert len(runs) == 2 * 3  # (dense + 2 levels) x 2 trials, draws folded in
    mean = summary[(summary.control == "reinit") & (summary.trial == 0) & (summary.level == 1)]
    got = runs[(runs.trial == 0) & (runs.level == 1)].early_stop_test_accuracy.item()
    assert got == pytest.approx(mean.early_stop_test_accuracy.mean())


@pytest.mark.parametrize("shared", [True, False])
def test_mask_picture(shared):
    masks = synthetic.make_masks((1.0, 0.2, 0.05))
    fig = lenet_mnist.mask_picture(masks, shared_scale=shared)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 3
    assert all(im.get_array().shape == (28, 28) for im in images)
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["100.0%", "20.0%", "5.0%"]
    np.testing.assert_allclose(images[0].get_array(), 1.0)  # dense keeps every connection
    frac = images[2].get_array()
    assert np.isclose(frac.mean(), masks[0.05].mean())  # pixel fractions average to density


def test_engine_style_summary_with_provenance_and_gaps():
    # the engine's summary carries text provenance columns and may hold None for a metric
    _, summary = synthetic.make_tables(levels=5, trials=2)
    summary = summary.assign(code_version="abc123", device="cpu", seconds=1.5)
    summary["early_stop_test_accuracy"] = summary["early_stop_test_accuracy"].astype(object)
    summary.loc[3, "early_stop_test_accuracy"] = None
    fig = plots.early_stop_vs_density(summary)
    assert len(fig.axes[1].lines) == 4


def test_iteration_axes_keep_six_ticks_at_most_with_thousands_separated():
    """matplotlib put eight five-digit iterations (0, 2500, .., 20000) under a half-width panel, where they
    ran together ("10000125001500017500"); an iteration axis now has at most six ticks, as 12,500."""
    fig = Figure(figsize=(4.7, 3.4))
    ax = fig.subplots()
    ax.plot([1000, 20000], [0, 1])
    plots.iteration_axis(ax, "iteration")
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert len(ticks) <= 6 and ax.get_xlabel() == "iteration"
    assert ax.xaxis.get_major_formatter()(12500, 0) == "12,500"
