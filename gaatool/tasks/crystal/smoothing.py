"""Neighbour averaging of per-particle class probabilities (identify's --smooth, evaluate's --smooth).

Thermal displacements make a per-environment classifier's errors mostly
independent from particle to particle, so averaging each particle's class
probabilities with those of the neighbours its environment was cut from
removes most of them, as Lechner and Dellago's averaged order parameters do
for Steinhardt's. One round keeps a single hcp-like plane in fcc; two do not
(tests/test_pretrained.py).
"""
from __future__ import annotations

import numpy as np

from ...errors import ConfigError

__all__ = ["average_over_neighbors", "check_rounds"]


def check_rounds(rounds) -> int:
    """``rounds`` as an int; ConfigError unless it is a whole number >= 0."""
    if isinstance(rounds, bool) or not isinstance(rounds, (int, float, np.integer)) or int(rounds) != rounds \
            or rounds < 0:
        raise ConfigError(f"--smooth must be a whole number of rounds, 0 or more (got {rounds})")
    return int(rounds)


def average_over_neighbors(probabilities: np.ndarray, neighbors: np.ndarray, rounds: int,
                           chunk_size: int = 65536) -> np.ndarray:
    """``rounds`` times: each row replaced by the mean of itself and its neighbours' rows.

    probabilities (N, C), neighbors (N, K) row indices -> (N, C) float32, in
    pieces of ``chunk_size`` rows (bounded scratch memory).

    >>> average_over_neighbors(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), np.array([[1], [2], [1]]), 1).tolist()
    [[0.5, 0.5], [0.0, 1.0], [0.0, 1.0]]
    """
    current = np.asarray(probabilities, dtype=np.float32)
    width = neighbors.shape[1] + 1
    for _ in range(rounds):
        averaged = np.empty_like(current)
        for start in range(0, len(current), chunk_size):
            stop = min(start + chunk_size, len(current))
            averaged[start:stop] = (current[start:stop] + current[neighbors[start:stop]].sum(axis=1)) / width
        current = averaged
    return current
