"""Steinhardt-type spherical-harmonic features: the paper's baseline (Appendix B).

Following Spellings & Glotzer (AIChE J. 64, 2198 (2018)) as adapted in the
paper, each particle is described by the rotation-invariant Steinhardt
magnitudes

    q_l(i) = sqrt(4 pi / (2l + 1) * sum_m |1/N_b sum_j Y_lm(r_ij)|^2)

over neighbourhoods of varying size: the k nearest neighbours for every k in
``neighbors`` (default 4, 6, 8, 10, 12) and every l in ``l_values`` (default
2..12). To carry particle types, the k nearest neighbours (chosen regardless of
type) are split into two sets, bonds to *like*-typed and to *unlike*-typed
particles, each giving its own q_l. An empty set (e.g. the unlike set of a
one-component crystal) gives 0.

Feature order: set (like, unlike), then k, then l; see
:func:`steinhardt_feature_names`.

Two implementations with the same results: ``method="freud"`` calls
``freud.order.Steinhardt`` once per neighbourhood (the reference), and the
default ``method="numpy"`` evaluates each bond's spherical harmonics once and
sums them cumulatively over the sorted neighbours, which is about 10 times
faster; the tests check one against the other.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ...data.neighbors import nearest_neighbors
from ...errors import ConfigError

__all__ = [
    "DEFAULT_NEIGHBORS",
    "DEFAULT_L_VALUES",
    "steinhardt_features",
    "steinhardt_features_from_bonds",
    "steinhardt_feature_names",
    "METHODS",
]

DEFAULT_NEIGHBORS = (4, 6, 8, 10, 12)
DEFAULT_L_VALUES = tuple(range(2, 13))
_SETS = ("like", "unlike")
#: Implementations of the same features (see the module docstring).
METHODS = ("numpy", "freud")


def _check(neighbors: Sequence[int], l_values: Sequence[int], available: int | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    ks = tuple(int(k) for k in neighbors)
    ls = tuple(int(l) for l in l_values)
    if not ks or min(ks) < 1:
        raise ConfigError(f"neighbourhood sizes must be positive, got {list(ks)}")
    if not ls or min(ls) < 0:
        raise ConfigError(f"spherical harmonic orders must be non-negative, got {list(ls)}")
    if available is not None and max(ks) > available:
        raise ConfigError(f"neighbourhood size {max(ks)} exceeds the {available} neighbours given")
    return ks, ls


def steinhardt_feature_names(neighbors: Sequence[int] = DEFAULT_NEIGHBORS, l_values: Sequence[int] = DEFAULT_L_VALUES) -> list[str]:
    """Names of the feature columns, e.g. ``"like_k4_q2"``.

    >>> steinhardt_feature_names((4,), (2, 4))
    ['like_k4_q2', 'like_k4_q4', 'unlike_k4_q2', 'unlike_k4_q4']
    """
    ks, ls = _check(neighbors, l_values)
    return [f"{s}_k{k}_q{l}" for s in _SETS for k in ks for l in ls]


def _ql(r_ij: np.ndarray, mask: np.ndarray, ls: tuple[int, ...]) -> np.ndarray:
    """q_l over the masked bonds of each centre: r_ij (N, K, 3), mask (N, K) -> (N, L)."""
    import freud

    n, k = mask.shape
    centre, slot = np.nonzero(mask)
    if centre.size == 0:
        return np.zeros((n, len(ls)))
    # A synthetic non-periodic system: the N centres at the origin, followed by
    # one point per bond at r_ij, so freud sees exactly the given bond vectors
    # whatever the original box was.
    bonds = r_ij[centre, slot]
    points = np.concatenate([np.zeros((n, 3)), bonds]).astype(np.float32)
    length = 4.0 * float(np.abs(bonds).max()) + 2.0
    box = freud.box.Box.cube(length)
    point_index = n + np.arange(centre.size)
    nlist = freud.locality.NeighborList.from_arrays(
        len(points), len(points), centre, point_index, bonds.astype(np.float32)
    )
    order = freud.order.Steinhardt(l=list(ls))
    order.compute((box, points), neighbors=nlist)
    values = np.asarray(order.particle_order, dtype=np.float64).reshape(len(points), len(ls))[:n]
    return np.nan_to_num(values, nan=0.0)


def _harmonics(r_ij: np.ndarray, lmax: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal Y_lm (m >= 0) of every bond direction.

    r_ij (..., 3) -> Y (..., C) complex128 with C = (lmax + 1)(lmax + 2) / 2
    columns ordered (l, m) = (0, 0), (1, 0), (1, 1), (2, 0), ...; plus the l
    and m of each column. Negative m are not needed: |q_l,-m| = |q_lm|.
    """
    norm = np.linalg.norm(r_ij, axis=-1, keepdims=True)
    unit = r_ij / np.where(norm > 0, norm, 1.0)
    x, y, z = unit[..., 0], unit[..., 1], unit[..., 2]
    xy = x + 1j * y
    # Normalised associated Legendre functions divided by sin^m(theta), so
    # that Y_lm = P[l][m] * (x + iy)^m needs no angles and no division.
    p: dict[tuple[int, int], np.ndarray] = {}
    c_mm = 1.0 / np.sqrt(4.0 * np.pi)
    for m in range(lmax + 1):
        if m > 0:
            c_mm *= -np.sqrt((2.0 * m + 1.0) / (2.0 * m))  # Condon-Shortley phase, as scipy
        p[m, m] = np.full(z.shape, c_mm)
        if m + 1 <= lmax:
            p[m + 1, m] = np.sqrt(2.0 * m + 3.0) * z * p[m, m]
        for l in range(m + 2, lmax + 1):
            a = np.sqrt((4.0 * l * l - 1.0) / (l * l - m * m))
            b = np.sqrt(((l - 1.0) ** 2 - m * m) / (4.0 * (l - 1.0) ** 2 - 1.0))
            p[l, m] = a * (z * p[l - 1, m] - b * p[l - 2, m])
    powers = [np.ones_like(xy)]
    for _ in range(lmax):
        powers.append(powers[-1] * xy)
    ls, ms, columns = [], [], []
    for l in range(lmax + 1):
        for m in range(l + 1):
            ls.append(l)
            ms.append(m)
            columns.append(p[l, m] * powers[m])
    return np.stack(columns, axis=-1), np.array(ls), np.array(ms)


