"""Tests of the backmapping vocabulary against real structures."""
from __future__ import annotations

import numpy as np
import pytest

from gaatool.io.structure import STANDARD_AMINO_ACIDS, read_structure
from gaatool.tasks.backmap import residues


def test_vocabulary_size_and_order():
    assert len(residues.RESIDUE_NAMES) == 20
    chain_atoms = [label for label in residues.LABELS if label[1] != "OXT"]
    assert len(chain_atoms) == 167 and len(residues.LABELS) == 187
    assert len(set(residues.LABELS)) == 187
    assert residues.LABELS[:5] == (("ALA", "N"), ("ALA", "CA"), ("ALA", "C"), ("ALA", "O"), ("ALA", "CB"))
    assert residues.LABELS[-1] == ("VAL", "OXT")
    assert residues.MAX_ATOMS == 15  # TRP: 14 heavy atoms + OXT
    counts = {name: len(atoms) for name, atoms in residues.RESIDUE_ATOMS.items()}
    assert counts["GLY"] == 4 and counts["TRP"] == 14 and counts["ARG"] == 11 and counts["TYR"] == 12
    assert residues.label_names()[residues.label_index("LYS", "NZ")] == "LYS:NZ"
    assert residues.label_index("GLY", "CB") == -1


def test_residue_labels_and_elements():
    names, labels = residues.residue_labels("TRP", terminal=True)
    assert len(names) == 15 and names[-1] == "OXT"
    assert [residues.LABELS[i] for i in labels] == [("TRP", n) for n in names]
    with pytest.raises(KeyError):
        residues.residue_labels("MSE")
    assert residues.is_backbone("OXT") and residues.is_backbone("CA") and not residues.is_backbone("CB")


@pytest.mark.parametrize("name", ["1AKI.cif.gz", "2VB1.pdb.gz", "1CKB.pdb.gz"])
def test_real_structures_use_the_vocabulary(pdb_files, name):
    # every heavy atom of these real entries is a vocabulary atom, with the element gemmi reads
    s = read_structure(pdb_files / name)
    assert set(s.residue_names.tolist()) <= set(STANDARD_AMINO_ACIDS)
    for res, atom, element in zip(s.residue_names[s.atom_residues], s.atom_names, s.elements):
        assert residues.label_index(str(res), str(atom)) >= 0, (res, atom)
        assert residues.atom_element(str(atom)) == element
    # complete residues hold exactly the vocabulary's chain atoms (OXT at most once per chain)
    starts = s.residue_starts()
    full = [sorted(s.atom_names[starts[r]:starts[r + 1]]) == sorted(residues.RESIDUE_ATOMS[s.residue_names[r]])
            for r in range(s.n_residues)]
    assert np.mean(full) > 0.9
