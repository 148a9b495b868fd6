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


def _renumbered_without(structure, numbers):
    """``structure`` without the residues numbered ``numbers``, the rest renumbered 1, 2, ...: a gap that only the
    distances show."""
    import dataclasses

    cut = structure.select_residues(~np.isin(structure.residue_numbers, numbers))
    return dataclasses.replace(cut, residue_numbers=np.arange(1, cut.n_residues + 1))


@pytest.mark.parametrize("bead", [None, "ca"])
@pytest.mark.parametrize("missing", [10, 42])  # in hen lysozyme's first helix (CA(9)-CA(11) 5.4 Å) and a strand
def test_one_residue_missing_and_renumbered_is_a_break_in_c_alpha_traces(lysozyme, bead, missing):
    """C-alpha atoms (of an all-atom structure, or a trace) with a residue missing between them sit 5.4-7.3 Å
    apart, bonded ones 3.8 Å: a break, and the neighbour beads across it get offset 0."""
    from gaatool.tasks.backmap.coarse_grain import MAX_BONDED_CA_A, max_bonded_distance, sequence_offsets

    structure = lysozyme if bead is None else coarse_grain(lysozyme, bead)
    cut = _renumbered_without(structure, [missing])
    before = missing - 2  # index of residue missing - 1
    assert chain_breaks(cut) == [(before, before + 1)] and max_bonded_distance(cut) == MAX_BONDED_CA_A
    if bead is not None:
        env = neighborhoods(cut.positions[0], residue_types_of(cut), 16)
        offsets, index = sequence_offsets(cut, env["neighbor_index"]), env["neighbor_index"]
        r = np.arange(cut.n_residues)[:, None]
        crossing = ((r <= before) & (index > before)) | ((r > before) & (index <= before))
        assert crossing.any() and np.all(offsets[crossing] == 0)


def test_centroid_beads_keep_the_loose_limit(lysozyme):
    """Consecutive centroid beads sit 3-9 Å apart, beads with a residue left out between them overlap that: only
    longer cut-out stretches are breaks."""
    from gaatool.tasks.backmap.coarse_grain import MAX_BONDED_BEAD_A, max_bonded_distance

    beads = coarse_grain(lysozyme)
    assert max_bonded_distance(beads) == MAX_BONDED_BEAD_A
    assert chain_breaks(_renumbered_without(beads, [42])) == []


def test_c_alpha_traces_of_soft_simulations_keep_their_bonds(lysozyme):
    """Beads of a hot or soft simulation (0.1 and 0.3 Å of noise per coordinate: C-alpha bonds of 3.8 +- 0.14 and
    +- 0.42 Å) get a limit widened by the spread of their distances, so no bond is taken for a break."""
    from gaatool.tasks.backmap.coarse_grain import MAX_BONDED_CA_A, max_bonded_distance

    trace = coarse_grain(lysozyme, "ca")
    rng = np.random.default_rng(1)
    for noise in (0.1, 0.3):
        for _ in range(5):
            noisy = trace.with_positions(trace.positions + rng.normal(0, noise, trace.positions.shape))
            assert chain_breaks(noisy) == [] and max_bonded_distance(noisy) > MAX_BONDED_CA_A
    # a residue missing is still a break where the trace is still C-alpha-like and the gap stands out
    noisy = trace.with_positions(trace.positions + rng.normal(0, 0.1, trace.positions.shape))
    assert chain_breaks(_renumbered_without(noisy, [42])) == [(40, 41)]
    # so do the CA atoms of an all-atom structure whose atoms sit off (a prediction relaxed by itself)
    assert chain_breaks(lysozyme.with_positions(lysozyme.positions + rng.normal(0, 0.5, lysozyme.positions.shape))) == []


def test_no_false_breaks_in_real_structures(pdb_files):
    """Consecutive residue numbers are bonded in every test entry (2VB1's CA atoms up to 4.05 Å apart), all-atom
    and as C-alpha traces: breaks only where the numbering jumps."""
    for name in ("1AKI.cif.gz", "1CKB.pdb.gz", "2VB1.pdb.gz", "1AJJ.pdb.gz", "1A8O.cif.gz", "3NIR_atoms_only.pdb.gz",
                 "1MOL.bcif.gz"):
        structure = read_structure(pdb_files / name)
        numbered = [(int(a), int(a) + 1) for a in range(structure.n_residues - 1)
                    if structure.chain_ids[a] == structure.chain_ids[a + 1]
                    and structure.residue_numbers[a + 1] - structure.residue_numbers[a] != 1]
        assert chain_breaks(structure) == numbered, name
        assert chain_breaks(coarse_grain(structure, "ca")) == numbered, name


def test_recorded_breaks_are_the_breaks(lysozyme):
    """A structure that records its breaks (a backmapped one: its beads') keeps them, whatever its atoms say."""
    import dataclasses

    from gaatool.tasks.backmap.coarse_grain import structure_previous

    recorded = dataclasses.replace(lysozyme, breaks=[(20, 21)])
    assert chain_breaks(recorded) == [(20, 21)] and structure_previous(recorded)[21] == -1
    assert chain_breaks(dataclasses.replace(_renumbered_without(lysozyme, [42]), breaks=[])) == []