def _features_numpy(r_ij: np.ndarray, same_type: np.ndarray, ks, ls) -> np.ndarray:
    # Neighbour axis first, so that each step below touches one contiguous block.
    harmonics, col_l, col_m = _harmonics(np.ascontiguousarray(r_ij.transpose(1, 0, 2)), max(ls))  # (K, N, C)
    # q_l^2 = 4 pi / (2l + 1) * sum_m |q_lm|^2, with m and -m contributing
    # equally, as one matrix product over the (l, m >= 0) columns.
    to_ql2 = np.zeros((len(col_l), len(ls)))
    for i, l in enumerate(ls):
        to_ql2[col_l == l, i] = np.where(col_m[col_l == l] == 0, 1.0, 2.0) * 4.0 * np.pi / (2 * l + 1)
    n = r_ij.shape[0]
    blocks: dict[tuple[bool, int], np.ndarray] = {}
    for wanted in (True, False):
        mask = (same_type == wanted).T.astype(np.float64)  # (K, N)
        # Running sums over the distance-sorted neighbours, read off at each k.
        running = np.zeros((n, harmonics.shape[-1]), dtype=np.complex128)
        count = np.zeros(n)
        for j in range(max(ks)):
            running += harmonics[j] * mask[j][:, None]
            count += mask[j]
            if j + 1 in ks:
                qlm = running / np.where(count > 0, count, 1.0)[:, None]
                power = qlm.real**2 + qlm.imag**2
                blocks[wanted, j + 1] = np.sqrt(np.maximum(power @ to_ql2, 0.0)) * (count > 0)[:, None]
    return np.concatenate([blocks[wanted, k] for wanted in (True, False) for k in ks], axis=1)


