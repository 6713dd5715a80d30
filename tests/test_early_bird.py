"""When a mask settles (lt_core/sparsity/early_bird.py; IMP's mask trajectories): distances, the detection
rule on a made-up sequence, the structured channel masks' ratio, and a ticket's recorded trajectory ending
at exactly the mask the next level prunes to."""

import pytest
import torch

from lt_core.config import ConfigError
from lt_core.procedures.base import Unit, procedure_for
from lt_core.runs import executor
from lt_core.runs.results import load as load_results
from lt_core.sparsity import early_bird
from lt_core.sparsity.masks import Mask

from test_engine import cfg, tiny  # noqa: F401  (fixture)


def mask(bits):
    return Mask({"w": torch.tensor(bits, dtype=torch.bool)})


def test_distance_of_a_mask_to_itself_and_to_its_complement():
    m = Mask({"a": torch.rand(30, 20, generator=torch.Generator().manual_seed(0)) < 0.4,
              "b": torch.tensor([True, False, True])})
    assert early_bird.distance(m, m) == 0
    assert early_bird.distance(m, Mask({n: ~t for n, t in m.items()})) == 1
    assert early_bird.distance(mask([1, 1, 0, 0]), mask([1, 0, 0, 1])) == 0.5
    with pytest.raises(ValueError, match="different tensors"):
        early_bird.distance(m, mask([1]))
    # within a mask: of the positions it keeps (the only ones a next-round mask can change)
    assert early_bird.distance(mask([1, 1, 0, 0]), mask([1, 0, 0, 1]), within=mask([1, 1, 0, 1])) == 2 / 3
    assert early_bird.distance(mask([0, 0]), mask([0, 0]), within=mask([0, 0])) == 0


def test_the_rule_counts_distances_within_the_trained_mask():
    """Masks inside a sparse mask differ in few of all positions: the rule fires at once over all of them
    and not at all within the trained mask, where the same change is large."""
    trained = mask([1] * 10 + [0] * 90)
    a, b = mask([1] * 8 + [0] * 92), mask([0, 0] + [1] * 6 + [1, 1] + [0] * 90)  # differ in 4 positions
    seq = [a, b] * 3
    assert early_bird.settled_at(seq, threshold=0.1, window=4) == 4  # 4 of 100 positions
    assert early_bird.settled_at(seq, threshold=0.1, window=4, within=trained) is None  # 4 of 10


def test_the_rule_fires_at_the_first_mask_within_the_threshold_of_the_four_before():
    ten = lambda ones: mask([1] * ones + [0] * (10 - ones))  # distance between ten(a) and ten(b): |a - b| / 10
    seq = [ten(0), ten(3), ten(5), ten(6), ten(6), ten(6), ten(6), ten(6), ten(6)]
    # index 6: within 0.1 (strictly) of 5, 4, 3 (distance 0) but 2 is 0.1 away; index 7: 6, 5, 4, 3 all 0
    assert early_bird.settled_at(seq, threshold=0.1, window=4) == 7
    assert early_bird.settled_at(seq, threshold=0.11, window=4) == 6
    assert early_bird.settled_at(seq[:7], threshold=0.1, window=4) is None
    assert early_bird.settled_at(seq, threshold=0.1, window=1) == 4


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.7])
def test_channel_masks_remove_the_stated_ratio_of_all_channels(ratio):
    g = torch.Generator().manual_seed(1)
    scales = {"bn1": torch.randn(64, generator=g), "bn2": torch.randn(128, generator=g) * 3}
    masks = early_bird.channel_masks(scales, ratio)
    kept = sum(int(m.sum()) for m in masks.values())
    assert kept == 192 - int(ratio * 192 + 0.5)
    threshold = min(scales[n].abs()[m].min() for n, m in masks.items())
    assert all(bool((scales[n].abs()[~m] <= threshold).all()) for n, m in masks.items())  # the smallest go


def test_a_tickets_trajectory_ends_at_the_mask_the_next_level_prunes_to(tiny, tmp_path):
    """...and its distances are fractions of the weights the ticket trains (level 1: 80% of them)."""
    c = cfg(controls=["ticket"], mask_every=10)
    store = executor.run(c, tmp_path, log=lambda *_: None)
    trajectory = store.load_tensor(Unit(0, 0, "ticket"), "trajectory")
    assert sorted(int(k) for k in trajectory) == [10, 20, 30]
    next_mask = store.load_tensor(Unit(0, 1, "ticket"), "mask")
    assert all(torch.equal(trajectory["30"][n], next_mask[n]) for n in next_mask)
    _, summary = load_results(c, tmp_path)
    row = summary[summary.level == 0].iloc[0]
    distances = row.mask_distances
    assert [d[0] for d in distances] == [10, 20, 30] and distances[0][1] is None and distances[-1][2] == 0
    matrix = row.mask_distance_matrix  # every recorded mask against every other: symmetric, 0 on the diagonal
    masks = [Mask(trajectory[k]) for k in ("10", "20", "30")]
    assert [matrix[i][i] for i in range(3)] == [0, 0, 0]
    assert matrix[0][2] == matrix[2][0] == pytest.approx(early_bird.distance(masks[0], masks[2]), abs=1e-5)
    assert [matrix[i][2] for i in range(3)] == pytest.approx([d[2] for d in distances], abs=1e-5)
    level1 = summary[summary.level == 1].iloc[0]
    trained = Mask(store.load_tensor(Unit(0, 1, "ticket"), "mask"))
    later = [Mask(m) for _, m in sorted(store.load_tensor(Unit(0, 1, "ticket"), "trajectory").items(),
                                        key=lambda kv: int(kv[0]))]
    assert level1.mask_distances[0][2] == pytest.approx(early_bird.distance(later[0], later[-1], within=trained))
    assert level1.mask_distances[0][2] > early_bird.distance(later[0], later[-1])  # not over all positions
    assert c.digest() == cfg(controls=["ticket"]).digest()  # recording a trajectory keeps the run's name
    with pytest.raises(ConfigError, match="settle_threshold"):
        cfg(settle_threshold=0)


