"""`python -m lt_core bench`: the engine against a reference loop, side by side, on the same data; JSON out.

The reference loop is written the way popular lottery-ticket implementations are: a DataLoader with
shuffling over a TensorDataset, an nn.Module, torch's default Adam, masks multiplied into the weights after
each step, evaluation through a DataLoader every 100 steps. Cases (each a median over --repeats, reference
and engine interleaved within a repeat so that they share the machine's noise):

  lenet_level  one IMP level of LeNet-300-100 (dense, paper hyperparameters, evaluation every 100 steps);
               also the engine's plain autograd path (train(..., plain=True)) and training steps alone, whose
               rate x 67 MFLOP is compared with the measured matrix-product rate; the level's ceilings, its
               arithmetic at that rate (dense, and as the engine computes it); and the kernels' bound, a
               step's products alone at their own shapes (lt_core/speed/ceilings.py), at the same comparison;
  lenet_trial  the engine's cost of every level of a paper trial (density 100% .. 1.8%, masks pruned from
               trained weights) against levels x the dense level's cost, each level timed next to a dense one;
               also that ratio if the levels with packed (sparse) layers cost nothing: the floor that the
               dense-path levels alone set;
  conv2        Conv-2 on CIFAR-10 training steps (evaluation excluded: Conv-2's cadence is not the point),
               and the kernels' bound: a step's convolutions and products alone (lt_core/speed/ceilings.py);
               apart, images evaluated a second in the engine's chunks against chunks of 2,000.
  conv4, conv6, resnet20  the same for those nets (ResNet-20: SGD at batch 128, its paper's step).
  conv_settings  per conv net (Conv-2/4/6, ResNet-20): a training step in the default layout, in channels_last,
               and each under torch.compile (not in the default cases: compiling takes minutes), on random data.
  channel_search  the step params/early_bird_resnet20.yaml trains (ResNet-20 on CIFAR-10, batch 64, SGD,
               crop + flip, L1 on the batch-norm scales) through the engine, evaluation excluded: what a run
               of Early-Bird's structured search costs here; not in the default cases.
  batched      N LeNet-300-100 levels (a dense network and pruned ones, as a ticket and its controls) trained
               as one stacked computation (lt_core/training/stacked.py, `run --stack N`) against N separate
               engine runs.
  edge_popup   per net (LeNet-300-100, Conv-2) at batch 128: an edge-popup step (scores through the per-layer
               top-k, lt_core/training/supermask.py) against a dense SGD step of the same net, on random data,
               both in the layout the engine uses (channels_last for conv nets on a CPU).
  workers      two whole LeNet trials (levels 0..--levels, --trial-steps each) through `executor.run` in one
               process against two processes of one thread each (lt_core/runs/pool.py); not in the default
               cases, and it needs MNIST itself, even with --synthetic (each process loads it).
  ray          the same two trials through `--executor ray` (a local Ray of one-CPU tasks, started once and
               kept for its repeats) against `--workers 2`, side by side; not in the default cases (needs Ray).
  device       networks an hour on --device (a GPU when there is one): LeNet-300-100 one at a time and
               stacked, Conv-2's steps (lt_core/speed/device_bench.py); not in the default cases.
  memory       ResNet-20's resident memory phase by phase (imports, CIFAR-10 read, normalised, evaluated,
               --conv-steps training steps), in two fresh processes side by side: glibc's malloc as it comes
               and with a fixed mmap threshold (lt_core/speed/memory.py); not in the default cases.

The machine's matrix-product rate is measured through torch's BLAS (torch.mm, MKL) and through oneDNN
(lt_core/nets/products.py); fractions are of the faster (LeNet's also of BLAS's, the rate torch.mm shows).
Timings are wall-clock on whatever else the machine is doing; `conditions` records threads and load.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from .. import provenance
from ..config import make
from ..nets import models, products
from ..procedures import imp
from ..runs import executor
from ..sparsity import pruning
from ..sparsity.masks import Mask
from ..training import loop as engine
from ..training.fast import sparse, sparse_input
from ..training.loop import DeviceData
from ..training import stacked
from . import ceilings
from .inputs import splits

LENET_STEP_FLOP = 67e6  # forward + weight gradients + input gradients of layers 2-3, batch 60
LENET_FORWARD_FLOP = 2 * (784 * 300 + 300 * 100 + 100 * 10)  # per example: what evaluation costs


def matmul_gflops(n: int, repeats: int, product=torch.mm) -> float:
    """Peak fp32 matrix-product rate: the best of `repeats` timings of an n x n product."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    product(a, b)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(5):
            product(a, b)
        best = max(best, 5 * 2 * n**3 / (time.perf_counter() - start))
    return best / 1e9


