"""Norms that stay finite through first and second derivatives at zero length.

Self pairs (r_ii = 0) and parallel bonds (zero bivector) are everyday inputs;
force training differentiates the model twice, so sqrt at zero must not leak
inf or NaN into gradients. We use the "double where" trick: the square root is
only ever evaluated on a value known to be positive, and below a tiny threshold
the norm (and its derivatives) are exactly zero.
"""
from __future__ import annotations

import torch

__all__ = ["safe_norm", "safe_abs", "zero_threshold"]


def zero_threshold(dtype: torch.dtype) -> float:
    """Squared length below which a vector counts as zero: machine epsilon squared.

    >>> zero_threshold(torch.float64) < 1e-30
    True
    """
    return float(torch.finfo(dtype).eps) ** 2


def safe_norm(x: torch.Tensor, dim: int = -1, keepdim: bool = True) -> torch.Tensor:
    """Euclidean norm along ``dim`` with finite derivatives of all orders at 0.

    x (..., C) -> (..., 1) (or (...) without keepdim); same unit as x.

    >>> safe_norm(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    tensor([[5.],
            [0.]])
    """
    squared = (x * x).sum(dim=dim, keepdim=keepdim)
    positive = squared > zero_threshold(squared.dtype)
    ones = torch.ones_like(squared)
    return torch.where(positive, torch.sqrt(torch.where(positive, squared, ones)), torch.zeros_like(squared))


def safe_abs(x: torch.Tensor) -> torch.Tensor:
    """|x| elementwise as a safe norm of a one-component vector (derivative 0 at x = 0).

    >>> safe_abs(torch.tensor([-2.0, 0.0]))
    tensor([2., 0.])
    """
    return safe_norm(x.unsqueeze(-1)).squeeze(-1)
