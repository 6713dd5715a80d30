"""`bench --cases device`: networks an hour on one device (a GPU when there is one), for the chapters' paper
profiles' expected run times.

Measured on `--device` (auto: CUDA when torch sees one, else this CPU, labelled), each a median over
--repeats:
  lenet   LeNet-300-100 through the engine, one network at a time, --steps iterations with evaluation every
          100 (the paper's protocol; validation and test sets of 5,000 and 10,000 images with real data), and N
          networks stacked as one computation (lt_core/training/stacked.py, what `run --stack N` trains
          with), at each N of --stack; per network, scaled to Frankle & Carbin's 50,000 iterations.
  conv2   Conv-2 training steps alone, one network at a time and N stacked (evaluation excluded), scaled to
          its 20,000 iterations: an estimate of networks an hour that leaves out evaluation, labelled as such.
Why stacking: on a GPU one batch-60 LeNet step is far below the device's capacity and kernel launches bound it
(lt_core/book/report.py's 1,000-3,000 steps a second); N networks in one launch share that bound.
"""
from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from ..config import make
from ..nets import models
from ..sparsity import pruning
from ..sparsity.masks import Mask
from ..training import loop as engine
from ..training.loop import DeviceData, resolve_device
from ..training import stacked

LENET_PAPER_STEPS, CONV2_PAPER_STEPS = 50_000, 20_000


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device, fn) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def on_device(splits, device: torch.device) -> DeviceData:
    return DeviceData.prepare(splits, device)


def lenet(data: DeviceData, args, device: torch.device) -> dict:
    """Per-network seconds of --steps LeNet-300-100 iterations, one at a time and stacked."""
    cfg = make({"iterations": args.steps, "eval_every": 100})
    dense = models.build("lenet_300_100", seed=0)
    ones = Mask.ones_like(dense)
    spec = pruning.PruneSpec.of(dense, cfg)
    w = {n: dense.get_parameter(n).detach() for n in dense.prunable}
    one = lambda: engine.train(models.build("lenet_300_100", seed=1), ones, data, cfg, data_seed=1)
    one()  # warm-up: CUDA context, kernels, allocator
    out = {"steps": args.steps, "eval_every": 100}
    single = statistics.median(_timed(device, one) for _ in range(args.repeats))
    out["one_at_a_time"] = {"seconds_per_network": round(single, 3),
                            "networks_per_hour_at_50000": round(3600 / (single * LENET_PAPER_STEPS / args.steps), 1)}
    for n in args.stack:
        masks = [ones] + [pruning.oneshot(w, ones, spec, level) for level in range(1, n)]
        run = lambda: stacked.train_stacked([models.build("lenet_300_100", seed=k) for k in range(n)], masks, data,
                                            cfg, data_seeds=[1] * n)
        run()
        per_network = statistics.median(_timed(device, run) for _ in range(args.repeats)) / n
        out[f"stacked_{n}"] = {"seconds_per_network": round(per_network, 3),
                               "networks_per_hour_at_50000": round(3600 / (per_network * LENET_PAPER_STEPS / args.steps), 1),
                               "ratio_vs_one_at_a_time": round(single / per_network, 2)}
    return out


def conv2(data: DeviceData, args, device: torch.device) -> dict:
    """Conv-2's training steps a second on the device, one network and N stacked, and the networks an hour
    that implies."""
    steps = max(args.conv_steps, 4)
    cfg = make({"model": "conv2", "dataset": "cifar10", "lr": 0.0002, "iterations": steps, "eval_every": 10**6})
    # the timed steps exclude the evaluations at the start and the end: 64 images each is enough for them (a
    # stack on a CPU evaluates its whole splits through grouped convolutions, minutes for nothing measured)
    data = dataclasses.replace(data, x_val=data.x_val[:64], y_val=data.y_val[:64], x_test=data.x_test[:64],
                               y_test=data.y_test[:64], cache={})
    marks = {}
    build = lambda seed: models.build("conv2", seed=seed, in_shape=(3, 32, 32))
    ones = Mask.ones_like(build(0))
    mark = lambda done: (_sync(device), marks.setdefault(done, time.perf_counter()))

    def per_step(train) -> float:  # steps 2..n-1: no start-up, no evaluation at the start or the end
        marks.clear()
        train()
        return (marks[steps - 1] - marks[1]) / (steps - 2)

    one = lambda: per_step(lambda: engine.train(build(0), ones, data, cfg, data_seed=1, on_step=mark))
    one()
    single = statistics.median(one() for _ in range(args.repeats))
    out = {"steps": steps, "steps_per_s": round(1 / single, 1),
           "networks_per_hour_at_20000_estimate": round(3600 / (single * CONV2_PAPER_STEPS), 1),
           "estimate": "training steps alone, evaluation excluded"}
    for n in args.stack:
        run = lambda: per_step(lambda: stacked.train_stacked([build(k) for k in range(n)], [ones] * n, data, cfg,
                                                             data_seeds=[1] * n, on_step=mark))
        run()
        per_network = statistics.median(run() for _ in range(args.repeats)) / n
        out[f"stacked_{n}"] = {"network_steps_per_s": round(1 / per_network, 1),
                               "networks_per_hour_at_20000_estimate": round(3600 / (per_network * CONV2_PAPER_STEPS), 1),
                               "ratio_vs_one_at_a_time": round(single / per_network, 2)}
    return out


def case(load_splits, args) -> dict:
    """The device case: `load_splits(name)` gives a data set's splits (inputs.splits: real or synthetic)."""
    device = resolve_device(args.device)
    out = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
           else "cpu (no GPU: these are this CPU's figures)", "stack": list(args.stack)}
    out["lenet_300_100"] = lenet(on_device(load_splits("mnist"), device), args, device)
    out["conv2"] = conv2(on_device(load_splits("cifar10"), device), args, device)
    return out