def matmul_rates(n: int, repeats: int) -> dict[str, float]:
    """The product rate through torch's BLAS (torch.mm) and through oneDNN (lt_core/nets/products.py), if any."""
    rates = {"blas": round(matmul_gflops(n, repeats), 1)}
    if products.ONEDNN:
        rates["onednn"] = round(matmul_gflops(n, repeats, products.onednn_mm), 1)
    return rates


def reference(model, mask: Mask, data: DeviceData, cfg, seed: int, evaluate: bool) -> float:
    """Seconds for cfg.iterations steps of the popular-implementation loop (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=cfg.batch_size, shuffle=True,
                        drop_last=True, generator=g)
    evals = [DataLoader(TensorDataset(x, y), batch_size=1000) for x, y in
             ((data.x_val, data.y_val), (data.x_test, data.y_test))]
    masks = {n: m.float() for n, m in mask.items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, start = 0, time.perf_counter()
    while step < cfg.iterations:
        for x, y in loader:
            model.train()
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name in masks:
                        p.mul_(masks[name])
            step += 1
            if evaluate and step % cfg.eval_every == 0:
                model.eval()
                with torch.no_grad():
                    for xe, ye in (batch for loader_e in evals for batch in loader_e):
                        logits = model(xe)
                        F.cross_entropy(logits, ye, reduction="sum").item(), (logits.argmax(1) == ye).sum().item()
            if step == cfg.iterations:
                break
    return time.perf_counter() - start


def run_engine(model, mask, data, cfg, *, fast=True, train_only=False, scale_l1: float = 0.0) -> float:
    """Seconds for the engine's cfg.iterations steps; train_only times steps 2..n-1 (no evaluation)."""
    if train_only and cfg.eval_every < cfg.iterations:
        raise ValueError(f"train_only times training steps alone, but eval_every={cfg.eval_every} puts "
                         f"evaluations among the {cfg.iterations} steps; use eval_every >= iterations")
    marks = {}
    hook = (lambda done: marks.setdefault(done, time.perf_counter())) if train_only else None
    start = time.perf_counter()
    engine.train(model, mask, data, cfg, data_seed=1, on_step=hook, plain=not fast, scale_l1=scale_l1)
    total = time.perf_counter() - start
    if train_only:
        return (marks[cfg.iterations - 1] - marks[1]) / (cfg.iterations - 2) * cfg.iterations
    return total