def test_an_early_ticket_trains_the_mask_the_previous_ticket_settled_at(tiny, tmp_path):
    """control early: level l's mask is the level-(l-1) ticket's trajectory mask at its settling (the rule of
    early_bird.settled_at, recomputed here), with the ticket's counts; where it never settles, the end's."""
    c = cfg(controls=["ticket", "early"], mask_every=5, settle_threshold=0.5, settle_window=2)
    store = executor.run(c, tmp_path, log=lambda *_: None)
    trajectory = store.load_tensor(Unit(0, 1, "ticket"), "trajectory")
    steps = sorted(trajectory, key=int)
    trained = Mask(store.load_tensor(Unit(0, 1, "ticket"), "mask"))  # the level-1 ticket trained under it
    e = early_bird.settled_at([Mask(trajectory[k]) for k in steps], 0.5, 2, within=trained)
    assert e is not None and e < len(steps) - 1  # settles before the end at this loose threshold
    early = store.load_tensor(Unit(0, 2, "early"), "mask")
    assert all(torch.equal(early[n], trajectory[steps[e]][n]) for n in early)
    ticket = Mask(store.load_tensor(Unit(0, 2, "ticket"), "mask"))
    assert Mask(early).layer_counts() == ticket.layer_counts()
    _, summary = load_results(c, tmp_path)
    row = summary[(summary.level == 2) & (summary.control == "early")].iloc[0]
    assert row.mask_drawn_iteration == int(steps[e]) and bool(row.mask_settled)
    assert row.distance_to_final_mask == pytest.approx(early_bird.distance(Mask(early), ticket, within=trained))
    never = cfg(controls=["ticket", "early"], mask_every=5, settle_window=50, levels=1)  # 6 masks < the window
    store = executor.run(never, tmp_path / "never", log=lambda *_: None)
    assert all(torch.equal(store.load_tensor(Unit(0, 1, "early"), "mask")[n], t)
               for n, t in store.load_tensor(Unit(0, 1, "ticket"), "mask").items())
    _, summary = load_results(never, tmp_path / "never")
    row = summary[summary.control == "early"].iloc[0]
    assert not bool(row.mask_settled) and row.mask_drawn_iteration == 30 and row.distance_to_final_mask == 0
    with pytest.raises(ConfigError, match="set mask_every"):
        cfg(controls=["ticket", "early"])


def test_early_draws_train_the_trajectory_mask_at_each_named_iteration(tiny, tmp_path):
    """early_draws: control early's draw d >= 1 trains the level-(l-1) ticket's trajectory mask recorded at
    early_draws[d-1], from theta_0 like the ticket; draw 0 stays the settled one."""
    c = cfg(controls=["ticket", "early"], mask_every=10, early_draws=[10, 20], levels=1)
    store = executor.run(c, tmp_path, log=lambda *_: None)
    trajectory = store.load_tensor(Unit(0, 0, "ticket"), "trajectory")
    for draw, step in ((1, "10"), (2, "20")):
        mask = store.load_tensor(Unit(0, 1, "early", draw), "mask")
        assert all(torch.equal(mask[n], trajectory[step][n]) for n in mask)
    assert not torch.equal(trajectory["10"]["fc1.weight"], trajectory["30"]["fc1.weight"])  # a real difference
    _, summary = load_results(c, tmp_path)
    early = summary[summary.control == "early"].set_index("draw")
    assert list(early.index) == [0, 1, 2] and list(early.mask_drawn_iteration[[1, 2]]) == [10, 20]
    assert cfg(controls=["ticket", "early"], mask_every=10).digest() == c.digest()  # the extent, not the name
    with pytest.raises(ConfigError, match="multiple of mask_every"):
        cfg(controls=["ticket", "early"], mask_every=10, early_draws=[15])
    with pytest.raises(ConfigError, match="add early to controls"):
        cfg(controls=["ticket"], mask_every=10, early_draws=[10])