def _features_freud(r_ij: np.ndarray, same_type: np.ndarray, ks, ls) -> np.ndarray:
    columns = []
    for wanted in (True, False):
        for k in ks:
            mask = np.zeros_like(same_type)
            mask[:, :k] = same_type[:, :k] == wanted
            columns.append(_ql(r_ij, mask, ls))
    return np.concatenate(columns, axis=1)


def steinhardt_features_from_bonds(
    r_ij,
    same_type,
    neighbors: Sequence[int] = DEFAULT_NEIGHBORS,
    l_values: Sequence[int] = DEFAULT_L_VALUES,
    method: str = "numpy",
) -> np.ndarray:
    """Features from precomputed, distance-sorted bonds.

    Parameters
    ----------
    r_ij : array-like (N, K, 3)
        Bond vectors to the K nearest neighbours, nearest first (any unit).
    same_type : array-like (N, K) bool
        True where neighbour j has the type of centre i.
    neighbors, l_values : sequences of int
        Neighbourhood sizes (each <= K) and spherical harmonic orders.
    method : {"numpy", "freud"}
        Implementation (same results to float32 precision).

    Returns
    -------
    numpy.ndarray (N, F) float32
        ``F = 2 * len(neighbors) * len(l_values)``.
    """
    r_ij = np.asarray(r_ij, dtype=np.float64)
    same_type = np.asarray(same_type, dtype=bool)
    if r_ij.ndim != 3 or r_ij.shape[2] != 3 or same_type.shape != r_ij.shape[:2]:
        raise ValueError(f"r_ij {r_ij.shape} and same_type {same_type.shape} must be (N, K, 3) and (N, K)")
    ks, ls = _check(neighbors, l_values, available=r_ij.shape[1])
    if method == "numpy":
        features = _features_numpy(r_ij, same_type, ks, ls)
    elif method == "freud":
        features = _features_freud(r_ij, same_type, ks, ls)
    else:
        raise ConfigError(f"unknown Steinhardt method {method!r}; choose from {', '.join(METHODS)}")
    return features.astype(np.float32)


def steinhardt_features(
    positions,
    box,
    types,
    neighbors: Sequence[int] = DEFAULT_NEIGHBORS,
    l_values: Sequence[int] = DEFAULT_L_VALUES,
    method: str = "numpy",
) -> np.ndarray:
    """Like/unlike-type Steinhardt q_l of varying neighbourhood sizes for every particle.

    Parameters
    ----------
    positions : array-like (N, 3)
        Cartesian coordinates (any length unit: q_l are scale invariant).
    box : array-like (3, 3) or None
        Lattice rows of the periodic box; None for a non-periodic system.
    types : array-like (N,) int
        Particle types.
    neighbors : sequence of int
        Neighbourhood sizes k (k nearest neighbours regardless of type).
    l_values : sequence of int
        Spherical harmonic orders l.
    method : {"numpy", "freud"}
        Implementation (same results to float32 precision).

    Returns
    -------
    numpy.ndarray (N, F) float32
        ``F = 2 * len(neighbors) * len(l_values)``, ordered as
        :func:`steinhardt_feature_names`. Rotation invariant.

    >>> import numpy as np
    >>> fcc = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]]) * 2 ** 0.5
    >>> pos = np.concatenate([fcc + 2 ** 0.5 * np.array(s) for s in np.ndindex(3, 3, 3)])
    >>> f = steinhardt_features(pos, 3 * 2 ** 0.5 * np.eye(3), np.zeros(len(pos), int), (12,), (6,))
    >>> round(float(f[0, 0]), 4), float(f[0, 1])
    (0.5745, 0.0)
    """
    ks, _ = _check(neighbors, l_values)
    types = np.asarray(types)
    index, r_ij = nearest_neighbors(positions, box, max(ks))
    same_type = types[index] == types[:, None]
    return steinhardt_features_from_bonds(r_ij, same_type, ks, l_values, method)
