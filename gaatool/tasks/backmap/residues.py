"""The fixed vocabulary of backmapping: the 20 standard residues and their heavy atoms.

Every heavy atom the backmapper can produce has a *label*: the pair
(residue name, atom name), e.g. ``("LYS", "NZ")``. The vocabulary lists the
167 heavy atoms of the 20 standard amino acids (PDB/wwPDB chemical component
names) followed by the C-terminal ``OXT`` of each residue (20 more labels,
used only at chain ends): 187 labels in a fixed order, so that checkpoints and
datasets built at different times agree. ``LABELS[i]`` is label ``i``.

>>> len(LABELS), LABELS[0], label_index("LYS", "NZ") == LABELS.index(("LYS", "NZ"))
(187, ('ALA', 'N'), True)
"""
from __future__ import annotations

import numpy as np

from ...io.structure import STANDARD_AMINO_ACIDS

__all__ = [
    "RESIDUE_NAMES",
    "RESIDUE_ATOMS",
    "BACKBONE_ATOMS",
    "TERMINAL_ATOM",
    "LABELS",
    "MAX_ATOMS",
    "residue_index",
    "label_index",
    "label_names",
    "residue_labels",
    "atom_element",
    "is_backbone",
]

RESIDUE_NAMES = STANDARD_AMINO_ACIDS
BACKBONE_ATOMS = ("N", "CA", "C", "O")
TERMINAL_ATOM = "OXT"

_SIDE_CHAINS = {
    "ALA": ("CB",),
    "ARG": ("CB", "CG", "CD", "NE", "CZ", "NH1", "NH2"),
    "ASN": ("CB", "CG", "OD1", "ND2"),
    "ASP": ("CB", "CG", "OD1", "OD2"),
    "CYS": ("CB", "SG"),
    "GLN": ("CB", "CG", "CD", "OE1", "NE2"),
    "GLU": ("CB", "CG", "CD", "OE1", "OE2"),
    "GLY": (),
    "HIS": ("CB", "CG", "ND1", "CD2", "CE1", "NE2"),
    "ILE": ("CB", "CG1", "CG2", "CD1"),
    "LEU": ("CB", "CG", "CD1", "CD2"),
    "LYS": ("CB", "CG", "CD", "CE", "NZ"),
    "MET": ("CB", "CG", "SD", "CE"),
    "PHE": ("CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ"),
    "PRO": ("CB", "CG", "CD"),
    "SER": ("CB", "OG"),
    "THR": ("CB", "OG1", "CG2"),
    "TRP": ("CB", "CG", "CD1", "CD2", "NE1", "CE2", "CE3", "CZ2", "CZ3", "CH2"),
    "TYR": ("CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ", "OH"),
    "VAL": ("CB", "CG1", "CG2"),
}

#: Heavy atoms of each standard residue inside a chain (no OXT), in PDB order.
RESIDUE_ATOMS: dict[str, tuple[str, ...]] = {name: BACKBONE_ATOMS + _SIDE_CHAINS[name] for name in RESIDUE_NAMES}

#: The vocabulary: (residue, atom) pairs; the 167 chain atoms, then the 20 OXT.
LABELS: tuple[tuple[str, str], ...] = tuple(
    [(res, atom) for res in RESIDUE_NAMES for atom in RESIDUE_ATOMS[res]]
    + [(res, TERMINAL_ATOM) for res in RESIDUE_NAMES])

#: Largest number of heavy atoms of one residue (TRP with OXT).
MAX_ATOMS = max(len(atoms) for atoms in RESIDUE_ATOMS.values()) + 1

_LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}
_RESIDUE_INDEX = {name: i for i, name in enumerate(RESIDUE_NAMES)}


def residue_index(name: str) -> int:
    """Index of a standard residue in :data:`RESIDUE_NAMES`; KeyError for others.

    >>> residue_index("ALA"), residue_index("VAL")
    (0, 19)
    """
    return _RESIDUE_INDEX[name]


def label_index(residue: str, atom: str) -> int:
    """Vocabulary index of (residue, atom); -1 if the residue has no such heavy atom.

    >>> label_index("GLY", "CB")
    -1
    """
    return _LABEL_INDEX.get((residue, atom), -1)


def label_names() -> list[str]:
    """The vocabulary as ``"RES:ATOM"`` strings (how checkpoints and datasets store it)."""
    return [f"{res}:{atom}" for res, atom in LABELS]


def residue_labels(residue: str, terminal: bool = False) -> tuple[tuple[str, ...], np.ndarray]:
    """Atom names and label indices (A,) of a whole residue; with ``terminal`` its OXT too.

    >>> names, labels = residue_labels("GLY", terminal=True)
    >>> names, labels.tolist() == [label_index("GLY", n) for n in names]
    (('N', 'CA', 'C', 'O', 'OXT'), True)
    """
    names = RESIDUE_ATOMS[residue] + ((TERMINAL_ATOM,) if terminal else ())
    return names, np.array([_LABEL_INDEX[(residue, name)] for name in names], dtype=np.int64)


def atom_element(atom: str) -> str:
    """Element of a standard heavy atom: the first letter of its name.

    >>> atom_element("SD"), atom_element("OXT")
    ('S', 'O')
    """
    return atom[0]


def is_backbone(atom: str) -> bool:
    """True for N, CA, C, O and OXT (the backbone in backmapping metrics)."""
    return atom in BACKBONE_ATOMS or atom == TERMINAL_ATOM
