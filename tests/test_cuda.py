"""The engine on a GPU (issue 19): skipped where torch sees no CUDA device, as in CI.

On a GPU (tools/gpu_check.sh runs these first): a smoke IMP run on CUDA gives the CPU's masks at level 1
(at least 99% of positions: reductions sum in another order, so a weight at the pruning threshold may
fall either side) and accuracies within 5 points of the tiny test sets (60 images, so 3 of them); pruned
weights stay exactly zero on the device under Adam and under SGD with weight decay; stacked networks train
on the device as separate runs do, and a `run --stack 4` there as the CPU's run one network at a time. LT_TEST_DEVICE=cpu runs the same checks against the CPU itself (the
tests' own dry run on a machine without a GPU)."""

import os

import pytest
import torch

from lt_core.nets import models
from lt_core.procedures.base import Unit
from lt_core.runs import executor
from lt_core.runs.results import load as load_results
from lt_core.runs.store import RunStore
from lt_core.sparsity import pruning
from lt_core.sparsity.masks import Mask
from lt_core.training.stacked import train_stacked
from lt_core.training.loop import DeviceData, train

from test_engine import cfg, tiny, tiny_splits, weights  # noqa: F401  (tiny: fixture)

DEVICE = os.environ.get("LT_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                reason="no CUDA device (LT_TEST_DEVICE=cpu runs these checks on the CPU)")


def test_a_smoke_run_on_the_device_prunes_as_the_cpu_does(tiny, tmp_path):
    runs = {}
    for device in ("cpu", DEVICE):
        c = cfg(device=device, controls=["ticket", "reinit"], levels=1)
        executor.run(c, tmp_path / device, log=lambda *_: None)
        runs[device] = (c, load_results(c, tmp_path / device)[1])
    masks = {d: RunStore(c, tmp_path / d).load_tensor(Unit(0, 1, "ticket"), "mask") for d, (c, _) in runs.items()}
    for name, on_cpu in masks["cpu"].items():
        agree = (masks[DEVICE][name] == on_cpu).float().mean().item()
        assert agree >= 0.99, (name, agree)
    cpu, dev = (runs[d][1].set_index(["level", "control"]).early_stop_test_accuracy for d in ("cpu", DEVICE))
    assert (cpu - dev).abs().max() <= 0.05
    assert all(str(d).startswith(DEVICE) for d in runs[DEVICE][1].device)  # "cuda:0"


@pytest.mark.parametrize("opt", [{}, dict(optimizer="sgd", lr=0.05, weight_decay=1e-2)])
def test_pruned_weights_stay_exactly_zero_on_the_device(opt):
    data = DeviceData.prepare(tiny_splits(), torch.device(DEVICE))
    c = cfg(**opt)
    model = models.build("lenet_300_100", seed=0)
    mask = pruning.oneshot(weights(model), Mask.ones_like(model), pruning.PruneSpec.of(model, c), 4)
    train(model, mask, data, c, data_seed=2)
    for name, m in mask.items():
        weight = model.get_parameter(name)
        assert weight.device.type == DEVICE
        assert bool((weight.detach().cpu()[~m] == 0).all()), name


def test_stacked_networks_on_the_device_train_as_separate_runs_do():
    data = DeviceData.prepare(tiny_splits(), torch.device(DEVICE))
    c = cfg()
    dense = models.build("lenet_300_100", seed=0)
    ones = Mask.ones_like(dense)
    masks = [ones, pruning.oneshot(weights(dense), ones, pruning.PruneSpec.of(dense, c), 5)]
    stacked = train_stacked([models.build("lenet_300_100", seed=0) for _ in masks], masks, data, c, data_seeds=[3, 4])
    for result, mask, seed in zip(stacked, masks, (3, 4)):
        alone = train(models.build("lenet_300_100", seed=0), mask, data, c, data_seed=seed, plain=True)
        for a, b in zip(result.rows, alone.rows):
            assert a[:2] == b[:2] and abs(a[2] - b[2]) < 1e-3, (a, b)
        for k, v in alone.final_state.items():
            assert torch.allclose(result.final_state[k].cpu(), v.cpu(), atol=1e-3, rtol=1e-2), k


def test_a_stacked_run_on_the_device_prunes_as_the_cpu_does_alone(tiny, tmp_path):
    """`run --stack 4` on the device (the way to fill a GPU) against one network at a time on the CPU."""
    stores = {}
    for name, device, stack in (("alone", "cpu", 1), ("stacked", DEVICE, 4)):
        c = cfg(device=device, controls=["ticket", "reinit", "random"], levels=2, trials=2)
        stores[name] = RunStore(c, tmp_path / name)
        executor.run(c, tmp_path / name, log=lambda *_: None, stack=stack)
    on_device = {(s["trial"], s["level"], s["control"]): s for s in stores["stacked"].summaries()}
    assert len(on_device) == 14 and all(s["device"].startswith(DEVICE) for s in on_device.values())
    for s in stores["alone"].summaries():
        key = (s["trial"], s["level"], s["control"])
        assert on_device[key]["stacked"] > 1 and abs(on_device[key]["final_test_accuracy"] - s["final_test_accuracy"]) <= 0.05
    for name, on_cpu in stores["alone"].load_tensor(Unit(0, 1, "ticket"), "mask").items():
        assert (stores["stacked"].load_tensor(Unit(0, 1, "ticket"), "mask")[name] == on_cpu).float().mean().item() >= 0.99
