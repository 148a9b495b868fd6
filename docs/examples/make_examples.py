"""Write the quick-start example: docs/examples/metals.gsd.

Three frames in Å, built with gaatool's own prototype cells and Gaussian
displacements of 0.1 Å (about what thermal motion gives near room temperature):
fcc copper (a = 3.615 Å), bcc iron (a = 2.866 Å) and hcp magnesium
(a = 3.209 Å, c/a = 1.624). A demo input, not a benchmark.

    python docs/examples/make_examples.py
"""
from pathlib import Path

import gsd.hoomd
import numpy as np

from gaatool.io.atomic import atomic_path
from gaatool.tasks.crystal.dataset import perfect_crystal
from gaatool.tasks.crystal.prototypes import prototype_cell

# (prototype, element, nearest-neighbour distance in Å)
METALS = [("cF4-Cu", "Cu", 3.615 / np.sqrt(2)), ("cI2-W", "Fe", 2.866 * np.sqrt(3) / 2), ("hP2-Mg", "Mg", 3.197)]
DISPLACEMENT_A = 0.1


def main(path: Path = Path(__file__).with_name("metals.gsd")) -> None:
    rng = np.random.default_rng(2026)
    with atomic_path(path, suffix=".gsd") as tmp, gsd.hoomd.open(str(tmp), "w") as trajectory:
        for prototype, element, d_nn in METALS:
            cell, _ = perfect_crystal(prototype_cell(prototype), 1000, 12)
            lattice = cell.lattice * d_nn
            positions = cell.positions * d_nn + rng.normal(0, DISPLACEMENT_A, cell.positions.shape)
            # HOOMD boxes are upper triangular: rotate the lattice into that orientation
            q, r = np.linalg.qr(lattice.T)
            signs = np.sign(np.diag(r))
            q, r = q * signs, (r.T * signs).T
            positions = positions @ q
            box = r.T  # rows are lattice vectors a1 = (Lx, 0, 0), ...
            lx, ly, lz = box[0, 0], box[1, 1], box[2, 2]
            xy, xz, yz = box[1, 0] / ly, box[2, 0] / lz, box[2, 1] / lz
            frac = positions @ np.linalg.inv(box)
            positions = ((frac % 1.0) - 0.5) @ box
            frame = gsd.hoomd.Frame()
            frame.particles.N = len(positions)
            frame.particles.position = positions.astype(np.float32)
            frame.particles.types = [element]
            frame.particles.typeid = np.zeros(len(positions), dtype=np.uint32)
            frame.configuration.box = [lx, ly, lz, xy, xz, yz]
            trajectory.append(frame)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
