"""Rotation invariants of tuple products (Eq. 1's q_ijk...).

Per product: rank 1 -> |r| (1 value); even -> (scalar, |bivector|) (2);
odd > 1 -> (|vector|, trivector) (2). The trivector is a pseudoscalar: it flips
sign under reflections, so models using it are SO(3)- but not O(3)-invariant.
With ``o3=True`` it is replaced by its magnitude, which makes every invariant
O(3)-invariant (at the price of not telling mirror images apart).
"""
from __future__ import annotations

import torch

from .algebra import vector_vector
from .products import TupleProduct, product_sets
from .safe import safe_abs, safe_norm

__all__ = ["INVARIANT_MODES", "invariant_count", "product_invariants", "tuple_invariants", "pair_invariants"]

INVARIANT_MODES = ("single", "partial", "full")

#: Reference library clip on product norms before normalising.
NORMALIZATION_FLOOR = 1e-7


def invariant_count(rank: int, mode: str = "single", include_normalized_products: bool = False) -> int:
    """Number of invariants per tuple; same as the reference ``get_invariant_dims``.

    >>> invariant_count(2, "single"), invariant_count(2, "partial"), invariant_count(3, "full")
    (2, 3, 9)
    """
    if mode not in INVARIANT_MODES:
        raise ValueError(f"invariant mode must be one of {INVARIANT_MODES}, got {mode!r}")
    if mode == "full":
        count = rank ** 2
    elif mode == "partial":
        count = 2 * rank - 1
    else:
        count = 1 if rank == 1 else 2
    return 2 * count if include_normalized_products else count


def product_invariants(product: TupleProduct, o3: bool = False) -> torch.Tensor:
    """Invariants of one product: (..., 3|4) -> (..., 1|2)."""
    p = product.components
    if product.is_vector:
        return safe_norm(p)
    if product.is_even:
        return torch.cat([p[..., :1], safe_norm(p[..., 1:4])], dim=-1)
    trivector = p[..., 3:4]
    if o3:
        trivector = safe_abs(trivector)
    return torch.cat([safe_norm(p[..., :3]), trivector], dim=-1)


def tuple_invariants(r: torch.Tensor, rank: int = 2, mode: str = "single",
                     include_normalized_products: bool = False, o3: bool = False) -> torch.Tensor:
    """All invariants of every tuple of a cloud.

    r (..., N, 3) -> (..., N, ..., N, I) with ``rank`` tuple axes and
    I = invariant_count(rank, mode, include_normalized_products). Order of the
    I features matches the reference library (products of the mode's series,
    then the same for the normalised products).

    >>> tuple_invariants(torch.randn(4, 3), rank=2, mode="partial").shape
    torch.Size([4, 4, 3])
    """
    return _invariant_features(product_sets(r, rank)[mode], include_normalized_products, o3)


def pair_invariants(r_a: torch.Tensor, r_b: torch.Tensor, include_normalized_products: bool = False,
                    o3: bool = False) -> torch.Tensor:
    """Rank-2 'single' invariants of given vector pairs: r_a, r_b (..., P, 3) -> (..., P, I).

    The same numbers as :func:`tuple_invariants` (rank 2, mode 'single') at those
    pairs; they are symmetric in a and b (r_a . r_b and |r_a ^ r_b|), which lets
    attention evaluate each unordered pair once.

    >>> r = torch.randn(5, 3, dtype=torch.float64)
    >>> torch.allclose(pair_invariants(r[[1]], r[[3]])[0], tuple_invariants(r)[1, 3])
    True
    """
    product = TupleProduct((0, 1), vector_vector(r_a, r_b))
    return _invariant_features([product], include_normalized_products, o3)


def _invariant_features(products: list[TupleProduct], include_normalized_products: bool, o3: bool) -> torch.Tensor:
    features = [product_invariants(p, o3) for p in products]
    if include_normalized_products:
        for p, q in zip(products, list(features)):
            # normalise by the norm of the whole product multivector
            scale = safe_norm(p.components).clamp_min(NORMALIZATION_FLOOR)
            features.append(q / scale)
    tuple_shape = torch.broadcast_shapes(*(f.shape[:-1] for f in features))
    return torch.cat([f.expand(*tuple_shape, f.shape[-1]) for f in features], dim=-1)
