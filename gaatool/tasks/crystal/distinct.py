"""Whether the classes of a crystal dataset can be told apart at all.

Two classes whose perfect crystals have the same neighbour environments (up to rotation and the
order of the neighbours) cannot be separated by any model of those environments: a CIF of fcc copper
added beside the cF4-Cu prototype makes two labels for one structure. Environments are compared by
rotation- and order-free fingerprints within a tolerance, so slightly different lattice parameters
of the same structure still count as the same.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ...data.neighbors import nearest_neighbors
from ...errors import ConfigError
from .prototypes import UnitCell

__all__ = ["SAME_ENVIRONMENT_TOLERANCE", "environment_fingerprints", "same_environments", "refuse_indistinguishable"]

# Largest difference (distances in nearest-neighbour units, cosines) between two environments taken as one.
SAME_ENVIRONMENT_TOLERANCE = 0.01


def environment_fingerprints(cell: UnitCell, neighbors: int) -> list[np.ndarray]:
    """The distinct environments of a perfect crystal (any cell of it: the unit cell is enough, its
    neighbours come from periodic copies) in unit nearest-neighbour distance, as rotation- and order-free
    rows: sorted distances, sorted cosines between bonds and sorted type pairs of the neighbours up to the
    ``neighbors``-th one's shell, all of that shell included (which of a shell's equidistant points a
    k-nearest search keeps is arbitrary)."""
    cell = cell.with_unit_nearest_neighbor()
    index, r_ij = nearest_neighbors(cell.positions, cell.lattice, 2 * neighbors)
    distances = np.linalg.norm(r_ij, axis=-1)
    n_types = int(cell.types.max()) + 1
    pairs = cell.types[:, None] * n_types + cell.types[index]
    rows = {}
    for point in range(cell.n_sites):
        shell = distances[point] <= distances[point, neighbors - 1] + 1e-6
        unit = r_ij[point, shell] / distances[point, shell, None]
        cosines = (unit @ unit.T)[np.triu_indices(int(shell.sum()), 1)]
        row = np.concatenate([distances[point, shell], np.sort(cosines), np.sort(pairs[point, shell])])
        rows.setdefault((np.round(row, 6) + 0.0).tobytes(), row)  # + 0.0: -0.0 is 0.0
    return list(rows.values())


def same_environments(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
    """Whether every environment of one crystal is (within the tolerance) one of the other's, both ways."""
    def covered(rows, others) -> bool:
        return all(any(len(o) == len(row) and np.abs(o - row).max() <= SAME_ENVIRONMENT_TOLERANCE for o in others)
                   for row in rows)
    return covered(a, b) and covered(b, a)


def refuse_indistinguishable(crystals: Sequence[UnitCell], neighbors: int) -> None:
    """Two classes whose perfect crystals (given by their unit cells) have the same environments cannot be
    told apart by any model (an added CIF of fcc copper beside cF4-Cu): one error rather than a model that
    guesses between them."""
    fingerprints = [environment_fingerprints(c, neighbors) for c in crystals]
    for later in range(len(crystals)):
        for earlier in range(later):
            if same_environments(fingerprints[earlier], fingerprints[later]):
                raise ConfigError(f"classes {crystals[earlier].name!r} and {crystals[later].name!r} have the same "
                                  f"{neighbors}-neighbour environments (the same structure twice?); no model can "
                                  "tell them apart: leave one out")
