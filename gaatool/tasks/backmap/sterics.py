"""Steric contacts between heavy atoms: what counts as a clash, and which pairs relaxation pushes apart.

A clash is a pair of heavy atoms of different residues that are not sequence
neighbours (peptide-bonded), whose van der Waals overlap ``r_a + r_b - d`` is
at least 0.6 Å, with a 0.4 Å allowance for N/O pairs (possible hydrogen bonds)
and disulfide S-S pairs ignored: the default criterion of ChimeraX ``clashes``,
on heavy atoms with Bondi radii (C 1.70, N 1.55, O 1.52, S 1.80).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ...errors import InputFileError

__all__ = ["BONDI_RADII", "CLASH_OVERLAP_A", "HBOND_ALLOWANCE_A", "MAX_CLOSE_PAIRS_PER_ATOM", "close_pairs",
           "count_clashes", "Contacts"]

BONDI_RADII = {"C": 1.70, "N": 1.55, "O": 1.52, "S": 1.80}
CLASH_OVERLAP_A = 0.6
HBOND_ALLOWANCE_A = 0.4
#: A heavy atom of a protein has about a dozen others within 3.6 Å; far more pairs than this per atom
#: mean atoms piled on top of each other, which the relaxation refuses (its memory grows with the pairs).
MAX_CLOSE_PAIRS_PER_ATOM = 64


def close_pairs(positions: np.ndarray, r_max: float, max_pairs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) at most ``r_max`` apart (a k-d tree in float64; ~4x faster than freud's
    cell search, which the relaxation calls at every step).

    With ``max_pairs``, more pairs than that raise :class:`~gaatool.errors.InputFileError` before any
    is listed (atoms crowded on top of each other would otherwise fill the memory).
    """
    from scipy.spatial import cKDTree

    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    tree = cKDTree(positions)
    if max_pairs is not None:
        count = (int(tree.count_neighbors(tree, r_max)) - len(positions)) // 2  # ordered pairs and selves
        if count > max_pairs:
            raise InputFileError(f"{count} pairs of atoms closer than {r_max:.1f} Å among {len(positions)} atoms: "
                                 "far too crowded for a protein (are beads on top of each other?)")
    pairs = tree.query_pairs(r_max, output_type="ndarray").astype(np.int64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def _radii(elements) -> np.ndarray:
    return np.array([BONDI_RADII.get(str(e), 1.70) for e in np.asarray(elements)], dtype=np.float64)


def count_clashes(positions: np.ndarray, elements: np.ndarray, residues: np.ndarray,
                  excluded: np.ndarray, disulfide_sulfur: np.ndarray | None = None) -> int:
    """Number of clashing heavy-atom pairs (see the module docstring).

    Parameters
    ----------
    positions : (N, 3) float, Å
    elements : (N,) str, C/N/O/S
    residues : (N,) int, residue index of each atom (0..R-1)
    excluded : (R, R) bool
        Residue pairs never counted (the same residue is always excluded).
    disulfide_sulfur : (N,) bool, optional
        CYS SG atoms; pairs of them are ignored.

    >>> pos = np.array([[0.0, 0, 0], [2.7, 0, 0], [6.0, 0, 0]])  # C-C overlap 0.7 Å: one clash
    >>> count_clashes(pos, np.array(["C", "C", "O"]), np.array([0, 1, 2]), np.zeros((3, 3), bool))
    1
    """
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) < 2:
        return 0
    radii = _radii(elements)
    polar = np.isin(elements, ["N", "O"])
    sulfur = np.zeros(len(positions), bool) if disulfide_sulfur is None else np.asarray(disulfide_sulfur, bool)
    residues = np.asarray(residues)
    # no pair farther apart than the largest radius sum minus the overlap can clash
    r_max = 2 * max(BONDI_RADII.values()) - CLASH_OVERLAP_A + 0.01
    i, j = close_pairs(positions, r_max)
    distance = np.linalg.norm(positions[i] - positions[j], axis=-1)
    overlap = radii[i] + radii[j] - distance - HBOND_ALLOWANCE_A * (polar[i] & polar[j])
    clash = (overlap >= CLASH_OVERLAP_A) & (residues[i] != residues[j])
    clash &= ~excluded[residues[i], residues[j]] & ~(sulfur[i] & sulfur[j])
    return int(clash.sum())


@dataclass(frozen=True)
class Contacts:
    """The atoms that may clash with each other, for pushing them apart (:mod:`.relax`).

    The pairs the clash criterion counts (module docstring): atoms of residues in
    the same group (entry or model) that are neither the same residue nor
    peptide-bonded (``previous``), except disulfide S-S pairs and the atom pairs in
    ``exempt`` (e.g. CB-SG across a disulfide bond, held at 3.0 Å by the relaxation).
    """

    radii: np.ndarray  # (N,) Å
    polar: np.ndarray  # (N,) bool, N or O
    sulfur: np.ndarray  # (N,) bool, CYS SG
    residues: np.ndarray  # (N,) residue index of each atom
    previous: np.ndarray  # (R,) peptide-bonded predecessor of each residue, -1 for none
    groups: np.ndarray  # (R,) residues of different groups never meet
    exempt: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # (K, 2) atom pairs

    def exempting(self, pairs) -> "Contacts":
        """The same contacts without the atom pairs ``pairs`` (K, 2)."""
        return replace(self, exempt=np.asarray(pairs, dtype=np.int64).reshape(-1, 2))

    @classmethod
    def of(cls, elements, atom_names, atom_residues, previous, groups=None) -> "Contacts":
        """From per-atom elements and names, each atom's residue, and per-residue links (and groups)."""
        previous = np.asarray(previous, dtype=np.int64)
        groups = np.zeros(len(previous), np.int64) if groups is None else np.asarray(groups)
        elements = np.asarray(elements, dtype=str)
        return cls(_radii(elements), np.isin(elements, ["N", "O"]), np.asarray(atom_names, dtype=str) == "SG",
                   np.asarray(atom_residues, dtype=np.int64), previous, groups)

    def overlapping(self, positions: np.ndarray, overlap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs (i, j) of contact atoms closer than their target distance, and that target:
        ``r_i + r_j - overlap`` (less the H-bond allowance for N/O pairs). Atoms piled on top of each
        other raise :class:`~gaatool.errors.InputFileError` (:data:`MAX_CLOSE_PAIRS_PER_ATOM`)."""
        r_max = 2 * float(self.radii.max(initial=0.0)) - overlap
        i, j = close_pairs(positions, r_max, MAX_CLOSE_PAIRS_PER_ATOM * len(positions))
        ri, rj = self.residues[i], self.residues[j]
        keep = (ri != rj) & (self.previous[ri] != rj) & (self.previous[rj] != ri)
        keep &= (self.groups[ri] == self.groups[rj]) & ~(self.sulfur[i] & self.sulfur[j])
        if len(self.exempt):
            n = len(self.residues)
            exempt = self.exempt.min(axis=1) * n + self.exempt.max(axis=1)
            keep &= ~np.isin(np.minimum(i, j) * n + np.maximum(i, j), exempt)
        i, j = i[keep], j[keep]
        target = self.radii[i] + self.radii[j] - overlap - HBOND_ALLOWANCE_A * (self.polar[i] & self.polar[j])
        distance = np.linalg.norm(positions[i] - positions[j], axis=-1)
        close = distance < target
        return i[close], j[close], target[close]
