"""Where a number comes from: the code version, the machine and its kind of CPU, recorded with every unit, and
which network it is (`weights_sha256`).

Also the repository root (`REPO`), from which data, params and recorded runs are found.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import platform
import subprocess
from pathlib import Path

import torch

from . import __version__

REPO = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the code (with '+dirty' when the working tree differs), else the package version."""
    try:
        run = lambda *args: subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                           check=True, timeout=10).stdout.strip()
        commit = run("rev-parse", "--short=12", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no", "--", "lt_core")
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return f"lt_core {__version__}"


@functools.lru_cache(maxsize=1)
def cpu_kind() -> str:
    """The CPU's model name and the vector instructions torch's kernels use on it (AVX2, AVX512, ...). Two
    machines of different kinds sum in different orders (MKL, oneDNN and fbgemm pick their code by
    instruction set), so the same run gives numbers that differ in the last digits: recorded with every
    unit, it says which kind of machine a table's numbers come from."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name} ({torch.backends.cpu.get_cpu_capability()})"


def provenance(device: str) -> dict:
    return {"code_version": code_version(), "lt_core": __version__, "torch": torch.__version__,
            "device": device, "machine": f"{platform.machine()} {platform.node()}", "cpu": cpu_kind(),
            "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def weights_sha256(state: dict) -> str:
    """Which network `state` is: the sha256 of each tensor's name, dtype, shape and bytes, in name order.
    Two trainings agree on it only if they went bit for bit the same (the same machine kind, torch, threads)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def start_weights_sha256(model) -> str:
    """Which weights a unit's training starts from (theta_0, theta_k, a fresh draw): `weights_sha256` of
    the model's prunable tensors before its mask is applied."""
    state = model.state_dict()
    return weights_sha256({n: state[n] for n in model.prunable})
