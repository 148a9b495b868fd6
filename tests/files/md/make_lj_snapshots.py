"""Finite-temperature molecular-dynamics snapshots of Lennard-Jones fcc and hcp crystals and of the liquid (test inputs).

Real MD (thermal motion correlated between neighbours, not the independent
Gaussian noise of the training data), in Å, through ASE: argon-like LJ
(epsilon 0.0104 eV, sigma 3.4 Å, smooth cut-off 2.5 sigma), the perfect
crystal 2% expanded, Langevin dynamics at T* = kT/epsilon = 0.65 (LJ fcc
melts near 0.7 at low pressure), 5 fs steps, friction 0.02, 1500 steps; the
last frame is written as extended XYZ (with its periodic lattice), gzipped.
The liquid: the fcc crystal 5% expanded (density 0.86 sigma^-3), melted at
T* = 2.0 for 800 steps, then 700 steps at T* = 1.0 (above the LJ freezing
density there, ~0.94).

    python tests/files/md/make_lj_snapshots.py   # ~2-3 minutes on 2 cores; needs ase
"""
import gzip
import io
from pathlib import Path

import numpy as np
from ase import units
from ase.calculators.lj import LennardJones
from ase.io import write
from ase.lattice.cubic import FaceCenteredCubic
from ase.lattice.hexagonal import HexagonalClosedPacked
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

EPSILON, SIGMA, T_REDUCED, SEED = 0.0104, 3.4, 0.65, 0
T_LIQUID = 1.0
A_FCC = 2 ** (1 / 6) * SIGMA * np.sqrt(2) * 1.02  # cubic fcc lattice constant, 2% expanded
D_NN = A_FCC / np.sqrt(2)


def crystals():
    return {
        "fcc": FaceCenteredCubic(symbol="Ar", size=(6, 6, 6), latticeconstant=A_FCC),
        "hcp": HexagonalClosedPacked(symbol="Ar", size=(7, 4, 4), latticeconstant=(D_NN, D_NN * np.sqrt(8 / 3))),
    }


def main() -> None:
    out = Path(__file__).resolve().parent
    temperature = T_REDUCED * EPSILON / units.kB
    for name, atoms in crystals().items():
        rng = np.random.default_rng(SEED)
        atoms.calc = lj_calculator()
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
        Langevin(atoms, 5 * units.fs, temperature_K=temperature, friction=0.02, rng=rng).run(1500)
        save(atoms, out / f"lj_{name}_T{T_REDUCED}.extxyz.gz")
    save(liquid(), out / f"lj_liquid_T{T_LIQUID}.extxyz.gz")


def lj_calculator() -> LennardJones:
    return LennardJones(epsilon=EPSILON, sigma=SIGMA, rc=2.5 * SIGMA, smooth=True)


def liquid():
    atoms = FaceCenteredCubic(symbol="Ar", size=(6, 6, 6), latticeconstant=A_FCC / 1.02 * 1.05)
    atoms.calc = lj_calculator()
    rng = np.random.default_rng(SEED)
    hot = 2.0 * EPSILON / units.kB
    MaxwellBoltzmannDistribution(atoms, temperature_K=hot, rng=rng)
    dynamics = Langevin(atoms, 5 * units.fs, temperature_K=hot, friction=0.02, rng=rng)
    dynamics.run(800)
    dynamics.set_temperature(temperature_K=T_LIQUID * EPSILON / units.kB)
    dynamics.run(700)
    return atoms


def save(atoms, path: Path) -> None:
    atoms.calc = None
    text = io.StringIO()
    write(text, atoms, format="extxyz")
    path.write_bytes(gzip.compress(text.getvalue().encode(), mtime=0))
    print(path.name, len(atoms))


if __name__ == "__main__":
    main()
