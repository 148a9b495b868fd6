"""Tests of beads, neighbourhoods and chain breaks on real structures."""
from __future__ import annotations

import numpy as np
import pytest

from gaatool.errors import ConfigError, InputFileError
from gaatool.io.structure import read_structure
from gaatool.tasks.backmap.coarse_grain import (
    bead_positions,
    chain_breaks,
    check_coarse_grained,
    coarse_grain,
    neighborhoods,
    residue_types_of,
    spaced_like_ca_trace,
    bead_spacing,
)


@pytest.fixture(scope="module")
def lysozyme(pdb_files):
    return read_structure(pdb_files / "1AKI.cif.gz")


def test_bead_kinds(lysozyme):
    s = lysozyme
    starts = s.residue_starts()
    centroid, com, ca = (bead_positions(s, kind)[0] for kind in ("centroid", "com", "ca"))
    masses = {"C": 12.011, "N": 14.007, "O": 15.999, "S": 32.06}
    for r in (0, 17, 128):
        atoms = s.positions[0, starts[r]:starts[r + 1]]
        weights = np.array([masses[e] for e in s.elements[starts[r]:starts[r + 1]]])
        assert np.allclose(centroid[r], atoms.mean(0))
        assert np.allclose(com[r], (weights[:, None] * atoms).sum(0) / weights.sum())
        assert np.allclose(ca[r], atoms[list(s.atom_names[starts[r]:starts[r + 1]]).index("CA")])
    # CYS beads (heavy S) differ between centroid and centre of mass; GLY's CA is not its centroid
    cys = np.flatnonzero(s.residue_names == "CYS")
    assert np.all(np.linalg.norm(com[cys] - centroid[cys], axis=1) > 0.05)
    with pytest.raises(ConfigError):
        bead_positions(s, "martini")


