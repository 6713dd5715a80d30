"""Where a conv net's training process keeps its memory (issue 15: ResNet-20 runs peaked at 2.4-2.9 GB of
resident memory where the official open_lth took 1.2).

`python -m lt_core.speed.memory [--model resnet20] [--steps 60] [--quick] [--synthetic]` goes through the
phases of one training unit in this process and prints JSON: after each phase the resident set (VmRSS) and
the phase's own peak (VmHWM, reset between phases through /proc/self/clear_refs), in MB, and the bytes of
the tensors the data are held in, against what the same images take as uint8. `bench --cases memory` runs it
twice in fresh processes, side by side: with glibc's malloc as it comes, and with its mmap threshold fixed
(MALLOC_MMAP_THRESHOLD_, so that every large block is mapped and given back when torch frees it), since a
training step allocates and frees activations of a few MB each, which glibc otherwise keeps in its heap.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys

import torch

from ..config import make
from ..nets import models
from ..sparsity.masks import Mask
from ..training import loop as engine
from ..training.loop import DeviceData
from .inputs import splits as splits_of

MB = 1024 * 1024
FIXED_MMAP_THRESHOLD = 1 << 20  # bytes: blocks of 1 MB and more are mapped (a ResNet-20 activation is 2-8 MB)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    raise RuntimeError(f"/proc/self/status has no {field} (memory phases need Linux)")


def _reset_peak() -> bool:
    """Start a new VmHWM from the present resident set (Linux 4.0+); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def tensor_mb(*tensors: torch.Tensor) -> float:
    return round(sum(t.numel() * t.element_size() for t in tensors) / MB, 1)


def phases(model_name: str = "resnet20", steps: int = 60, quick: bool = False, synthetic: bool = False) -> dict:
    """The phases of one unit as the engine runs it (read, normalise, evaluate, train), measured in order."""
    out: dict = {"phases": [], "peak_reset": _reset_peak(),
                 "mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_", "glibc's dynamic default")}

    def mark(name: str) -> None:
        out["phases"].append({"phase": name, "rss_mb": _status_mb("VmRSS"), "peak_mb": _status_mb("VmHWM")})
        _reset_peak()

    mark("python, torch and lt_core imported")
    splits = splits_of("cifar10", quick, synthetic)  # the bench's data: real, or random of CIFAR's shape
    mark("CIFAR-10 read as uint8 (datasets keeps its copy)")
    data = DeviceData.prepare(splits, torch.device("cpu"))
    mark("the splits normalised to float32 (DeviceData.prepare)")
    model = models.build(model_name, seed=0, in_shape=(3, 32, 32))
    engine.evaluate(model.to(memory_format=torch.channels_last), data.x_test, data.y_test)
    mark("the test split evaluated (chunks of %d)" % engine.CONV_EVAL_CHUNK)
    # training steps alone: train() evaluates at iterations 0 and n, on these few examples
    few = DeviceData(data.x_train, data.y_train, data.x_val[:128], data.y_val[:128], data.x_test[:128],
                     data.y_test[:128], data.black)
    cfg = make({"model": model_name, "dataset": "cifar10", "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
                "batch_size": 128, "augment": True, "iterations": steps, "eval_every": 10**6})
    model = models.build(model_name, seed=0, in_shape=(3, 32, 32))
    engine.train(model, Mask.ones_like(model), few, cfg, data_seed=1)
    mark(f"{steps} training steps (SGD, batch 128, crop and flip)")
    del few, model
    gc.collect()
    mark("model and optimizer dropped (the data kept, as between units)")
    raw = (splits.x_train, splits.x_val, splits.x_test)
    held = (data.x_train, data.x_val, data.x_test)
    out["images_mb"] = {"float32_normalised": tensor_mb(*held), "uint8_read": tensor_mb(*raw)}
    out["images"] = sum(len(x) for x in raw)
    return out


def measure(model_name: str, steps: int, quick: bool, synthetic: bool) -> dict:
    """`phases` in two fresh processes (with this process's torch threads), glibc's malloc as it comes and
    with the mmap threshold fixed."""
    runs = {}
    fixed = {"MALLOC_MMAP_THRESHOLD_": str(FIXED_MMAP_THRESHOLD)}
    for name, extra in (("malloc_default", {}), ("mmap_threshold_1mb", fixed)):
        argv = [sys.executable, "-m", "lt_core.speed.memory", "--model", model_name, "--steps", str(steps),
                "--threads", str(torch.get_num_threads())]
        argv += ["--quick"] * quick + ["--synthetic"] * synthetic
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"} | extra
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"memory phases ({name}) failed: {done.stderr.strip().splitlines()[-1:]}")
        runs[name] = json.loads(done.stdout)
    peak = {name: max(p["peak_mb"] for p in r["phases"]) for name, r in runs.items()}
    return {"model": model_name, "steps": steps, "runs": runs, "peak_mb": peak,
            "ratio_peak_default_vs_fixed_threshold": round(peak["malloc_default"] / peak["mmap_threshold_1mb"], 2)}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m lt_core.speed.memory", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--quick", action="store_true", help="3,000 training images, 1,000 each to evaluate")
    p.add_argument("--synthetic", action="store_true", help="random images of CIFAR-10's shape")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(phases(args.model, args.steps, args.quick, args.synthetic), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
