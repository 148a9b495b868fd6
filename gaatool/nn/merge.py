"""Merge (M: tuple values -> one value) and join (J: combine representations) functions.

``mean`` has no parameters. ``concat`` is the reference library's learned
linear map: one (F, F) kernel per input, outputs summed, which equals a dense
layer on the concatenation.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..ga.products import slot_view

__all__ = ["MERGE_MODES", "TupleMerge", "Join"]

MERGE_MODES = ("mean", "concat")


def _check(mode: str) -> None:
    if mode not in MERGE_MODES:
        raise ConfigError(f"merge/join mode must be one of {MERGE_MODES}, got {mode!r}")


class TupleMerge(nn.Module):
    """M(v_i, v_j, ...): per-point values (..., N, F) -> tuple values (..., N, ..., N, F) (broadcastable)."""

    def __init__(self, n_dim: int, rank: int, mode: str = "mean"):
        super().__init__()
        _check(mode)
        self.mode, self.rank = mode, rank
        if mode == "concat":
            std = math.sqrt(2.0 / rank / n_dim)
            self.kernels = nn.ParameterList([nn.Parameter(torch.randn(n_dim, n_dim) * std) for _ in range(rank)])

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        if self.mode == "mean":
            parts = [slot_view(values, slot, self.rank) for slot in range(self.rank)]
            return sum(parts) / float(self.rank)
        # project each point once, then broadcast: cheaper than projecting every tuple
        return sum(slot_view(values @ kernel, slot, self.rank) for slot, kernel in enumerate(self.kernels))


class Join(nn.Module):
    """J(a, b, ...): combine same-width representations by mean or learned linear maps."""

    def __init__(self, n_dim: int, n_inputs: int = 2, mode: str = "mean"):
        super().__init__()
        _check(mode)
        self.mode, self.n_inputs = mode, n_inputs
        if mode == "concat":
            std = math.sqrt(2.0 / n_inputs / n_dim)
            self.kernels = nn.ParameterList([nn.Parameter(torch.randn(n_dim, n_dim) * std)
                                             for _ in range(n_inputs)])

    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        if self.mode == "mean":
            return sum(parts) / float(len(parts))
        return sum(part @ kernel for part, kernel in zip(parts, self.kernels))