def test_c_alpha_traces_are_told_by_their_spacing(lysozyme):
    """Consecutive C-alpha atoms sit 3.8 Å apart, centroid and centre-of-mass beads do not, whatever their names,
    and so they stay with the noise of a coarse-grained simulation."""
    trace = coarse_grain(lysozyme, "ca")
    median, spread = bead_spacing(trace)
    assert abs(median - 3.8) < 0.05 and spread < 0.1 and spaced_like_ca_trace(trace)
    rng = np.random.default_rng(0)
    noisy = trace.with_positions(trace.positions + rng.normal(0, 0.3, trace.positions.shape))
    assert spaced_like_ca_trace(noisy)
    for kind in ("centroid", "com"):
        beads = coarse_grain(lysozyme, kind)
        assert not spaced_like_ca_trace(beads) and bead_spacing(beads)[0] > 4.1
        assert not spaced_like_ca_trace(beads.with_positions(beads.positions + rng.normal(0, 0.3, beads.positions.shape)))
    # too few peptide-bonded pairs to tell: 8 residues (7 pairs), or 14 with a numbering gap after every second
    assert spaced_like_ca_trace(coarse_grain(lysozyme.select_residues(np.arange(129) < 9), "ca")) is not None
    assert spaced_like_ca_trace(coarse_grain(lysozyme.select_residues(np.arange(129) < 8), "ca")) is None
    gapped = coarse_grain(lysozyme.select_residues(np.arange(129) < 14), "ca")
    gapped.residue_numbers = gapped.residue_numbers + 10 * (np.arange(14) // 2)
    assert spaced_like_ca_trace(gapped) is None


def test_ca_bead_needs_a_ca(lysozyme):
    no_ca = lysozyme.select_residues(np.ones(lysozyme.n_residues, bool))
    no_ca.atom_names = np.where(no_ca.atom_names == "CA", "CX", no_ca.atom_names)
    with pytest.raises(InputFileError, match="CA"):
        bead_positions(no_ca, "ca")


def test_coarse_grain_structure_and_check(lysozyme):
    cg = coarse_grain(lysozyme)
    assert cg.n_atoms == cg.n_residues == 129
    check_coarse_grained(cg)
    assert list(cg.residue_numbers) == list(lysozyme.residue_numbers)
    with pytest.raises(InputFileError, match="one bead per residue"):
        check_coarse_grained(lysozyme)


def brute_force(beads, k):
    d = np.linalg.norm(beads[None] - beads[:, None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, :k]


def test_neighborhoods_match_brute_force(lysozyme):
    beads = bead_positions(lysozyme)[0]
    types = residue_types_of(lysozyme)
    env = neighborhoods(beads, types, 16)
    assert env["neighbor_positions"].shape == (129, 16, 3) and env["neighbor_mask"].all()
    distances = np.linalg.norm(env["neighbor_positions"], axis=-1)
    assert np.allclose(distances, brute_force(beads, 16))
    index = env["neighbor_index"]
    assert np.allclose(env["neighbor_positions"], beads[index] - beads[:, None])
    assert np.array_equal(env["neighbor_types"], types[index])
    assert not np.any(index == np.arange(129)[:, None])  # a bead is not its own neighbour


def test_small_structures_are_padded(lysozyme):
    beads = bead_positions(lysozyme)[0][:5]
    types = residue_types_of(lysozyme)[:5]
    env = neighborhoods(beads, types, 16)
    assert env["neighbor_mask"].sum(1).tolist() == [4] * 5
    assert np.all(env["neighbor_index"][:, 4:] == -1) and np.all(env["neighbor_positions"][:, 4:] == 0)
    assert np.allclose(np.linalg.norm(env["neighbor_positions"][:, :4], axis=-1), brute_force(beads, 4))
    with pytest.raises(ConfigError):
        neighborhoods(beads, types, 0)


def test_chain_breaks_where_nonstandard_residues_were(pdb_files):
    s = read_structure(pdb_files / "1A8O.cif.gz")  # MSE residues are skipped, leaving gaps
    breaks = [(int(s.residue_numbers[a]), int(s.residue_numbers[b])) for a, b in chain_breaks(s)]
    assert breaks == [(184, 186), (213, 216)]
    assert chain_breaks(read_structure(pdb_files / "1AKI.cif.gz")) == []
    two = read_structure(pdb_files / "1CKB.pdb.gz")
    assert chain_breaks(two) == []  # chain A ends and chain B starts: not a break



@pytest.mark.parametrize("bead", [None, "centroid", "ca"])
def test_residues_cut_out_and_renumbered_are_a_chain_break(lysozyme, bead):
    """Residues 41-60 removed and the rest renumbered: the numbers run on, the chain does not (21 A between
    beads 40 and 41); all-atom structures tell it by their CA atoms."""
    import dataclasses

    structure = lysozyme if bead is None else coarse_grain(lysozyme, bead)
    keep = (structure.residue_numbers < 41) | (structure.residue_numbers > 60)
    cut = structure.select_residues(keep)
    cut = dataclasses.replace(cut, residue_numbers=np.arange(1, cut.n_residues + 1))
    assert chain_breaks(structure) == []
    assert chain_breaks(cut) == [(39, 40)]
    from gaatool.tasks.backmap.coarse_grain import structure_previous

    assert structure_previous(cut)[40] == -1 and structure_previous(cut)[41] == 40  # no peptide bond across

def test_sequence_offsets_two_chains_and_a_break(pdb_files):
    from gaatool.tasks.backmap.coarse_grain import sequence_offsets

    cg = coarse_grain(read_structure(pdb_files / "1CKB.pdb.gz"))  # two chains
    env = neighborhoods(cg.positions[0], residue_types_of(cg), 16)
    offsets = sequence_offsets(cg, env["neighbor_index"])
    chain = np.array(cg.chain_ids)
    index = env["neighbor_index"]
    other_chain = chain[index] != chain[:, None]
    assert np.all(offsets[other_chain] == 0) and other_chain.any()
    same = ~other_chain
    r = np.arange(cg.n_residues)[:, None]
    assert chain_breaks(cg) == [] and [len(r) for _, r in cg.chains()] == [57, 8]
    np.testing.assert_array_equal(offsets[same], (index - r)[same])  # same chain, no gap: index differences
    # renumbering residues 40-56 of chain A opens a gap: nothing is a sequence neighbour across it
    numbers = cg.residue_numbers.copy()
    numbers[40:57] += 10
    gapped = cg.__class__(**{**cg.__dict__, "residue_numbers": numbers})
    across = sequence_offsets(gapped, index)
    crossing = (r < 40) & (index >= 40) | (r >= 40) & (r < 57) & (index < 40)
    assert crossing.any() and np.all(across[crossing] == 0)
    np.testing.assert_array_equal(across[~crossing], offsets[~crossing])