@functools.lru_cache(maxsize=None)  # the lenet and batched cases share MNIST: prepared once
def load(name: str, quick: bool, synthetic: bool) -> DeviceData:
    return DeviceData.prepare(splits(name, quick, synthetic), torch.device("cpu"))


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def lenet_cases(data, args) -> tuple[dict, dict]:
    cfg = make({"iterations": args.steps, "eval_every": 100})
    train_cfg = make({"iterations": args.steps, "eval_every": 10**6})  # evaluations only at 0 and n: untimed
    model = lambda: models.build("lenet_300_100", seed=0)
    ones = Mask.ones_like(model())
    kernels = ceilings.step_kernels(model(), data.x_train[:cfg.batch_size])
    times = {"reference": [], "engine_plain": [], "engine": [], "engine_train_only": [], "kernels": []}
    for _ in range(args.repeats):
        times["reference"].append(reference(model(), ones, data, cfg, 1, evaluate=True))
        times["engine_plain"].append(run_engine(model(), ones, data, cfg, fast=False))
        times["engine"].append(run_engine(model(), ones, data, cfg))
        times["engine_train_only"].append(run_engine(model(), ones, data, train_cfg, train_only=True))
        times["kernels"].append(ceilings.seconds(kernels, args.steps))
    sps = {k: round(args.steps / statistics.median(v), 1) for k, v in times.items()}
    level = {"steps": args.steps, "eval_every": 100, "steps_per_s": sps,
             "ratio_engine_vs_reference": round(sps["engine"] / sps["reference"], 2),
             "ratio_engine_vs_plain_engine": round(sps["engine"] / sps["engine_plain"], 2),
             "train_gflops": round(sps["engine_train_only"] * LENET_STEP_FLOP / 1e9, 1),
             # training steps' rate if a step were its products alone, at LeNet's shapes (batch 60)
             "kernels_train_gflops": round(sps["kernels"] * LENET_STEP_FLOP / 1e9, 1),
             "peak_rss_mb": peak_rss_mb()}
    # ceilings: a level's arithmetic (training steps and the val + test evaluations they carry) at the
    # measured matrix-product rate. "dense": every product dense, as the reference computes it. Without
    # prefix: the arithmetic the engine does, whose evaluation multiplies only non-black inputs in layer 1
    # (lt_core/training/fast/sparse_input.py); what no implementation of the engine's computation can beat here.
    examples = len(data.y_val) + len(data.y_test)
    first = 2 * 784 * 300
    sparse_share = data.input_density() if data.input_density() <= sparse_input.INPUT_DENSITY else 1.0
    for key, per_example in (("ceiling_dense", LENET_FORWARD_FLOP),
                             ("ceiling", LENET_FORWARD_FLOP - first + sparse_share * first)):
        level[f"{key}_steps_per_s"] = round(args.matmul * 1e9 / (LENET_STEP_FLOP + examples * per_example / 100), 1)
        level[f"{key}_ratio_vs_reference"] = round(level[f"{key}_steps_per_s"] / sps["reference"], 2)

    # the trial: every level's mask pruned in one shot from trained dense weights (realistic structure)
    trained = models.build("lenet_300_100", seed=0)
    engine.train(trained, ones, data, make({"iterations": args.steps, "eval_every": 10**6}), data_seed=1)
    spec = pruning.PruneSpec.of(trained, cfg)
    weights = {n: trained.get_parameter(n).detach() for n in trained.prunable}
    tcfg = make({"iterations": args.trial_steps, "eval_every": 100})
    # each level is timed next to a dense level, alternating which goes first: this machine's speed drifts
    # by tens of percent within a minute, so a level is compared with the dense cost of its own moment
    levels = {}
    for lv in range(args.levels + 1):
        mask = pruning.oneshot(weights, ones, spec, lv) if lv else ones
        secs, ratios = [], []
        for r in range(args.repeats):
            order = ("level", "dense") if r % 2 == 0 else ("dense", "level")
            timed = {which: run_engine(model(), mask if which == "level" else ones, data, tcfg) for which in order}
            secs.append(timed["level"])
            ratios.append(timed["level"] / timed["dense"])
        packed = any(sparse.packs(weights[n], mask[n], torch.device("cpu")) for n in weights)
        levels[lv] = {"density": round(mask.density(), 4), "packed": packed,
                      "seconds": round(statistics.median(secs), 3), "ratio_vs_dense": round(statistics.median(ratios), 3)}
    # the levels the engine trains with no packed layer (sparse.packs: above the density where dense
    # products beat sparse ones on this CPU): their cost alone, spread over all levels, is the trial ratio's
    # floor were every packed level free
    dense_path = [v["ratio_vs_dense"] for v in levels.values() if not v["packed"]]
    trial = {"steps_per_level": args.trial_steps, "eval_every": 100, "levels": levels,
             "trial_seconds": round(sum(v["seconds"] for v in levels.values()), 2),
             "ratio_trial_vs_levels_x_dense": round(statistics.mean(v["ratio_vs_dense"] for v in levels.values()), 3),
             "ratio_if_packed_levels_were_free": round(sum(dense_path) / len(levels), 3),
             "peak_rss_mb": peak_rss_mb()}
    return level, trial


# the paper's learning rates (Frankle & Carbin, Figure 2); the step's cost does not depend on them
CONV_LR = {"conv2": 2e-4, "conv4": 3e-4, "conv6": 3e-4, "resnet20": 0.1}
CONV_OPTIMIZER = {"resnet20": {"optimizer": "sgd", "batch_size": 128}}  # Frankle & Carbin's ResNet-20; Conv-2/4/6: Adam, 60


