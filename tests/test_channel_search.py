"""Early-Bird's structured search (lt_core/procedures/channel_search.py) on tiny data: the L1 penalty on the
batch-norm scales is exactly the gradient it names, each recorded channel mask removes the stated ratio,
the settle point is the rule's on the stored masks, and bad settings fail with one line."""

import math

import pytest
import torch

from lt_core.config import ConfigError, make
from lt_core.procedures import channel_search
from lt_core.procedures.base import Unit, procedure_for
from lt_core.procedures.channel_search import scales
from lt_core.procedures.imp import derive_seed, new_model
from lt_core.runs import executor
from lt_core.runs.results import load as load_results
from lt_core.runs.store import RunStore
from lt_core.sparsity import early_bird
from lt_core.sparsity.masks import Mask
from lt_core.training.loop import DeviceData, evaluate, train

from test_engine import tiny  # noqa: F401  (fixture)


def search(**kw):
    base = dict(experiment="cs", procedure="channel_search", model="resnet20", optimizer="sgd", lr=0.05,
                iterations=30, eval_every=10, batch_size=20, trials=1, val_size=60, mask_every=10,
                ratios=[0.3, 0.5])
    return make({**base, **kw})


def test_bn_l1_adds_its_penalty_to_the_batch_norm_scales_gradient(tiny):
    """One SGD step without momentum: the scales move by lr * bn_l1 * sign(w) more than without the penalty
    (they start at 1), and nothing else moves differently."""
    after = {}
    for penalty in (0.0, 0.5):
        cfg = search(iterations=1, mask_every=1, momentum=0.0, bn_l1=penalty)
        model = new_model(cfg, 7)
        data = DeviceData.prepare(tiny, torch.device("cpu"))
        after[penalty] = train(model, Mask.ones_like(model), data, cfg, data_seed=3, plain=True,
                               scale_l1=cfg.bn_l1).final_state
    names = scales(new_model(search(), 0))
    for n in names:
        assert torch.allclose(after[0.0][n] - after[0.5][n], torch.full_like(after[0.0][n], 0.05 * 0.5), atol=1e-6)
    conv = "conv.weight"
    assert torch.allclose(after[0.0][conv], after[0.5][conv], atol=1e-6)


def test_the_search_trains_with_its_bn_l1(tiny, tmp_path, monkeypatch):
    seen, real = [], channel_search.train
    monkeypatch.setattr(channel_search, "train", lambda *a, **k: seen.append(k.get("scale_l1")) or real(*a, **k))
    executor.run(search(bn_l1=0.25, iterations=10), tmp_path, log=lambda *_: None)
    assert seen == [0.25]


def test_the_search_records_channel_masks_of_each_ratio_and_where_they_settle(tiny, tmp_path):
    c = search(settle_threshold=0.3, settle_window=1)
    store = executor.run(c, tmp_path, log=lambda *_: None)
    channels = store.load_tensor(Unit(0, 0, "search"), "channels")
    names = scales(new_model(c, 0))
    total = sum(new_model(c, 0).get_parameter(n).numel() for n in names)
    _, summary = load_results(c, tmp_path)
    row = summary.iloc[0]
    assert row.channels == total
    for entry in row.ratios:
        ratio = entry["ratio"]
        assert entry["iterations"] == [10, 20, 30]
        masks = [Mask({n: channels[f"{ratio:g}:{step}:{n}"] for n in names}) for step in (10, 20, 30)]
        for m in masks:  # the stated share of all channels removed, the count rounded half up
            assert sum(int(t.sum()) for t in m.values()) == total - int(ratio * total + 0.5)
        e = early_bird.settled_at(masks, 0.3, 1)
        assert entry["settled_iteration"] == (None if e is None else [10, 20, 30][e])
        matrix = entry["matrix"]
        assert matrix[0][0] == 0 and matrix[0][2] == matrix[2][0] == pytest.approx(
            early_bird.distance(masks[0], masks[2]), abs=1e-5)


def test_bad_search_settings_fail_with_one_line():
    with pytest.raises(ConfigError, match="no batch-norm layers"):
        procedure_for(search(model="lenet_300_100")).check()
    with pytest.raises(ConfigError, match="ratios"):
        search(ratios=[1.0])
    with pytest.raises(ConfigError, match="mask_every"):
        search(mask_every=0)


