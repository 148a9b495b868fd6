"""Steric contacts: the pairs relaxation pushes apart are the pairs the clash count counts."""
from __future__ import annotations

import numpy as np
import pytest

from gaatool.io.structure import read_structure
from gaatool.tasks.backmap.coarse_grain import structure_previous
from gaatool.tasks.backmap.sterics import CLASH_OVERLAP_A, Contacts, count_clashes


def _excluded(previous):
    """The residue pairs count_clashes skips: peptide-bonded neighbours."""
    excluded = np.zeros((len(previous), len(previous)), bool)
    linked = np.flatnonzero(previous >= 0)
    excluded[previous[linked], linked] = excluded[linked, previous[linked]] = True
    return excluded


@pytest.mark.parametrize("sigma", [0.3, 0.5])
def test_overlapping_pairs_are_the_counted_clashes(pdb_files, sigma):
    s = read_structure(pdb_files / "1CKB.pdb.gz")
    previous = structure_previous(s)
    x = s.positions[0] + np.random.default_rng(0).normal(0.0, sigma, s.positions[0].shape)
    counted = count_clashes(x, s.elements, s.atom_residues, _excluded(previous), s.atom_names == "SG")
    i, j, target = Contacts.of(s.elements, s.atom_names, s.atom_residues, previous).overlapping(x, CLASH_OVERLAP_A)
    assert counted > 5 and len(i) == counted
    assert np.all(np.linalg.norm(x[i] - x[j], axis=-1) < target)


def test_which_pairs_may_clash():
    # atoms 0, 1 in residue 0; 2 in residue 1 (peptide-bonded to 0); 3 in residue 2; 4 in residue 3 (other group)
    elements = np.array(["C", "O", "N", "N", "C"])
    names = np.array(["CA", "O", "N", "NZ", "CB"])
    residues = np.array([0, 0, 1, 2, 3])
    previous = np.array([-1, 0, -1, -1])
    groups = np.array([0, 0, 0, 1])
    x = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.5, 0.5, 0.5]])  # all within 1.8 Å
    contacts = Contacts.of(elements, names, residues, previous, groups)
    i, j, target = contacts.overlapping(x, 0.0)
    found = {(int(a), int(b)): t for a, b, t in zip(i, j, target)}
    # same residue (0-1), peptide-bonded (0-2, 1-2) and another group (4) never; O-N and N-N may H-bond
    assert found == {(0, 3): pytest.approx(1.70 + 1.55), (1, 3): pytest.approx(1.52 + 1.55 - 0.4),
                     (2, 3): pytest.approx(1.55 + 1.55 - 0.4)}
    assert len(contacts.overlapping(x, 3.0)[0]) == 0  # nothing overlaps by 3 Å
    sulfur = Contacts.of(["S", "S"], ["SG", "SG"], [0, 1], [-1, -1])
    assert len(sulfur.overlapping(np.array([[0.0, 0, 0], [2.05, 0, 0]]), 0.0)[0]) == 0  # a disulfide bond
    assert len(Contacts.of(["S", "S"], ["SD", "SD"], [0, 1], [-1, -1]).overlapping(
        np.array([[0.0, 0, 0], [2.05, 0, 0]]), 0.0)[0]) == 1
