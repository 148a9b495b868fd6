"""Ideal covalent geometry of protein heavy atoms, and which atoms it concerns.

What the relaxation (:mod:`.relax`) holds, as index arrays over a structure's
atoms: bonds, 1-3 (angle) and 1-4 (trans peptide) distances (:func:`bond_graph`),
chiral centres (:func:`chiral_graph`), planar peptide groups
(:func:`planar_graph`) and disulfide bonds (:func:`disulfide_graph`). The ideal
values are medians over real X-ray structures in ``bond_templates.json`` (made
by :mod:`.make_bond_templates`).
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np

from .residues import RESIDUE_NAMES

__all__ = ["DISULFIDE_DETECT_A", "bond_templates", "bond_graph", "chiral_graph", "chiral_volumes", "disulfide_graph",
           "planar_graph"]

#: SG atoms of two cysteines closer than this (Å) in the network's prediction are bonded (2.02 Å). On the
#: validation entries of the centroid model 3 of their 5 disulfides form and no spurious one, the cysteines
#: around their zinc ions included (``gaatool evaluate backmap pretrained/backmap.safetensors backmap_pdb.npz
#: --split val --relax --json``, ``disulfides``), against 2 in the network's output and 0 relaxed without
#: these bonds (``python -m gaatool.tasks.backmap.relax_sweep ... --restraints 0.02 --no-disulfides``).
DISULFIDE_DETECT_A = 3.0


@lru_cache(maxsize=1)
def bond_templates() -> dict:
    """The contents of ``bond_templates.json``: ``residues`` (name -> [[a, b, L], ...]), ``terminal``, ``peptide``,
    ``angles``, ``terminal_angles``, ``peptide_angles``, ``peptide_trans``, ``chirality``, ``disulfide``."""
    text = resources.files(__package__).joinpath("bond_templates.json").read_text()
    return json.loads(text)


def _atom_index(n_residues: int, atom_residues, atom_names):
    """index(rows, name): the atom of that name in each residue of ``rows`` (-1 where there is none)."""
    atom_residues = np.asarray(atom_residues, dtype=np.int64)
    atom_names = np.asarray(atom_names, dtype=str)
    vocabulary, codes = np.unique(atom_names, return_inverse=True)
    code_of = {str(name): k for k, name in enumerate(vocabulary)}
    table = np.full((n_residues, len(vocabulary) + 1), -1, dtype=np.int64)  # last column: absent atom
    table[atom_residues, codes] = np.arange(len(atom_names))
    return lambda rows, name: table[rows, code_of.get(name, len(vocabulary))]


def bond_graph(residue_names, atom_residues, atom_names, previous,
               kind: str = "bonds") -> tuple[np.ndarray, np.ndarray]:
    """Bonded atom pairs (B, 2) and their ideal lengths (B,) in Å (``kind`` "bonds"); for "angles" the 1-3
    pairs (two atoms bonded to a common one) and their ideal distances, which hold the bond angles; for
    "trans" the 1-4 pairs CA-CA and O-CA across each peptide bond into a residue other than proline, which
    hold it planar and trans (X-Pro bonds may be cis).

    Parameters
    ----------
    residue_names : (R,) str, standard residue names
    atom_residues : (N,) int, residue index of each atom
    atom_names : (N,) str
    previous : (R,) int
        Residue peptide-bonded to each residue's N (its C), -1 for none.

    Pairs whose atoms are missing are left out.
    """
    residue_names = np.asarray(residue_names, dtype=str)
    previous = np.asarray(previous, dtype=np.int64)
    atom_index = _atom_index(len(residue_names), atom_residues, atom_names)
    templates = bond_templates()
    pairs, lengths = [], []

    def add(rows_a, rows_b, name_a, name_b, length):
        ia, ib = atom_index(rows_a, name_a), atom_index(rows_b, name_b)
        keep = (ia >= 0) & (ib >= 0)
        pairs.append(np.stack([ia[keep], ib[keep]], axis=1))
        lengths.append(np.full(int(keep.sum()), float(length)))

    residues, terminal, peptide = {"bonds": ("residues", "terminal", "peptide"),
                                   "angles": ("angles", "terminal_angles", "peptide_angles"),
                                   "trans": (None, None, "peptide_trans")}[kind]
    for name in RESIDUE_NAMES if residues else []:
        rows = np.flatnonzero(residue_names == name)
        if len(rows):
            for a, b, length in templates[residues][name]:
                add(rows, rows, a, b, length)
    every = np.arange(len(residue_names))
    for a, b, length in templates[terminal] if terminal else []:
        add(every, every, a, b, length)
    linked = np.flatnonzero(previous >= 0)
    if kind == "trans":
        linked = linked[residue_names[linked] != "PRO"]
    for a, b, length in templates[peptide]:  # atom a of the previous residue, b of this one
        add(previous[linked], linked, a, b, length)
    if not pairs:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    return np.concatenate(pairs).astype(np.int64), np.concatenate(lengths)


def chiral_graph(residue_names, atom_residues, atom_names) -> tuple[np.ndarray, np.ndarray]:
    """Chiral centres (C, 4) as atom indices (centre, a, b, c) and their ideal signed volumes (C,) in Å^3,
    ((a - centre) x (b - centre)) . (c - centre): CA of every residue with a CB (L amino acids), CB of THR
    and ILE. Centres with a missing atom are left out."""
    residue_names = np.asarray(residue_names, dtype=str)
    atom_index = _atom_index(len(residue_names), atom_residues, atom_names)
    centres, volumes = [np.zeros((0, 4), np.int64)], [np.zeros(0)]
    for name, chiral in bond_templates()["chirality"].items():
        rows = np.flatnonzero(residue_names == name)
        for *atoms, volume in chiral if len(rows) else []:
            index = np.stack([atom_index(rows, atom) for atom in atoms], axis=1)
            index = index[(index >= 0).all(axis=1)]
            centres.append(index)
            volumes.append(np.full(len(index), float(volume)))
    return np.concatenate(centres), np.concatenate(volumes)


def chiral_volumes(x: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed volumes (C,) of quadruples (centre, a, b, c) (C, 4) at positions x,
    ((a - centre) x (b - centre)) . (c - centre), and their gradients (C, 4, 3) by atom."""
    p = x[centres]
    da, db, dc = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]
    ga, gb, gc = np.cross(db, dc), np.cross(dc, da), np.cross(da, db)  # V = (da x db) . dc
    return (gc * dc).sum(-1), np.stack([-(ga + gb + gc), ga, gb, gc], axis=1)