def test_a_recorded_search_reads_back_into_the_chapters_tables(tiny, tmp_path):
    """The search exported as the book commits it (summary.csv: its ratios as text) gives the chapter's
    settle table the stored settle points, and its channel masks come back from masks.zip."""
    from lt_core.chapters import early_bird_channels as ebc
    from lt_core.runs import recorded

    c = search(settle_threshold=0.3, settle_window=1, lr_drops=[20])
    executor.run(c, tmp_path / "store", log=lambda *_: None)
    _, stored = load_results(c, tmp_path / "store")
    recorded.export(c, tmp_path / "rec", tmp_path / "store")
    _, summary, doc = recorded.load_recorded(tmp_path / "rec")
    rows = ebc.scored(summary, doc["config"])
    assert list(rows.first_lr_drop) == [20] and list(rows.iterations) == [30]
    table = ebc.settling(rows)  # the run's own window, 1
    for entry in stored.iloc[0].ratios:
        row = table[table.ratio == entry["ratio"]].iloc[0]
        at = entry["settled_iteration"]
        assert (row.settled_iteration == at) if at is not None else math.isnan(row.settled_iteration)
        assert row.before_first_drop == (at is not None and at <= 20) and row.masks == 3
    assert set(ebc.settle_table(rows).index) == {"30%", "50%"}
    fresh = tmp_path / "resumed"
    recorded.resume(c, tmp_path / "rec", fresh)
    assert set(RunStore(c, fresh).load_tensor(Unit(0, 0, "search"), "channels")) == set(
        RunStore(c, tmp_path / "store").load_tensor(Unit(0, 0, "search"), "channels"))


def _random_channels(model, ratio, seed=0):
    g = torch.Generator().manual_seed(seed)
    return early_bird.channel_masks({n: torch.rand(model.get_parameter(n).shape, generator=g)
                                     for n in scales(model)}, ratio)


def test_channel_pruning_removes_each_channels_filter_and_nothing_else():
    """Every batch-norm layer of ResNet-20 (the shortcuts' too) is paired with the convolution before it:
    the weight mask prunes exactly one filter (a whole row) per removed channel, the frozen masks are that
    layer's scale and shift, and a name that is not a batch-norm scale is refused."""
    model = new_model(search(), 0)
    channels = _random_channels(model, 0.5)
    removed = sum(int((~m).sum()) for m in channels.values())
    mask, frozen = early_bird.channel_pruning(model, channels)
    rows = {n: (~m.flatten(1).any(1)).sum().item() for n, m in mask.items() if m.dim() == 4}
    assert sum(rows.values()) == removed == int(0.5 * 784 + 0.5)
    assert all(m.flatten(1).all(1).sum() + (~m.flatten(1).any(1)).sum() == m.shape[0] for m in mask.values()
               if m.dim() == 4)  # rows are whole: kept or gone
    assert mask["fc.weight"].all() and rows["blocks.3.shortcut.0.weight"] == int((~channels["blocks.3.shortcut.1.weight"]).sum())
    assert set(frozen) == {f"{n[:-len('.weight')]}.{p}" for n in channels for p in ("weight", "bias")}
    with pytest.raises(ValueError, match="not batch-norm scales"):
        early_bird.channel_pruning(model, {**channels, "fc.weight": torch.ones(10, dtype=torch.bool)})


def test_a_channel_pruned_network_trains_with_its_removed_channels_silent(tiny):
    """Trained under channel_pruning's masks, a removed channel's filter, scale and shift stay exactly zero
    and its batch-norm output is exactly zero, in training and in evaluation; kept channels train."""
    cfg = search(iterations=6, eval_every=6, mask_every=6, weight_decay=1e-4, momentum=0.9)
    model = new_model(cfg, 3)
    channels = _random_channels(model, 0.3, seed=1)
    mask, frozen = early_bird.channel_pruning(model, channels)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = DeviceData.prepare(tiny, torch.device("cpu"))
    train(model, mask, data, cfg, data_seed=2, frozen=frozen)
    outputs = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: outputs.__setitem__(name, o))
             for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for mode in (True, False):
        model.train(mode)
        model(data.x_train[:8].contiguous())
        for name, out in outputs.items():
            gone = ~channels[f"{name}.weight"]
            assert out[:, gone].abs().max().item() == 0.0, (name, mode)
    for h in hooks:
        h.remove()
    for name, keep in frozen.items():
        p = model.get_parameter(name)
        assert (p[~keep] == 0).all() and not torch.equal(p[keep], before[name][keep])
    with pytest.raises(ValueError, match="fast MLP path"):
        lenet = new_model(make({"model": "lenet_300_100", "iterations": 1}), 0)
        train(lenet, Mask.ones_like(lenet), data, make({"iterations": 1}), data_seed=0,
              frozen={"fc1.bias": torch.ones(300, dtype=torch.bool)})


