"""Seeded, reproducible splits and random streams.

Everything random in dataset building draws from a generator derived from the
user's ``--seed`` and a tuple of *names* (split, class, noise level, ...), via
:class:`numpy.random.SeedSequence` spawn keys. A stream therefore depends only
on its own names, not on how many other streams were drawn before it, so
adding a class or a replica leaves the existing ones unchanged.

Two ways of splitting:

* :func:`replica_seeds` gives each split its own independent seeds, for tasks
  whose train/validation/test sets are separately generated replicas
  (crystal structures);
* :func:`split_indices` partitions ``n`` existing samples (frames of a
  trajectory) by a seeded permutation.
"""
from __future__ import annotations

import zlib
from typing import Mapping

import numpy as np

from ..errors import ConfigError

__all__ = ["SPLIT_NAMES", "derive_rng", "derive_seed", "replica_seeds", "split_indices"]

#: Split names used by every gaatool dataset, in this order.
SPLIT_NAMES = ("train", "val", "test")


def _key(part: str | int) -> int:
    if isinstance(part, (bool, np.bool_)):
        raise TypeError("seed keys must be str or int")
    if isinstance(part, (int, np.integer)):
        if part < 0:
            raise ValueError(f"integer seed keys must be non-negative, got {part}")
        return int(part)
    # crc32 is stable across runs and platforms, unlike hash().
    return zlib.crc32(str(part).encode("utf-8"))


def _sequence(seed: int, keys) -> np.random.SeedSequence:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.SeedSequence(int(seed), spawn_key=tuple(_key(k) for k in keys))


def derive_rng(seed: int, *keys: str | int) -> np.random.Generator:
    """An independent generator for the stream named ``keys`` under ``seed``.

    >>> a = derive_rng(0, "train", "cF4-Cu").normal(size=2)
    >>> b = derive_rng(0, "train", "cF4-Cu").normal(size=2)
    >>> bool(np.all(a == b)), bool(np.any(a != derive_rng(0, "val", "cF4-Cu").normal(size=2)))
    (True, True)
    """
    return np.random.default_rng(_sequence(seed, keys))


def derive_seed(seed: int, *keys: str | int) -> int:
    """An integer seed (0 <= s < 2**63) for the stream named ``keys`` under ``seed``.

    >>> derive_seed(0, "train", 0) == derive_seed(0, "train", 0) != derive_seed(0, "test", 0)
    True
    """
    return int(_sequence(seed, keys).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def replica_seeds(seed: int, replicas: Mapping[str, int]) -> dict[str, list[int]]:
    """One independent seed per replica of every split.

    Parameters
    ----------
    seed : int
        The user's seed.
    replicas : mapping of str to int
        Number of replicas per split name, e.g. ``{"train": 1, "val": 1, "test": 1}``.

    Returns
    -------
    dict of str to list of int
        ``seeds[split][r]`` for replica ``r``; all distinct.

    >>> s = replica_seeds(7, {"train": 2, "test": 1})
    >>> len(s["train"]), len(set(s["train"] + s["test"]))
    (2, 3)
    """
    seeds: dict[str, list[int]] = {}
    for split, count in replicas.items():
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ConfigError(f"replicas for split {split!r} must be a non-negative integer, got {count!r}")
        seeds[split] = [derive_seed(seed, "replica", split, r) for r in range(int(count))]
    return seeds


def split_indices(n: int, fractions: Mapping[str, float], seed: int) -> dict[str, np.ndarray]:
    """Partition ``range(n)`` into named, disjoint, seeded subsets.

    Parameters
    ----------
    n : int
        Number of samples.
    fractions : mapping of str to float
        Fraction of the samples per split, each in (0, 1], summing to at most 1
        (what is left over is unused). Counts are ``floor(fraction * n)`` with
        the remaining samples handed out by largest remainder, so fractions
        summing to 1 use every sample.
    seed : int
        The user's seed.

    Returns
    -------
    dict of str to numpy.ndarray (n_split,) int64
        Sorted sample indices of each split.

    >>> parts = split_indices(10, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    >>> [len(parts[s]) for s in ("train", "val", "test")]
    [8, 1, 1]
    """
    n = int(n)
    if n < 0:
        raise ConfigError(f"cannot split {n} samples")
    values = {name: float(f) for name, f in fractions.items()}
    for name, f in values.items():
        if not (0.0 < f <= 1.0):
            raise ConfigError(f"fraction of split {name!r} must be in (0, 1], got {f}")
    total = sum(values.values())
    if total > 1.0 + 1e-9:
        raise ConfigError(f"split fractions sum to {total:g}; they must sum to at most 1")
    exact = {name: f * n for name, f in values.items()}
    counts = {name: int(np.floor(x + 1e-9)) for name, x in exact.items()}
    budget = min(n, int(np.floor(total * n + 1e-9))) - sum(counts.values())
    by_remainder = sorted(values, key=lambda name: (-(exact[name] - counts[name]), list(values).index(name)))
    for name in by_remainder[: max(budget, 0)]:
        counts[name] += 1
    order = derive_rng(seed, "split_indices", n).permutation(n)
    parts: dict[str, np.ndarray] = {}
    start = 0
    for name in values:
        parts[name] = np.sort(order[start : start + counts[name]]).astype(np.int64)
        start += counts[name]
    return parts