def disulfide_graph(residue_names, atom_residues, atom_names, positions, groups=None,
                    known=None) -> tuple[np.ndarray, ...]:
    """Disulfide bonds: the cysteine residue pairs ``known`` (K, 2) (the input's records, CYX names) whatever
    their distance, then between the other cysteines whose SG atoms are closer than :data:`DISULFIDE_DETECT_A`
    at ``positions`` (N, 3) (each SG in one bond at most, closest first; only within a group of residues).

    Returns bond pairs (B, 2) with their ideal lengths (B,), and the 1-3 pairs CB-SG across each bond
    (A, 2) with theirs (A,)."""
    residue_names = np.asarray(residue_names, dtype=str)
    atom_residues = np.asarray(atom_residues, dtype=np.int64)
    atom_names = np.asarray(atom_names, dtype=str)
    atom_index = _atom_index(len(residue_names), atom_residues, atom_names)
    cys = np.flatnonzero(residue_names == "CYS")
    sulfur, beta = atom_index(cys, "SG"), atom_index(cys, "CB")
    cys, sulfur, beta = cys[sulfur >= 0], sulfur[sulfur >= 0], beta[sulfur >= 0]
    groups = np.zeros(len(residue_names), np.int64) if groups is None else np.asarray(groups)
    x = np.asarray(positions, dtype=np.float64)[sulfur]
    distance = np.linalg.norm(x[:, None] - x[None], axis=-1)
    same_group = groups[cys][:, None] == groups[cys][None]
    place = np.full(len(residue_names), -1, dtype=np.int64)  # each cysteine's place in cys
    place[cys] = np.arange(len(cys))
    known_pairs = np.zeros((0, 2), np.int64) if known is None else np.asarray(known, dtype=np.int64).reshape(-1, 2)
    known_places = place[known_pairs]
    used, bonds = set(), []
    for a, b in known_places[(known_places >= 0).all(axis=1)].tolist():
        if a != b and a not in used and b not in used:
            used.update((a, b))
            bonds.append((a, b))
    first, second = np.nonzero(np.triu(distance < DISULFIDE_DETECT_A, 1) & same_group)
    for k in np.argsort(distance[first, second], kind="stable"):
        a, b = int(first[k]), int(second[k])
        if a not in used and b not in used:
            used.update((a, b))
            bonds.append((a, b))
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    (_, _, ss_length), (_, _, cb_length) = bond_templates()["disulfide"]
    angle_pairs = np.concatenate([np.stack([beta[bonds[:, 0]], sulfur[bonds[:, 1]]], axis=1),
                                  np.stack([beta[bonds[:, 1]], sulfur[bonds[:, 0]]], axis=1)])
    angle_pairs = angle_pairs[(angle_pairs >= 0).all(axis=1)]
    return (sulfur[bonds], np.full(len(bonds), float(ss_length)), angle_pairs,
            np.full(len(angle_pairs), float(cb_length)))


def planar_graph(residue_names, atom_residues, atom_names, previous) -> np.ndarray:
    """Atom quadruples (P, 4) as (centre, a, b, c) that are coplanar in every peptide group (cis or trans):
    C(i) with CA(i), N(i+1), CA(i+1) (the torsion omega at 0 or 180 degrees) and C(i) with CA(i), O(i),
    N(i+1) (C is sp2). Their signed volumes are held at 0."""
    residue_names = np.asarray(residue_names, dtype=str)
    previous = np.asarray(previous, dtype=np.int64)
    atom_index = _atom_index(len(residue_names), atom_residues, atom_names)
    linked = np.flatnonzero(previous >= 0)
    before = previous[linked]
    groups = []
    for atoms in (((before, "C"), (before, "CA"), (linked, "N"), (linked, "CA")),
                  ((before, "C"), (before, "CA"), (before, "O"), (linked, "N"))):
        index = np.stack([atom_index(rows, name) for rows, name in atoms], axis=1)
        groups.append(index[(index >= 0).all(axis=1)])
    return np.concatenate(groups).reshape(-1, 4)
