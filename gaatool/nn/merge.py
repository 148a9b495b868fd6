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
from .frozen import derived_while_frozen

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
        return sum(self.slot_terms(values))

    def slot_terms(self, values: torch.Tensor, then: torch.Tensor | None = None) -> list[torch.Tensor]:
        """M as a sum of one per-point term per slot, each (..., 1, N, 1, F)-shaped: M = sum(terms).

        ``then`` (F, F'): a linear map applied after M, folded into the kernels.
        """
        return [slot_view(term, slot, self.rank) for slot, term in enumerate(self.point_terms(values, then))]

    def point_terms(self, values: torch.Tensor, then: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Each slot's contribution per point, (..., N, F): M(v_i, v_j, ...) = terms[0]_i + terms[1]_j + ...

        ``then`` (F, F'): a linear map applied after M; with the concat merge it
        is folded into each slot's kernel (one product per point instead of two).
        """
        if self.mode == "mean":
            term = values / float(self.rank)
            return [term if then is None else term @ then] * self.rank
        # project each point once, then broadcast: cheaper than projecting every tuple
        if then is None:
            return [values @ kernel for kernel in self.kernels]
        folded = derived_while_frozen(self, ("then", then.data_ptr()), [*self.kernels, then],
                                      lambda: [kernel @ then for kernel in self.kernels])
        return [values @ kernel for kernel in folded]

    @property
    def symmetric(self) -> bool:
        """M is symmetric in its inputs (every slot contributes the same per-point term)."""
        return self.mode == "mean"


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
        return sum(self.input_map(index, part) for index, part in enumerate(parts))

    def input_map(self, index: int, part: torch.Tensor) -> torch.Tensor:
        """The (linear, bias-free) contribution of input ``index``: J(a, b, ...) = sum_k input_map(k, part_k)."""
        if self.mode == "mean":
            return part / float(self.n_inputs)
        return part @ self.kernels[index]

    def input_kernel(self, index: int) -> torch.Tensor | None:
        """input_map(index, .) as a matrix to fold into a preceding linear map; None for the mean (a scale)."""
        return None if self.mode == "mean" else self.kernels[index]
