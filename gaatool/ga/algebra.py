"""Multivectors of the geometric algebra of R^3 and their geometric product.

A multivector has 8 components in the basis (1, e1, e2, e3, e12, e13, e23, e123),
the basis the reference library uses. Functions broadcast over leading axes:
shapes are written (..., 8).

The products of *vectors* used by attention layers never leave two 4-component
halves of the algebra: products of an even number of vectors are scalar +
bivector ("even", basis (1, e12, e13, e23)); of an odd number, vector +
trivector ("odd", basis (e1, e2, e3, e123)). :func:`vector_vector`,
:func:`even_vector` and :func:`odd_vector` give those products in closed form.
"""
from __future__ import annotations

import torch

__all__ = [
    "BASIS", "GRADES", "geometric_product", "grade", "reverse", "dual", "norm",
    "from_vector", "vector_vector", "even_vector", "odd_vector",
    "even_to_multivector", "odd_to_multivector",
]

#: Names of the 8 basis blades, in component order.
BASIS = ("1", "e1", "e2", "e3", "e12", "e13", "e23", "e123")
#: Grade of each component.
GRADES = (0, 1, 1, 1, 2, 2, 2, 3)


def geometric_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Geometric product ``a b`` of two multivectors, in closed form.

    a, b (..., 8) -> (..., 8). Associative, not commutative; e_i e_i = 1.

    >>> e1 = torch.tensor([0., 1, 0, 0, 0, 0, 0, 0]); e2 = torch.tensor([0., 0, 1, 0, 0, 0, 0, 0])
    >>> geometric_product(e1, e2)  # = e12
    tensor([0., 0., 0., 0., 1., 0., 0., 0.])
    """
    a0, a1, a2, a3, a4, a5, a6, a7 = a.unbind(-1)
    b0, b1, b2, b3, b4, b5, b6, b7 = b.unbind(-1)
    return torch.stack([
        a0*b0 + a1*b1 + a2*b2 + a3*b3 - a4*b4 - a5*b5 - a6*b6 - a7*b7,
        a0*b1 + a1*b0 - a2*b4 - a3*b5 + a4*b2 + a5*b3 - a6*b7 - a7*b6,
        a0*b2 + a1*b4 + a2*b0 - a3*b6 - a4*b1 + a5*b7 + a6*b3 + a7*b5,
        a0*b3 + a1*b5 + a2*b6 + a3*b0 - a4*b7 - a5*b1 - a6*b2 - a7*b4,
        a0*b4 + a1*b2 - a2*b1 + a3*b7 + a4*b0 - a5*b6 + a6*b5 + a7*b3,
        a0*b5 + a1*b3 - a2*b7 - a3*b1 + a4*b6 + a5*b0 - a6*b4 - a7*b2,
        a0*b6 + a1*b7 + a2*b3 - a3*b2 - a4*b5 + a5*b4 + a6*b0 + a7*b1,
        a0*b7 + a1*b6 - a2*b5 + a3*b4 + a4*b3 - a5*b2 + a6*b1 + a7*b0,
    ], dim=-1)


def grade(m: torch.Tensor, k: int) -> torch.Tensor:
    """Grade-``k`` projection <m>_k, as a full multivector (other components zeroed).

    m (..., 8) -> (..., 8).
    """
    if k not in (0, 1, 2, 3):
        raise ValueError(f"grade must be 0, 1, 2 or 3, got {k}")
    selector = torch.tensor([g == k for g in GRADES], dtype=m.dtype, device=m.device)
    return m * selector


_REVERSE_SIGNS = (1, 1, 1, 1, -1, -1, -1, -1)


def reverse(m: torch.Tensor) -> torch.Tensor:
    """Reversion: flips the sign of bivector and trivector parts. (..., 8) -> (..., 8)."""
    return m * torch.tensor(_REVERSE_SIGNS, dtype=m.dtype, device=m.device)


def dual(m: torch.Tensor) -> torch.Tensor:
    """Dual ``m I^-1`` with the unit pseudoscalar I = e123 (I^-1 = -I). (..., 8) -> (..., 8).

    The dual maps a bivector to the vector normal to its plane: dual(e12) = e3.

    >>> e12 = torch.tensor([0., 0, 0, 0, 1, 0, 0, 0])
    >>> dual(e12)
    tensor([0., 0., 0., 1., 0., 0., 0., 0.])
    """
    inverse_pseudoscalar = torch.zeros(8, dtype=m.dtype, device=m.device)
    inverse_pseudoscalar[7] = -1.0
    return geometric_product(m, inverse_pseudoscalar.expand_as(m))


def norm(m: torch.Tensor) -> torch.Tensor:
    """Euclidean norm sqrt(<m reverse(m)>_0) over all 8 components. (..., 8) -> (..., 1)."""
    from .safe import safe_norm
    return safe_norm(m)


def from_vector(r: torch.Tensor) -> torch.Tensor:
    """Embed vectors (..., 3) as multivectors (..., 8)."""
    zeros = torch.zeros(r.shape[:-1] + (1,), dtype=r.dtype, device=r.device)
    return torch.cat([zeros, r, zeros, zeros, zeros, zeros], dim=-1)


def even_to_multivector(p: torch.Tensor) -> torch.Tensor:
    """(scalar, e12, e13, e23) (..., 4) -> multivector (..., 8)."""
    zeros = torch.zeros(p.shape[:-1] + (3,), dtype=p.dtype, device=p.device)
    return torch.cat([p[..., :1], zeros, p[..., 1:4], zeros[..., :1]], dim=-1)


def odd_to_multivector(q: torch.Tensor) -> torch.Tensor:
    """(e1, e2, e3, e123) (..., 4) -> multivector (..., 8)."""
    zeros = torch.zeros(q.shape[:-1] + (4,), dtype=q.dtype, device=q.device)
    return torch.cat([zeros[..., :1], q[..., :3], zeros[..., 1:], q[..., 3:4]], dim=-1)


def vector_vector(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Product of two vectors: (..., 3), (..., 3) -> even (..., 4) = (a.b, a^b in e12, e13, e23).

    >>> vector_vector(torch.tensor([1., 0, 0]), torch.tensor([0., 1, 0]))
    tensor([0., 1., 0., 0.])
    """
    a1, a2, a3 = a.unbind(-1)
    b1, b2, b3 = b.unbind(-1)
    return torch.stack([
        a1*b1 + a2*b2 + a3*b3,
        a1*b2 - a2*b1,
        a1*b3 - a3*b1,
        a2*b3 - a3*b2,
    ], dim=-1)


def even_vector(p: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(scalar + bivector) times vector: (..., 4), (..., 3) -> odd (..., 4) = (e1, e2, e3, e123)."""
    s, b12, b13, b23 = p.unbind(-1)
    c1, c2, c3 = c.unbind(-1)
    return torch.stack([
        s*c1 + b12*c2 + b13*c3,
        s*c2 - b12*c1 + b23*c3,
        s*c3 - b13*c1 - b23*c2,
        b12*c3 - b13*c2 + b23*c1,
    ], dim=-1)


def odd_vector(q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """(vector + trivector) times vector: (..., 4), (..., 3) -> even (..., 4) = (1, e12, e13, e23)."""
    v1, v2, v3, t = q.unbind(-1)
    d1, d2, d3 = d.unbind(-1)
    return torch.stack([
        v1*d1 + v2*d2 + v3*d3,
        v1*d2 - v2*d1 + t*d3,
        v1*d3 - v3*d1 - t*d2,
        v2*d3 - v3*d2 + t*d1,
    ], dim=-1)