def step_flop(model, x) -> int:
    """FLOP of one training step of `model` on batch `x`: each conv/linear layer's product forward, for its
    weight gradient and (but the first layer's) for its input gradient, 2 FLOP a multiply-add."""
    total = 0
    for i, (layer, inp, out) in enumerate(ceilings._layers(model, x)):
        weights = layer.weight.numel()
        positions = out[2] * out[3] if len(out) == 4 else 1  # a conv's output positions, a linear's 1
        total += 2 * len(x) * positions * weights * (2 if i == 0 else 3)
    return total


def conv2_case(data, args, name: str = "conv2") -> dict:
    """One conv net's training steps, reference loop against the engine (and the kernels' bound), and its
    evaluation rate apart (images a second through the engine's evaluate)."""
    cfg = make({"model": name, "dataset": "cifar10", "lr": CONV_LR[name], "iterations": args.conv_steps,
                "eval_every": 10**6, **CONV_OPTIMIZER.get(name, {})})
    model = lambda: models.build(name, seed=0, in_shape=(3, 32, 32))
    ones = Mask.ones_like(model())
    # training steps are timed, not evaluation: a short validation/test set keeps the engine's evaluation at
    # iterations 0 and n from costing minutes
    data = DeviceData(data.x_train, data.y_train, data.x_val[:120], data.y_val[:120], data.x_test[:120],
                      data.y_test[:120], data.black)
    kernels = ceilings.step_kernels(model(), data.x_train[:cfg.batch_size])
    times = {"reference": [], "engine_contiguous": [], "engine": [], "kernels": []}
    for _ in range(args.repeats):  # engine_contiguous: the plain path, i.e. without channels_last
        times["reference"].append(reference(model(), ones, data, cfg, 1, evaluate=False))
        times["engine_contiguous"].append(run_engine(model(), ones, data, cfg, fast=False, train_only=True))
        times["engine"].append(run_engine(model(), ones, data, cfg, train_only=True))
        times["kernels"].append(ceilings.seconds(kernels, args.conv_steps))
    sps = {k: round(args.conv_steps / statistics.median(v), 2) for k, v in times.items()}
    flop = step_flop(model(), data.x_train[:cfg.batch_size])
    evaluated = model().to(memory_format=torch.channels_last)
    images = data.x_train[:120 if args.quick else 2000]
    engine.evaluate(evaluated, images, data.y_train[:len(images)])  # warm-up
    chunks = {engine.CONV_EVAL_CHUNK: [], engine.EVAL_CHUNK: []}  # the engine's chunk against one of 2,000
    for r in range(args.repeats):
        for chunk in (list(chunks) if r % 2 == 0 else list(chunks)[::-1]):
            start = time.perf_counter()
            engine.evaluate(evaluated, images, data.y_train[:len(images)], chunk=chunk)
            chunks[chunk].append(time.perf_counter() - start)
    rate = {chunk: len(images) / statistics.median(t) for chunk, t in chunks.items()}
    return {"steps": args.conv_steps, "steps_per_s": sps,
            "ratio_engine_vs_reference": round(sps["engine"] / sps["reference"], 2),
            "kernels_ratio_vs_reference": round(sps["kernels"] / sps["reference"], 2),
            "ratio_channels_last": round(sps["engine"] / sps["engine_contiguous"], 2),
            "step_gflop": round(flop / 1e9, 3),
            "fraction_of_matmul_rate": round(sps["engine"] * flop / 1e9 / args.matmul, 3),
            "eval_images_per_s": round(rate[engine.CONV_EVAL_CHUNK], 1),
            "eval_ratio_chunk_vs_2000": round(rate[engine.CONV_EVAL_CHUNK] / rate[engine.EVAL_CHUNK], 2),
            "peak_rss_mb": peak_rss_mb()}


