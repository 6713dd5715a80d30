"""Stacked training of several LeNets (lt_core/speed/batched.py) against separate runs of the engine's plain path."""

import pytest
import torch

from lt_core.nets import models
from lt_core.sparsity import pruning
from lt_core.speed.batched import StackedLeNet, train_stacked
from lt_core.sparsity.masks import Mask
from lt_core.training.loop import DeviceData, train

from test_engine import cfg, tiny_splits, weights


@pytest.mark.parametrize("opt", [{}, dict(optimizer="sgd", lr=0.05, weight_decay=1e-2)])
def test_stacked_networks_train_as_separate_runs_do(opt):
    data = DeviceData.prepare(tiny_splits(), torch.device("cpu"))
    c = cfg(**opt)
    dense = models.build("lenet_300_100", seed=0)
    ones = Mask.ones_like(dense)
    spec = pruning.PruneSpec.of(dense, c)
    ticket = pruning.oneshot(weights(dense), ones, spec, 6)
    random = pruning.random_like(ticket, torch.Generator().manual_seed(5))
    masks, seeds = [ones, ticket, random], [0, 0, 1]
    stacked = train_stacked([models.build("lenet_300_100", seed=s) for s in seeds], masks, data, c, data_seed=3)
    for (rows, state), mask, seed in zip(stacked, masks, seeds):
        alone = train(models.build("lenet_300_100", seed=seed), mask, data, c, data_seed=3, plain=True)
        assert [r[:2] for r in rows] == [r[:2] for r in alone.rows]
        for a, b in zip(rows, alone.rows):  # batched products sum in another order: a tolerance, not equality
            assert abs(a[2] - b[2]) < 1e-4 and abs(a[3] - b[3]) < 0.02, (a, b)
        for k, v in alone.final_state.items():
            assert torch.allclose(state[k], v, atol=1e-4, rtol=1e-3), k
        for name, m in mask.items():
            assert bool((state[name][~m] == 0).all()), name
    assert not torch.equal(stacked[1][1]["fc1.weight"], stacked[2][1]["fc1.weight"])


def test_stacked_refuses_what_it_cannot_train():
    model = models.build("lenet_300_100")
    with pytest.raises(ValueError, match="one mask per model"):
        StackedLeNet([model, model], [Mask.ones_like(model)], torch.device("cpu"))
    with pytest.raises(ValueError, match="LeNet-300-100 without dropout"):
        conv = models.build("conv2", in_shape=(3, 32, 32))
        StackedLeNet([conv], [Mask.ones_like(conv)], torch.device("cpu"))
