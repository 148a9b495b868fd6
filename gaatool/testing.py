"""Symmetry checks for layers and models, public so users can test their own.

Each check takes a function of (positions, values, mask) style inputs,
transforms the inputs, and asserts the output transforms as claimed, in the
input dtype (use float64 and tolerances like 1e-9).

>>> import torch
>>> from gaatool.nn import VectorAttention
>>> layer = VectorAttention(4, reduce=True).double()
>>> r, v = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
>>> assert_rotation_invariant(lambda r: layer(r, v), r)
"""
from __future__ import annotations

from typing import Callable

import torch

from .ga.rotations import random_reflection, random_rotation

__all__ = ["max_error", "assert_rotation_invariant", "assert_rotation_covariant", "assert_permutation_equivariant",
           "assert_permutation_invariant", "assert_translation_invariant", "assert_padding_invariant",
           "assert_close"]

DEFAULT_ATOL = 1e-9


def max_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute elementwise difference."""
    return float((a.detach() - b.detach()).abs().max()) if a.numel() else 0.0


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float, what: str) -> None:
    """Raise AssertionError with the maximum error if the tensors differ by more than atol."""
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}")
    if not torch.isfinite(actual).all():
        raise AssertionError(f"{what}: output is not finite")
    error = max_error(actual, expected)
    if error > atol:
        raise AssertionError(f"{what}: max error {error:.3e} > {atol:.1e}")


def _rotation(seed: int, dtype, reflect: bool) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (random_reflection if reflect else random_rotation)(generator, dtype)


def assert_rotation_invariant(fn: Callable[[torch.Tensor], torch.Tensor], positions: torch.Tensor,
                              atol: float = DEFAULT_ATOL, seed: int = 0, reflect: bool = False) -> None:
    """fn(positions Q^T) == fn(positions) for a random rotation Q (or improper Q with ``reflect``)."""
    q = _rotation(seed, positions.dtype, reflect)
    assert_close(fn(positions @ q.T), fn(positions), atol, "rotation invariance")


def assert_rotation_covariant(fn: Callable[[torch.Tensor], torch.Tensor], positions: torch.Tensor,
                              atol: float = DEFAULT_ATOL, seed: int = 0, reflect: bool = False) -> None:
    """fn(positions Q^T) == fn(positions) Q^T: output vectors (..., 3) rotate with the input."""
    q = _rotation(seed, positions.dtype, reflect)
    assert_close(fn(positions @ q.T), fn(positions) @ q.T, atol, "rotation covariance")


def assert_translation_invariant(fn: Callable[[torch.Tensor], torch.Tensor], positions: torch.Tensor,
                                 atol: float = DEFAULT_ATOL, seed: int = 0) -> None:
    """fn(positions + t) == fn(positions) for a random shift t."""
    shift = torch.randn(3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(positions.dtype)
    assert_close(fn(positions + shift), fn(positions), atol, "translation invariance")


def _permutation(n: int, seed: int) -> torch.Tensor:
    """A seeded permutation of n points that moves some point (for n > 1): the identity would test nothing."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    if n > 1 and bool((perm == torch.arange(n)).all()):
        perm = torch.roll(perm, 1)
    return perm


def assert_permutation_equivariant(fn: Callable[..., torch.Tensor], *per_point: torch.Tensor,
                                   atol: float = DEFAULT_ATOL, seed: int = 0, axis: int = -2) -> None:
    """fn(*(x[perm])) == fn(*x)[perm] with all per-point inputs permuted along the point axis.

    ``axis`` is the point axis of the inputs (and the output): -2 for (..., N, C).
    """
    n = per_point[0].shape[axis]
    perm = _permutation(n, seed)
    permuted = [x.index_select(x.dim() + axis if axis < 0 else axis, perm) for x in per_point]
    out = fn(*per_point)
    out_axis = out.dim() + axis if axis < 0 else axis
    assert_close(fn(*permuted), out.index_select(out_axis, perm), atol, "permutation equivariance")


def assert_permutation_invariant(fn: Callable[..., torch.Tensor], *per_point: torch.Tensor,
                                 atol: float = DEFAULT_ATOL, seed: int = 0, axis: int = -2) -> None:
    """fn(*(x[perm])) == fn(*x)."""
    n = per_point[0].shape[axis]
    perm = _permutation(n, seed)
    permuted = [x.index_select(x.dim() + axis if axis < 0 else axis, perm) for x in per_point]
    assert_close(fn(*permuted), fn(*per_point), atol, "permutation invariance")


def assert_padding_invariant(fn: Callable[..., torch.Tensor], positions: torch.Tensor, values: torch.Tensor,
                             n_pad: int = 3, atol: float = DEFAULT_ATOL, seed: int = 0,
                             per_point_output: bool = True) -> None:
    """Padded points (random garbage, masked out) inserted among the points, the points' order kept,
    change no output.

    fn(positions, values, mask) with positions (..., N, 3), values (..., N, F).
    Per-point outputs of padded points must be exactly zero. At least one padded point comes
    before a real one: padding only ever at the end would let a mask read as a length pass.
    """
    generator = torch.Generator().manual_seed(seed)
    n = positions.shape[-2]
    pad_shape = positions.shape[:-2] + (n_pad,)
    garbage_r = torch.randn(*pad_shape, 3, generator=generator, dtype=torch.float64).to(positions.dtype) * 1e3
    garbage_v = torch.randn(*pad_shape, values.shape[-1], generator=generator, dtype=torch.float64).to(values.dtype)
    garbage_r[..., 0, 0] = float("nan")  # even NaN in padding must not leak
    is_pad = torch.zeros(n + n_pad, dtype=torch.bool)
    is_pad[torch.randperm(n + n_pad, generator=generator)[:n_pad]] = True
    if n_pad and not bool(is_pad[:n].any()):  # all at the end: move one to the front
        is_pad[n] = False
        is_pad[0] = True
    order = torch.empty(n + n_pad, dtype=torch.long)
    order[~is_pad] = torch.arange(n)
    order[is_pad] = n + torch.arange(n_pad)
    padded_mask = (~is_pad).expand(*positions.shape[:-2], n + n_pad)
    reference = fn(positions, values, torch.ones(positions.shape[:-1], dtype=torch.bool))
    padded = fn(torch.cat([positions, garbage_r], -2).index_select(-2, order),
                torch.cat([values, garbage_v], -2).index_select(-2, order), padded_mask)
    if per_point_output:
        assert_close(padded[..., ~is_pad, :], reference, atol, "padding invariance")
        if not bool((padded[..., is_pad, :] == 0).all()):
            raise AssertionError("padding: outputs at padded points are not zero")
    else:
        assert_close(padded, reference, atol, "padding invariance")