def test_the_drawn_channel_tickets_train_from_the_searchs_masks_and_initial_weights(tiny, tmp_path):
    """ticket_controls adds, per ratio, the ticket drawn where the rule fired (early), at the end (end) and
    the early mask on fresh weights (reinit): each drawn from the search's stored masks at the iteration its
    summary names, its removed channels' filters pruned, from the search's theta_0 (reinit: other weights);
    more ticket controls extend the same run, and a recorded search goes on in an empty store."""
    c = search(settle_threshold=0.3, settle_window=1, ticket_controls=["early", "end", "reinit"])
    assert c.digest() == search(settle_threshold=0.3, settle_window=1).digest()
    store = executor.run(c, tmp_path / "store", log=lambda *_: None)
    curves, summary = load_results(c, tmp_path / "store")
    assert sorted(summary.control) == sorted(["search"] + ["early", "end", "reinit"] * 2)
    search_row = summary[summary.control == "search"].iloc[0]
    channels = store.load_tensor(Unit(0, 0, "search"), "channels")
    model = new_model(c, 0)
    for i, entry in enumerate(search_row.ratios):
        rows = summary[summary.level == i + 1].set_index("control")
        settled = entry["settled_iteration"]
        assert rows.loc["early", "mask_drawn_iteration"] == (settled if settled is not None else 30)
        assert rows.loc["end", "mask_drawn_iteration"] == 30 and rows.loc["end", "distance_to_end_mask"] == 0
        assert rows.loc["early", "mask_settled"] == (settled is not None)
        at = int(rows.loc["early", "mask_drawn_iteration"])
        drawn = {n: channels[f"{entry['ratio']:g}:{at}:{n}"] for n in scales(model)}
        assert rows.loc["early", "channels_removed"] == sum(int((~m).sum()) for m in drawn.values())
        assert rows.loc["reinit", "mask_drawn_iteration"] == at
        # the early ticket starts from the search's theta_0 under its channel mask; reinit from other weights
        theta0 = new_model(c, derive_seed(derive_seed(c.seed, 0), "init"))
        weights, frozen = early_bird.channel_pruning(theta0, drawn)
        assert rows.loc["early", "density"] == pytest.approx(weights.density())
        weights.apply(theta0)
        with torch.no_grad():
            for n, keep in frozen.items():
                theta0.get_parameter(n).mul_(keep)
        start = curves[(curves.level == i + 1) & (curves.iteration == 0) & (curves.split == "val")].set_index("control")
        data = DeviceData.prepare(tiny, torch.device("cpu"))
        loss, _ = evaluate(theta0, data.x_val, data.y_val)
        assert start.loc["early", "loss"] == pytest.approx(loss, rel=1e-5) and start.loc["reinit", "loss"] != start.loc["early", "loss"]
    recorded_dir = tmp_path / "rec"
    from lt_core.runs import recorded
    recorded.export(search(settle_threshold=0.3, settle_window=1), recorded_dir, tmp_path / "store")
    fresh = tmp_path / "fresh"
    recorded.resume(c, recorded_dir, fresh, log=lambda *_: None)
    seen = []
    executor.run(c, fresh, log=lambda *a: seen.append(" ".join(map(str, a))))
    _, again = load_results(c, fresh)
    key = ["level", "control"]
    a = again.set_index(key).sort_index()
    b = summary.set_index(key).sort_index()
    assert list(a.index) == list(b.index)
    assert (a.final_test_accuracy == b.final_test_accuracy).all()  # the same theta_0, masks and batches


def test_an_unknown_ticket_control_fails_with_one_line():
    with pytest.raises(ConfigError, match="ticket_controls"):
        search(ticket_controls=["random"])
