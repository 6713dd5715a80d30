"""Mask: a checked mapping from prunable tensor name to a boolean tensor (True = the weight survives).

Densities are fractions of weights remaining (the paper's P_m). A mask is applied by multiplying, never by
thresholding weights (`w < eps` would also freeze weights that are merely negative or small).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn


class Mask(dict):
    def __init__(self, tensors: dict[str, torch.Tensor] | None = None):
        super().__init__()
        for name, t in (tensors or {}).items():
            self[name] = t

    def __setitem__(self, name: str, t: torch.Tensor) -> None:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"mask entry '{name}' must be a tensor, got {type(t).__name__}")
        if t.dtype != torch.bool:
            if not bool(((t == 0) | (t == 1)).all()):
                raise ValueError(f"mask entry '{name}' holds values other than 0 and 1")
            t = t.bool()
        super().__setitem__(name, t)

    @classmethod
    def ones_like(cls, model: nn.Module) -> "Mask":
        return cls({name: torch.ones_like(model.get_parameter(name), dtype=torch.bool, device="cpu")
                    for name in model.prunable})

    # --- counting ---------------------------------------------------------------------------------------
    def count(self) -> int:
        return sum(int(t.sum()) for t in self.values())

    def size(self) -> int:
        return sum(t.numel() for t in self.values())

    def density(self) -> float:
        """Fraction of all prunable weights that remain."""
        return self.count() / self.size()

    def layer_counts(self) -> dict[str, int]:
        return {name: int(t.sum()) for name, t in self.items()}

    def layer_densities(self) -> dict[str, float]:
        return {name: int(t.sum()) / t.numel() for name, t in self.items()}

    def nested_in(self, other: "Mask") -> bool:
        """True when every weight this mask keeps is also kept by `other` (masks shrink across levels)."""
        return self.keys() == other.keys() and all(bool((self[n] <= other[n]).all()) for n in self)

    # --- use ----------------------------------------------------------------------------------------------
    def check_fits(self, model: nn.Module) -> None:
        if set(self) != set(model.prunable):
            raise ValueError(f"mask names {sorted(self)} do not match the model's prunable tensors "
                             f"{sorted(model.prunable)}")
        for name, t in self.items():
            if t.shape != model.get_parameter(name).shape:
                raise ValueError(f"mask '{name}' has shape {tuple(t.shape)}, the weight "
                                 f"{tuple(model.get_parameter(name).shape)}")

    def as_floats(self, device) -> dict[str, torch.Tensor]:
        """Float copies on the training device, for multiplying weights and gradients."""
        return {n: t.to(device=device, dtype=torch.float32) for n, t in self.items()}

    @torch.no_grad()
    def apply(self, model: nn.Module) -> nn.Module:
        """Set pruned weights of `model` to exactly zero, in place."""
        self.check_fits(model)
        for name, t in self.items():
            p = model.get_parameter(name)
            p.mul_(t.to(p.device, p.dtype))
        return model

    # --- storage ------------------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save({n: t.cpu() for n, t in self.items()}, buffer)
        return buffer.getvalue()

    @classmethod
    def load(cls, path: str | Path) -> "Mask":
        return cls(torch.load(path, map_location="cpu", weights_only=True))
