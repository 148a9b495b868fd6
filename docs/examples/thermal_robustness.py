"""The shipped crystal model on correlated thermal motion, the figures of docs/crystal.md ("Thermal motion").

Real finite-temperature snapshots move neighbouring atoms together (phonons); the training replicas move
every atom independently. Each prototype, replicated to about 2000-3700 atoms, is displaced by a sample
of a harmonic crystal's Boltzmann distribution (springs to every neighbour within 1.2 nearest-neighbour
distances d, stiffness 1 along the bond and 0.3 across it, a weak on-site term 0.02 against the free
translations), drawn exactly through the supercell's commensurate wave vectors, and scaled to a 3D RMS
displacement of 3-15% of d (Lindemann's melting criterion is about 10-15%); beside it, independent
Gaussian displacements of the same RMS. Lengths in the prototypes' own Å; the fraction of atoms labelled
right by ``gaatool identify``'s default (one round of neighbour averaging) and by the model alone
(``--smooth 0``), as a Markdown table. A few minutes on 2 cores:

    python docs/examples/thermal_robustness.py
"""
import numpy as np

from gaatool.io.frame import Frame
from gaatool.tasks.crystal.identify import Identifier, default_crystal_checkpoint
from gaatool.tasks.crystal.prototypes import PROTOTYPE_NAMES, prototype_cell

#: Unit cells per lattice vector: about 2000-3700 atoms each.
REPLICAS = {"cF4-Cu": (8, 8, 8), "hP2-Mg": (11, 11, 9), "cI2-W": (10, 10, 10), "cP2-CsCl": (10, 10, 10),
            "cF8-ZnS": (7, 7, 7), "cF8-C": (7, 7, 7), "cP46-Si": (4, 4, 4), "cF136-Si": (3, 3, 3)}
LEVELS = (0.03, 0.06, 0.09, 0.12, 0.15)  # 3D RMS displacement / nearest-neighbour distance
CUTOFF, ALONG, ACROSS, ONSITE = 1.2, 1.0, 0.3, 0.02


def supercell(cell, counts):
    """Positions (cells first, then sites: the order of the harmonic sample) and the supercell lattice."""
    grid = np.stack(np.meshgrid(*[np.arange(c) for c in counts], indexing="ij"), -1).reshape(-1, 1, 3)
    positions = ((grid + cell.fractional[None]) @ cell.lattice).reshape(-1, 3)
    return positions, np.asarray(counts, dtype=float)[:, None] * cell.lattice, np.tile(cell.types, len(grid))


def harmonic_displacements(cell, counts, rms, seed):
    """u ~ N(0, K^-1) of the spring network on the supercell, its RMS |u| scaled to rms * d."""
    d = cell.nearest_neighbor_distance()
    sites, lattice = cell.n_sites, cell.lattice
    origin = cell.fractional @ lattice
    shifts = np.stack(np.meshgrid(*[np.arange(-3, 4)] * 3, indexing="ij"), -1).reshape(-1, 3)
    counts = np.asarray(counts)
    wave = np.stack(np.meshgrid(*[np.arange(c) for c in counts], indexing="ij"), -1).reshape(-1, 3)
    stiffness = np.zeros((len(wave), 3 * sites, 3 * sites), complex)
    for a in range(sites):
        stiffness[:, 3 * a:3 * a + 3, 3 * a:3 * a + 3] += ONSITE * np.eye(3)
        for shift in shifts:
            bonds = origin + shift @ lattice - origin[a]
            lengths = np.linalg.norm(bonds, axis=1)
            for b in np.flatnonzero((lengths > 1e-8) & (lengths < CUTOFF * d)):
                e = bonds[b] / lengths[b]
                spring = ALONG * np.outer(e, e) + ACROSS * (np.eye(3) - np.outer(e, e))
                phase = np.exp(2j * np.pi * (wave @ (shift / counts)))
                stiffness[:, 3 * a:3 * a + 3, 3 * a:3 * a + 3] += spring
                stiffness[:, 3 * a:3 * a + 3, 3 * b:3 * b + 3] -= spring[None] * phase[:, None, None]
    values, vectors = np.linalg.eigh(stiffness)
    root = np.einsum("kij,kj,klj->kil", vectors, values ** -0.5, vectors.conj())  # K^-1/2 per wave vector
    noise = np.random.default_rng(seed).standard_normal((*counts, 3 * sites))
    modes = np.einsum("kij,kj->ki", root, np.fft.fftn(noise, axes=(0, 1, 2)).reshape(len(wave), -1))
    u = np.fft.ifftn(modes.reshape(*counts, 3 * sites), axes=(0, 1, 2)).real.reshape(-1, 3)
    u -= u.mean(axis=0)
    return u * rms * d / np.sqrt((u ** 2).sum(axis=1).mean())


def main() -> None:
    identifiers = {smooth: Identifier(default_crystal_checkpoint(), device="cpu", smooth=smooth) for smooth in (1, 0)}
    names = identifiers[1].class_names
    print("| structure | atoms | " + " | ".join(f"{kind} {int(round(100 * level))}%" for kind in ("harmonic", "Gaussian")
                                             for level in LEVELS) + " |")
    print("|---|---|" + "---|" * (2 * len(LEVELS)))
    for name in PROTOTYPE_NAMES:
        cell = prototype_cell(name)
        positions, lattice, types = supercell(cell, REPLICAS[name])
        d = cell.nearest_neighbor_distance()
        cells = []
        for kind in ("harmonic", "Gaussian"):
            for k, level in enumerate(LEVELS):
                rng = np.random.default_rng(100 + k)
                u = (harmonic_displacements(cell, REPLICAS[name], level, seed=k) if kind == "harmonic"
                     else rng.standard_normal(positions.shape) * level * d / np.sqrt(3))
                frame = Frame(positions + u, lattice, types, list(cell.type_names))
                right = [np.mean(np.array(names)[identifiers[smooth].label(frame).labels] == name)
                         for smooth in (1, 0)]
                cells.append(f"{100 * right[0]:.1f} / {100 * right[1]:.1f}")
        print(f"| {name} | {len(positions)} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
