"""Noise levels of the paper's crystal dataset as the reference code builds it, relative to the lattice.

The paper's dataset code (flowws-keras-geometry's PyriodicDataset) loops over
the noise levels 0.001, 0.05, 0.1 with one structure variable: each level
rescales the previous level's *noisy* replica so that its shortest pair
distance is 1, then adds its noise on top. So noise accumulates, and the last
two levels are scaled up first (a noisy replica's shortest distance is well
below the lattice's). This script repeats those steps on gaatool's replicas of
the 8 prototypes (at least 2048 particles) and prints each level's total noise
in units of the lattice's nearest-neighbour distance, the unit of
``gaatool data crystals --noise`` (where levels never accumulate).

    python docs/examples/reference_noise.py
"""
import numpy as np

from gaatool.data.neighbors import nearest_neighbors
from gaatool.tasks.crystal.dataset import add_noise, perfect_crystal
from gaatool.tasks.crystal.prototypes import prototype_cells

LEVELS = (0.001, 0.05, 0.1)


def effective_levels(cell, rng: np.random.Generator, min_particles: int = 2048) -> list[float]:
    supercell, _ = perfect_crystal(cell, min_particles, 12, max(LEVELS))
    positions, lattice = supercell.positions, supercell.lattice
    spacing, sigma = 1.0, 0.0  # lattice nearest-neighbour distance and accumulated noise, current units
    levels = []
    for noise in LEVELS:
        _, r_ij = nearest_neighbors(positions, lattice, 1)
        scale = 1.0 / float(np.linalg.norm(r_ij[:, 0], axis=-1).min())  # shortest pair distance -> 1
        positions, lattice = positions * scale, lattice * scale
        spacing, sigma = spacing * scale, sigma * scale
        positions = add_noise(positions, noise, rng)
        sigma = float(np.hypot(sigma, noise))
        levels.append(sigma / spacing)
    return levels


def main() -> None:
    rng = np.random.default_rng(0)
    print("prototype    " + "  ".join(f"level {noise:g}" for noise in LEVELS))
    table = []
    for cell in prototype_cells():
        levels = effective_levels(cell, rng)
        table.append(levels)
        print(f"{cell.name:12s} " + "  ".join(f"{level:9.4f}" for level in levels))
    print("mean         " + "  ".join(f"{level:9.4f}" for level in np.mean(table, axis=0)))


if __name__ == "__main__":
    main()