def channel_search_case(data, args) -> dict:
    """Engine steps a second of the channel search's training step (its params file's own settings), and
    what the paper's 160 epochs and the short profile's 20 would take at that rate, evaluation aside."""
    from ..config import load as load_params
    from ..provenance import REPO
    params = REPO / "params" / "early_bird_resnet20.yaml"
    paper = load_params(params, "paper", {})
    cfg = load_params(params, "paper", {"iterations": args.conv_steps, "eval_every": 10**6, "lr_drops": [],
                                        "mask_every": args.conv_steps})
    data = DeviceData(data.x_train, data.y_train, data.x_val[:120], data.y_val[:120], data.x_test[:120],
                      data.y_test[:120], data.black)  # as conv2_case: evaluation at 0 and n kept short
    build = lambda: models.build(cfg.model, seed=0, in_shape=(3, 32, 32), init=cfg.init)
    times = [run_engine(build(), Mask.ones_like(build()), data, cfg, train_only=True, scale_l1=cfg.bn_l1)
             for _ in range(args.repeats)]
    rate = args.conv_steps / statistics.median(times)
    return {"steps": args.conv_steps, "batch": cfg.batch_size, "steps_per_s": round(rate, 2),
            "hours_at_160_epochs": round(paper.iterations / rate / 3600, 1),
            "hours_at_20_epochs": round(load_params(params, "short", {}).iterations / rate / 3600, 1)}


