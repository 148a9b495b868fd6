"""Geometry: a cloud's positions plus what every attention layer of one forward pass derives from them.

The invariants of all tuples depend only on the positions, so a model with
several attention layers over the same cloud computes them once (and its
autograd graph holds them once) by passing one :class:`Geometry` to every
layer instead of the positions tensor. Layers accept either.
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["Geometry"]


class Geometry:
    """Positions (..., N, 3) of padded clouds, padding zeroed, with a per-forward cache of derived tensors.

    >>> g = Geometry(torch.randn(2, 5, 3))
    >>> g.cached(("norms",), lambda: g.positions.norm(dim=-1)) is g.cached(("norms",), lambda: None)
    True
    """

    def __init__(self, positions: torch.Tensor, mask: torch.Tensor | None = None):
        if mask is not None:
            # garbage (even NaN) in padded rows must not reach any output
            positions = torch.where(mask.unsqueeze(-1), positions, torch.zeros_like(positions))
        self.positions, self.mask = positions, mask
        self._cache: dict = {}

    @classmethod
    def of(cls, positions: "torch.Tensor | Geometry", mask: torch.Tensor | None = None) -> "Geometry":
        """``positions`` itself if it is a Geometry, else a fresh (unshared) one."""
        return positions if isinstance(positions, Geometry) else cls(positions, mask)

    def cached(self, key: tuple, compute: Callable[[], torch.Tensor]):
        """compute() the first time ``key`` is asked for, the same object afterwards."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]
