"""Rotation-covariant vectors of tuple products (the vector(p) terms of Eq. 2).

Rank 1 -> the vector itself; odd products -> their vector part; even products
-> the dual of their bivector (a cross product for r_i r_j). Duals of bivectors
are pseudovectors: under a reflection they pick up an extra sign. With
``o3=True`` they are left out so outputs are O(3)-covariant.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from .products import TupleProduct, product_sets
from .safe import safe_norm
from .invariants import NORMALIZATION_FLOOR

__all__ = ["COVARIANT_MODES", "covariant_count", "product_covariant", "tuple_covariants"]

COVARIANT_MODES = ("single", "partial", "full")


def _selected(rank: int, mode: str, o3: bool) -> list[bool]:
    # Which products of the mode's series survive (pseudovectors drop out under O(3)).
    orders = {
        "single": [rank],
        "partial": list(range(rank, 0, -1)),
        "full": [o for start in range(rank) for o in range(rank - start, 0, -1)],
    }[mode]
    return [not (o3 and o % 2 == 0) for o in orders]


def covariant_count(rank: int, mode: str = "partial", include_normalized_products: bool = False,
                    o3: bool = False) -> int:
    """Number of covariant vectors per tuple.

    >>> covariant_count(2, "single"), covariant_count(2, "partial"), covariant_count(2, "full")
    (1, 2, 3)
    """
    if mode not in COVARIANT_MODES:
        raise ValueError(f"covariant mode must be one of {COVARIANT_MODES}, got {mode!r}")
    count = sum(_selected(rank, mode, o3))
    if count == 0:
        raise ConfigError(f"covariant mode {mode!r} at rank {rank} only has pseudovectors; "
                          "with o3=True use covariant mode 'partial' or 'full'")
    return 2 * count if include_normalized_products else count


def product_covariant(product: TupleProduct) -> torch.Tensor:
    """Covariant vector of one product: (..., 3|4) -> (..., 3)."""
    p = product.components
    if product.is_vector:
        return p
    if not product.is_even:
        return p[..., :3]
    # dual of the bivector (e12, e13, e23) -> (e23, -e13, e12): the cross product
    return torch.stack([p[..., 3], -p[..., 2], p[..., 1]], dim=-1)


def tuple_covariants(r: torch.Tensor, rank: int = 2, mode: str = "partial",
                     include_normalized_products: bool = False, o3: bool = False) -> list[torch.Tensor]:
    """Covariant vectors of every tuple, each broadcastable to (..., N, ..., N, 3).

    r (..., N, 3) -> list of covariant_count(...) tensors.
    """
    covariant_count(rank, mode, include_normalized_products, o3)  # validates
    products = [p for p, keep in zip(product_sets(r, rank)[mode], _selected(rank, mode, o3)) if keep]
    vectors = [product_covariant(p) for p in products]
    if include_normalized_products:
        vectors += [v / safe_norm(p.components).clamp_min(NORMALIZATION_FLOOR)
                    for p, v in zip(products, list(vectors))]
    return vectors