def conv_settings_case(args) -> dict:
    """Step time of each conv net under each CPU setting, interleaved; speedups against the default layout."""
    g = torch.Generator().manual_seed(0)
    n_steps = max(2, args.conv_steps // 4)
    out = {"steps": n_steps}
    for name, batch in (("conv2", 60), ("conv4", 60), ("conv6", 60), ("resnet20", 128)):
        x, y = torch.randn(batch, 3, 32, 32, generator=g), torch.randint(0, 10, (batch,), generator=g)
        steps, warmup = {}, {}
        for layout in ("contiguous", "channels_last"):
            for compiled in (False, True):
                model = models.build(name, seed=0, in_shape=(3, 32, 32)).train()
                xs = x
                if layout == "channels_last":
                    model, xs = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
                optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
                forward = torch.compile(model) if compiled else model

                def step(forward=forward, optimizer=optimizer, xs=xs):
                    optimizer.zero_grad(set_to_none=True)
                    F.cross_entropy(forward(xs), y).backward()
                    optimizer.step()
                key = layout + ("+compile" if compiled else "")
                start = time.perf_counter()
                step(), step()  # compilation happens here
                steps[key], warmup[key] = step, round(time.perf_counter() - start, 1)
        times = {k: [] for k in steps}
        for r in range(args.repeats):
            for key in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
                start = time.perf_counter()
                for _ in range(n_steps):
                    steps[key]()
                times[key].append((time.perf_counter() - start) / n_steps)
        base = statistics.median(times["contiguous"])
        out[name] = {"batch": batch, "ms_per_step": {k: round(1e3 * statistics.median(v), 1) for k, v in times.items()},
                     "speedup_vs_contiguous": {k: round(base / statistics.median(v), 2) for k, v in times.items()},
                     "first_two_steps_s": warmup}
    return out


def edge_popup_case(args) -> dict:
    """ms per step of edge-popup against a dense SGD (momentum) step of the same net and batch, interleaved
    per repeat; the ratio is what choosing the edges costs on top of computing with them."""
    from ..training import supermask
    g = torch.Generator().manual_seed(0)
    n_steps = max(2, args.conv_steps // 2)
    out = {"steps": n_steps, "batch": 128}
    for name, shape, steps in (("lenet_300_100", (1, 28, 28), 10 * n_steps), ("conv2", (3, 32, 32), n_steps)):
        x, y = torch.randn(128, *shape, generator=g), torch.randint(0, 10, (128,), generator=g)
        dense = models.build(name, init="kaiming_normal", seed=0, in_shape=shape)
        conv = engine.uses_channels_last(dense)  # the layout the engine trains it in on a CPU
        if conv:
            x = x.contiguous(memory_format=torch.channels_last)
        random = models.build(name, init="signed_kaiming_constant_scaled", seed=0, in_shape=shape, keep=0.5)
        net = supermask.Supermask(random, 0.5, torch.Generator().manual_seed(1))
        if conv:
            dense.to(memory_format=torch.channels_last)
            net.to(memory_format=torch.channels_last)
        runs = {"dense_sgd": (dense, torch.optim.SGD(dense.parameters(), lr=0.01, momentum=0.9)),
                "edge_popup": (net, torch.optim.SGD(net.scores.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4))}

        def step(model, optimizer):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        for model, optimizer in runs.values():
            step(model, optimizer)  # warm-up
        times = {k: [] for k in runs}
        for r in range(args.repeats):
            for key in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
                start = time.perf_counter()
                for _ in range(steps):
                    step(*runs[key])
                times[key].append((time.perf_counter() - start) / steps)
        ms = {k: round(1e3 * statistics.median(v), 2) for k, v in times.items()}
        out[name] = {"ms_per_step": ms, "ratio_edge_popup_vs_dense": round(ms["edge_popup"] / ms["dense_sgd"], 2)}
    return out


def batched_case(data, args) -> dict:
    """Per-network cost of N networks trained as one stacked computation against N separate engine runs."""
    cfg = make({"iterations": args.steps, "eval_every": 100})
    dense = models.build("lenet_300_100", seed=0)
    ones = Mask.ones_like(dense)
    spec = pruning.PruneSpec.of(dense, cfg)
    w = {n: dense.get_parameter(n).detach() for n in dense.prunable}
    out = {"steps": args.steps, "eval_every": 100}
    for n in args.stack:
        masks = [ones] + [pruning.oneshot(w, ones, spec, lv) for lv in range(1, n)]  # densities 100%, 80%, ...
        nets = lambda: [models.build("lenet_300_100", seed=k) for k in range(n)]
        times = {"separate": [], "stacked": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            for model, mask in zip(nets(), masks):
                engine.train(model, mask, data, cfg, data_seed=1)
            times["separate"].append(time.perf_counter() - start)
            start = time.perf_counter()
            stacked.train_stacked(nets(), masks, data, cfg, data_seeds=[1] * n)
            times["stacked"].append(time.perf_counter() - start)
        sps = {k: round(n * args.steps / statistics.median(v), 1) for k, v in times.items()}
        out[f"n{n}"] = {"network_steps_per_s": sps, "ratio_stacked_vs_separate": round(sps["stacked"] / sps["separate"], 2)}
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def workers_case(args) -> dict:
    """Networks per hour of `executor.run` in one process (all threads) against two processes of half the
    threads each, on two whole trials of tickets. Starting the processes and loading the data are included;
    a longer run amortises them."""
    cfg = make({"experiment": "bench_workers", "trials": 2, "levels": args.levels, "controls": ("ticket",),
                "iterations": args.trial_steps, "eval_every": 100})
    n = len(imp.units(cfg))
    times = {1: [], 2: []}
    for r in range(args.repeats):
        for workers in ((1, 2) if r % 2 == 0 else (2, 1)):
            with tempfile.TemporaryDirectory() as root:
                start = time.perf_counter()
                executor.run(cfg, root, log=lambda *_: None, workers=workers)
                times[workers].append(time.perf_counter() - start)
    per_hour = {f"processes_{w}": round(n * 3600 / statistics.median(v)) for w, v in times.items()}
    return {"networks": n, "steps": args.trial_steps, "networks_per_hour": per_hour,
            "ratio_2_vs_1": round(per_hour["processes_2"] / per_hour["processes_1"], 2)}


def ray_case(args) -> dict:
    """Networks per hour of `executor.run(executor="ray")` (one-CPU tasks on a local Ray, started before the
    timing: a cluster is started once, not per run) against two pool processes of one thread each, on the
    same two trials of tickets, alternating which goes first. Each run starts its workers and loads data."""
    from ..runs import ray_executor
    cfg = make({"experiment": "bench_ray", "trials": 2, "levels": args.levels, "controls": ("ticket",),
                "iterations": args.trial_steps, "eval_every": 100})
    n = len(imp.units(cfg))
    ray, started = ray_executor.start()
    times = {"ray": [], "workers_2": []}
    try:
        for r in range(args.repeats):
            for how in (("ray", "workers_2") if r % 2 == 0 else ("workers_2", "ray")):
                with tempfile.TemporaryDirectory() as root:
                    start = time.perf_counter()
                    executor.run(cfg, root, log=lambda *_: None, **({"executor": "ray"} if how == "ray" else {"workers": 2}))
                    times[how].append(time.perf_counter() - start)
    finally:
        if started:
            ray.shutdown()
    per_hour = {how: round(n * 3600 / statistics.median(v)) for how, v in times.items()}
    return {"networks": n, "steps": args.trial_steps, "networks_per_hour": per_hour,
            "ratio_ray_vs_workers_2": round(per_hour["ray"] / per_hour["workers_2"], 2)}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m lt_core bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that the bench runs (seconds)")
    p.add_argument("--synthetic", action="store_true", help="random data instead of MNIST/CIFAR-10")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=2000, help="LeNet steps per level run")
    p.add_argument("--trial-steps", type=int, default=1000, help="steps per level in lenet_trial")
    p.add_argument("--levels", type=int, default=18)
    p.add_argument("--conv-steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--cases", default="lenet,conv2,batched", help="any of lenet, conv2, conv4, conv6, resnet20, batched, channel_search, conv_settings, edge_popup, workers, ray, device, memory (comma-separated)")
    p.add_argument("--device", default="auto", help="device case: auto (CUDA when there is one) | cpu | cuda")
    p.add_argument("--stack", default="2,4", help="batched: numbers of networks stacked")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    args = p.parse_args(argv[1:] if argv[:1] == ["--"] else argv)  # `bench -- --quick` (see __main__)
    if args.quick:
        args.repeats, args.steps, args.trial_steps, args.conv_steps = 1, 120, 60, 4
        args.levels = min(args.levels, 4)
    args.stack = [int(n) for n in args.stack.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    out = {"conditions": {"torch": torch.__version__, "cpu": provenance.cpu_kind(), "threads": torch.get_num_threads(),
                          "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
                          "repeats": args.repeats, "quick": args.quick, "synthetic": args.synthetic},
           "matmul_gflops_by_library": matmul_rates(256 if args.quick else 2048, 2 if args.quick else 7)}
    # the machine's product rate is the best library's: fractions of it say how close to the hardware we are
    out["matmul_gflops"] = args.matmul = max(out["matmul_gflops_by_library"].values())
    cases = args.cases.split(",")
    progress = lambda what: print(f"bench: {what} done", file=sys.stderr, flush=True)
    if "lenet" in cases:
        out["lenet_level"], out["lenet_trial"] = lenet_cases(load("mnist", args.quick, args.synthetic), args)
        level = out["lenet_level"]
        level["fraction_of_matmul_rate"] = round(level["train_gflops"] / out["matmul_gflops"], 3)
        level["fraction_of_blas_matmul_rate"] = round(level["train_gflops"]
                                                      / out["matmul_gflops_by_library"]["blas"], 3)
        level["kernels_fraction_of_matmul_rate"] = round(level["kernels_train_gflops"] / out["matmul_gflops"], 3)
        progress("lenet")
    for name in ("conv2", "conv4", "conv6", "resnet20"):
        if name in cases:
            out[name] = conv2_case(load("cifar10", args.quick, args.synthetic), args, name)
            progress(name)
    if "channel_search" in cases:
        out["channel_search"] = channel_search_case(load("cifar10", args.quick, args.synthetic), args)
        progress("channel_search")
    if "conv_settings" in cases:
        out["conv_settings"] = conv_settings_case(args)
        progress("conv_settings")
    if "edge_popup" in cases:
        out["edge_popup"] = edge_popup_case(args)
        progress("edge_popup")
    if "batched" in cases:
        out["batched"] = batched_case(load("mnist", args.quick, args.synthetic), args)
        progress("batched")
    if "device" in cases:
        from . import device_bench
        out["device"] = device_bench.case(lambda name: splits(name, args.quick, args.synthetic), args)
        progress("device")
    if "memory" in cases:
        from . import memory
        out["memory"] = memory.measure("resnet20", args.conv_steps, args.quick, args.synthetic)
        progress("memory")
    if "workers" in cases:
        out["workers"] = workers_case(args)
        progress("workers")
    if "ray" in cases:
        out["ray"] = ray_case(args)
        progress("ray")
    out["peak_rss_mb"] = peak_rss_mb()
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0
