"""Bond-length relaxation of backmapped atoms: templates, relaxation, equivariance, chain breaks, CLI flag."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gaatool.errors import InputFileError
from gaatool.io.structure import ProteinStructure, read_structure, write_structure
from gaatool.tasks.backmap.coarse_grain import coarse_grain, structure_previous
from gaatool.tasks.backmap.covalent import bond_graph, bond_templates, chiral_graph, chiral_volumes, disulfide_graph
from gaatool.tasks.backmap.relax import (ANGLE_ATOMS, ANGLE_WEIGHT, SIDE_CHAIN_ANGLE_WEIGHT, TARGET_OVERLAP_A,
                                         geometry_terms, relax_positions, relax_structure)
from gaatool.tasks.backmap.sterics import CLASH_OVERLAP_A, Contacts
from gaatool.tasks.backmap.residues import RESIDUE_ATOMS, RESIDUE_NAMES


@pytest.fixture(scope="module")
def structure(pdb_files):
    """1CKB: two chains, 65 residues, real X-ray geometry."""
    return read_structure(pdb_files / "1CKB.pdb.gz")


def graph(s):
    return bond_graph(s.residue_names, s.atom_residues, s.atom_names, structure_previous(s))


def deviations(x, pairs, lengths):
    return np.linalg.norm(x[pairs[:, 0]] - x[pairs[:, 1]], axis=-1) - lengths


def test_templates_cover_the_residues():
    templates = bond_templates()
    assert "source" in templates and "pdb" in templates["source"]
    assert set(templates["residues"]) == set(RESIDUE_NAMES)
    for name, bonds in templates["residues"].items():
        atoms = RESIDUE_ATOMS[name]
        assert {a for a, _, _ in bonds} | {b for _, b, _ in bonds} == set(atoms)  # every atom bonded
        rings = {"PRO": 1, "HIS": 1, "PHE": 1, "TYR": 1, "TRP": 2}.get(name, 0)
        assert len(bonds) == len(atoms) - 1 + rings  # a tree plus the ring closures
        assert all(1.2 < length < 1.85 for _, _, length in bonds)
    assert templates["peptide"] == [["C", "N", pytest.approx(1.33, abs=0.005)]]
    assert templates["terminal"][0][:2] == ["C", "OXT"]


def test_bond_graph_of_a_real_structure(structure):
    pairs, lengths = graph(structure)
    x = structure.positions[0]
    dev = deviations(x, pairs, lengths)
    assert np.abs(dev).max() < 0.1 and np.abs(dev).mean() < 0.03  # templates match real geometry
    names = structure.atom_names
    peptide = (names[pairs[:, 0]] == "C") & (names[pairs[:, 1]] == "N")
    n_links = sum(len(r) - 1 for _, r in structure.chains())
    assert peptide.sum() == n_links


def test_noisy_structure_is_brought_to_ideal_bonds(structure):
    pairs, lengths = graph(structure)
    x = structure.positions[0]
    noisy = x + np.random.default_rng(0).normal(0.0, 0.3, x.shape)
    relaxed = relax_positions(noisy, pairs, lengths)
    assert np.abs(deviations(noisy, pairs, lengths)).mean() > 0.3
    dev = np.abs(deviations(relaxed, pairs, lengths))
    assert dev.mean() < 0.02 and dev.max() < 0.1
    rms = lambda a, b: np.sqrt(((a - b) ** 2).sum(-1).mean())  # noqa: E731
    assert rms(relaxed, x) < rms(noisy, x)  # closer to the truth, not only to ideal bonds


def test_ideal_structure_barely_moves(structure):
    pairs, lengths = graph(structure)
    x = structure.positions[0]
    relaxed = relax_positions(x, pairs, lengths)
    assert np.sqrt(((relaxed - x) ** 2).sum(-1).mean()) < 0.03 and np.abs(relaxed - x).max() < 0.1


def test_rotation_and_translation_equivariance(structure):
    pairs, lengths = graph(structure)
    x = structure.positions[0] + np.random.default_rng(1).normal(0.0, 0.5, structure.positions[0].shape)
    q = Rotation.random(random_state=4).as_matrix()
    shift = np.array([30.0, -7.0, 12.5])
    contacts = Contacts.of(structure.elements, structure.atom_names, structure.atom_residues,
                           structure_previous(structure))
    for with_contacts in (None, contacts):
        a = relax_positions(x, pairs, lengths, contacts=with_contacts)
        b = relax_positions(x @ q.T + shift, pairs, lengths, contacts=with_contacts)
        assert np.abs(a @ q.T + shift - b).max() < 1e-8
        assert np.array_equal(a, relax_positions(x, pairs, lengths, contacts=with_contacts))  # deterministic


def test_chain_breaks_get_no_peptide_bond(structure):
    first = structure.chains()[0][1]
    numbers = structure.residue_numbers.copy()
    numbers[first[10]:] += 5  # a gap after the 10th residue of chain 1
    broken = ProteinStructure(
        structure.residue_names, numbers, structure.insertion_codes, structure.chain_ids, structure.atom_names,
        structure.elements, structure.atom_residues, structure.positions)
    previous = structure_previous(broken)
    assert previous[first[10]] == -1 and previous[first[11]] == first[10]
    pairs, _ = graph(broken)
    full, _ = graph(structure)
    assert len(full) - len(pairs) == 1
    residues = broken.atom_residues[pairs]
    assert not np.any((residues[:, 0] == first[9]) & (residues[:, 1] == first[10]))
    # pulled apart across the break, the two residues stay apart
    x = broken.positions[0].copy()
    x[broken.atom_residues >= first[10]] += np.array([8.0, 0.0, 0.0])
    relaxed = relax_structure(broken.with_positions(x)).positions[0]
    c = np.flatnonzero((broken.atom_residues == first[9]) & (broken.atom_names == "C"))[0]
    n = np.flatnonzero((broken.atom_residues == first[10]) & (broken.atom_names == "N"))[0]
    assert np.linalg.norm(relaxed[c] - relaxed[n]) > 5.0  # 1.33 Å if they were bonded


def test_degenerate_inputs_stay_finite():
    pairs = np.array([[0, 1], [1, 2]])
    lengths = np.array([1.5, 1.5])
    same = np.zeros((3, 3))  # all atoms on one point
    out = relax_positions(same, pairs, lengths)
    assert np.isfinite(out).all()
    assert np.array_equal(relax_positions(np.ones((3, 3)), np.zeros((0, 2), int), np.zeros(0)), np.ones((3, 3)))
    bad = np.array([[0.0, 0, 0], [np.nan, 0, 0], [3.0, 0, 0]])
    assert np.array_equal(relax_positions(bad, pairs, lengths), bad, equal_nan=True)


def test_atoms_piled_up_are_refused_not_relaxed(structure, cli, tmp_path, tiny_backmap_checkpoint):
    piled = structure.with_positions(np.zeros_like(structure.positions))
    with pytest.raises(InputFileError, match=r"model 0: cannot relax: \d+ pairs of atoms .*--no-relax"):
        relax_structure(piled)
    assert np.array_equal(relax_structure(piled, clashes=False).positions.shape, piled.positions.shape)
    beads = coarse_grain(structure)
    write_structure(beads.with_positions(np.zeros_like(beads.positions)), tmp_path / "cg.pdb")
    code, _, stderr = cli("backmap", tmp_path / "cg.pdb", "-o", tmp_path / "aa.pdb", "-m", tiny_backmap_checkpoint,
                          "--device", "cpu")
    assert code == 1 and "cannot relax" in stderr and "--no-relax" in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "aa.pdb").exists()
    assert cli("backmap", tmp_path / "cg.pdb", "-o", tmp_path / "aa.pdb", "-m", tiny_backmap_checkpoint,
               "--device", "cpu", "--no-relax", "--quiet")[0] == 0


def test_relax_structure_keeps_everything_but_positions(structure):
    relaxed = relax_structure(structure.with_positions(np.stack([structure.positions[0]] * 2)))
    assert relaxed.n_models == 2 and np.array_equal(relaxed.atom_names, structure.atom_names)
    assert np.allclose(relaxed.positions[0], relaxed.positions[1])


def test_cli_relax_flag(cli, tmp_path, structure, tiny_backmap_checkpoint):
    write_structure(coarse_grain(structure), tmp_path / "cg.pdb")
    outputs = {}
    for flag in ("--relax", "--no-relax"):
        out = tmp_path / f"aa{flag}.pdb"
        code, stdout, _ = cli("backmap", tmp_path / "cg.pdb", "-o", out, "-m", tiny_backmap_checkpoint,
                              "--device", "cpu", "--json", flag)
        assert code == 0 and json.loads(stdout)["relax"] == (flag == "--relax")
        outputs[flag] = read_structure(out)
    default = tmp_path / "default.pdb"
    assert cli("backmap", tmp_path / "cg.pdb", "-o", default, "-m", tiny_backmap_checkpoint, "--device", "cpu",
               "--quiet")[0] == 0
    relaxed, raw = outputs["--relax"], outputs["--no-relax"]
    pairs, lengths = graph(relaxed)
    assert np.abs(deviations(relaxed.positions[0], pairs, lengths)).mean() < 0.05  # PDB: 3 decimals
    assert np.abs(deviations(raw.positions[0], pairs, lengths)).mean() > 0.1
    assert np.allclose(read_structure(default).positions, relaxed.positions)  # relaxing is the default


def test_evaluate_relax_flag(cli, tiny_backmap_checkpoint, small_backmap_dataset):
    results = {}
    for flag in ("--relax", "--no-relax"):
        code, stdout, _ = cli("evaluate", "backmap", tiny_backmap_checkpoint, small_backmap_dataset, "--device",
                              "cpu", "--json", flag)
        assert code == 0
        results[flag] = json.loads(stdout)
    assert results["--relax"]["relax"] and not results["--no-relax"]["relax"]
    relaxed, raw = (results[f]["bonds"] for f in ("--relax", "--no-relax"))
    # (an untrained model's side chains: the held side-chain angles leave the bonds ~0.05 Å from ideal)
    assert relaxed["intra_residue"]["mean_abs_deviation_a"] < 0.1 < raw["intra_residue"]["mean_abs_deviation_a"]
    crowded = {f: results[f]["crowding"] for f in results}
    assert crowded["--relax"]["pairs"] < crowded["--no-relax"]["pairs"] / 4
    assert crowded["--relax"]["residues"] <= crowded["--relax"]["pairs"]
    # an untrained model's peptide C-N is far off; relaxation pulls it close to 1.33 Å
    assert abs(relaxed["peptide"]["mean_length_a"] - 1.33) < 0.1 < abs(raw["peptide"]["mean_length_a"] - 1.33)


def test_restraint_sweep_tabulates_each_setting(tiny_backmap_checkpoint, small_backmap_dataset):
    from gaatool.tasks.backmap.relax_sweep import sweep

    # (an untrained model's side chains are far from any rotamer: compared without their angles)
    rows = sweep(str(tiny_backmap_checkpoint), str(small_backmap_dataset), split="val", restraints=(0.02, 5.0),
                 overlaps=(0.4, 0.0), side_chain_angle_weights=(0,))
    assert [(r["restraint"], r["overlap"]) for r in rows] == [(0.02, 0.4), (0.02, 0.0), (5.0, 0.4), (5.0, 0.0),
                                                               (None, None)]
    loose, _, tight, _, raw = rows
    # a stronger restraint keeps the prediction: bonds further from ideal, closer to the raw output
    assert loose["bond_abs_dev_a"] < tight["bond_abs_dev_a"] < raw["bond_abs_dev_a"]
    assert abs(tight["rmsd_a"] - raw["rmsd_a"]) < abs(loose["rmsd_a"] - raw["rmsd_a"])
    assert rows[1]["clashes"] <= rows[0]["clashes"] <= raw["clashes"]
    bonds_only = sweep(str(tiny_backmap_checkpoint), str(small_backmap_dataset), split="val", restraints=(0.02,),
                       clashes=False)
    assert [(r["restraint"], r["overlap"]) for r in bonds_only] == [(0.02, None), (None, None)]
    side_chains = sweep(str(tiny_backmap_checkpoint), str(small_backmap_dataset), split="val", restraints=(0.02,),
                        side_chain_angle_weights=(0, 1))
    assert [r["side_chain_angle_weight"] for r in side_chains] == [0, 1, None]
    assert side_chains[1]["crowded"] < side_chains[0]["crowded"]  # atoms two bonds apart held at their distance


def test_clashes_are_pushed_apart(structure):
    previous = structure_previous(structure)
    pairs, lengths = graph(structure)
    contacts = Contacts.of(structure.elements, structure.atom_names, structure.atom_residues, previous)
    x = structure.positions[0]
    noisy = x + np.random.default_rng(0).normal(0.0, 0.5, x.shape)

    def clashes(y):
        return len(contacts.overlapping(y, CLASH_OVERLAP_A)[0])

    bonds_only = relax_positions(noisy, pairs, lengths)
    relaxed = relax_positions(noisy, pairs, lengths, contacts=contacts)
    assert clashes(x) == 0 and clashes(noisy) > 20 and clashes(bonds_only) > 0
    assert clashes(relaxed) == 0 and len(contacts.overlapping(relaxed, TARGET_OVERLAP_A + 0.05)[0]) == 0
    dev = np.abs(deviations(relaxed, pairs, lengths))
    assert dev.mean() < 0.02 and dev.max() < 0.1  # bonds as ideal as without the clash terms
    rms = lambda a, b: np.sqrt(((a - b) ** 2).sum(-1).mean())  # noqa: E731
    assert rms(relaxed, x) < rms(noisy, x)
    # relax_structure does the same without its angle, chirality and trans terms, and only the bonds when asked
    noisy_structure = structure.with_positions(noisy[None])
    bonds = {"angle_weight": 0, "chiral_weight": 0, "trans_weight": 0, "disulfides": False,
             "side_chain_angle_weight": 0}
    assert np.allclose(relax_structure(noisy_structure, **bonds).positions[0], relaxed)
    assert np.allclose(relax_structure(noisy_structure, clashes=False, **bonds).positions[0], bonds_only)


def test_angle_templates_are_one_three_distances():
    templates = bond_templates()
    for name in RESIDUE_NAMES:
        bonded = {}
        for a, b, _ in templates["residues"][name]:
            bonded.setdefault(a, set()).add(b)
            bonded.setdefault(b, set()).add(a)
        angles = templates["angles"][name]
        expected = sum(len(n) * (len(n) - 1) // 2 for n in bonded.values())
        assert len(angles) == expected  # every pair of bonds at an atom (rings of 5 or 6: no pair twice)
        for a, b, distance in angles:
            assert bonded[a] & bonded[b] and b not in bonded[a]  # a common neighbour, not bonded
            assert 2.1 < distance < 2.9  # 1.2-1.85 Å bonds at 100-125 degrees
    assert [pair[:2] for pair in templates["peptide_angles"]] == [["CA", "N"], ["O", "N"], ["C", "CA"]]
    assert [pair[:2] for pair in templates["terminal_angles"]] == [["CA", "OXT"], ["O", "OXT"]]


def test_backbone_angles_are_held(structure):
    previous = structure_previous(structure)
    names = structure.atom_names
    pairs, lengths, weights = geometry_terms(structure.residue_names, structure.atom_residues, names, previous,
                                             side_chain_angle_weight=0)
    bonds, _ = graph(structure)
    angles = pairs[len(bonds):]
    assert np.all(weights[:len(bonds)] == 1) and np.all(weights[len(bonds):] == ANGLE_WEIGHT)
    assert len(angles) > 4 * structure.n_residues and np.isin(names[angles], ANGLE_ATOMS).all()
    peptide = (names[angles[:, 0]] == "CA") & (names[angles[:, 1]] == "N")
    assert peptide.sum() == (previous >= 0).sum()  # CA(i)-N(i+1) across every peptide bond
    x = structure.positions[0]
    assert np.abs(deviations(x, angles, lengths[len(bonds):])).mean() < 0.05  # the templates fit X-ray geometry
    noisy = x + np.random.default_rng(2).normal(0.0, 0.3, x.shape)
    relaxed = relax_structure(structure.with_positions(noisy[None]), side_chain_angle_weight=0).positions[0]
    bonds_only = relax_structure(structure.with_positions(noisy[None]), angle_weight=0,
                                 side_chain_angle_weight=0).positions[0]
    angle_error = lambda y: np.abs(deviations(y, angles, lengths[len(bonds):])).mean()  # noqa: E731
    assert angle_error(relaxed) < 0.05 < angle_error(bonds_only)
    backbone = np.isin(names, ["N", "CA", "C", "O"])
    rms = lambda a, b: np.sqrt(((a - b) ** 2).sum(-1).mean())  # noqa: E731
    assert rms(relaxed[backbone], x[backbone]) < rms(bonds_only[backbone], x[backbone])



def test_side_chain_angles_hold_atoms_two_bonds_apart(structure):
    """Side chains averaged over rotamers or equivalent atoms (LEU CD1/CD2, ASP OD1/OD2 nearly on top of each
    other): with the side-chain angles held, relaxing moves such pairs to their 1-3 distance."""
    previous = structure_previous(structure)
    names, residues = structure.atom_names, structure.atom_residues
    pairs, lengths, weights = geometry_terms(structure.residue_names, residues, names, previous)
    bonds, _ = graph(structure)
    angles, ideal = pairs[len(bonds):], lengths[len(bonds):]
    side = ~np.isin(names[angles], ANGLE_ATOMS).all(axis=1)
    assert side.any() and np.all(weights[len(bonds):][side] == SIDE_CHAIN_ANGLE_WEIGHT)
    assert np.all(residues[angles[side, 0]] == residues[angles[side, 1]])  # within one residue
    x = structure.positions[0].copy()
    # every side-chain 1-3 pair whose atoms are both side-chain tips: put the second atom 0.1 Å from the first
    tips = side & ~np.isin(names[angles], ["CB", "CG", "CG1", "CD", "CZ"]).any(axis=1)
    collapsed = angles[tips]
    assert len(collapsed) > 3
    for a, b in collapsed:
        x[b] = x[a] + 0.1 / np.sqrt(3)
    close = lambda y: np.linalg.norm(y[collapsed[:, 0]] - y[collapsed[:, 1]], axis=-1)  # noqa: E731
    held = relax_structure(structure.with_positions(x[None])).positions[0]
    free = relax_structure(structure.with_positions(x[None]), side_chain_angle_weight=0).positions[0]
    assert close(held).min() > 1.9 and np.abs(close(held) - ideal[tips]).mean() < 0.1
    assert close(free).min() < 1.0  # without them the pairs stay collapsed

def test_chirality_templates():
    chirality = bond_templates()["chirality"]
    for name in RESIDUE_NAMES:
        centres = {tuple(c[:4]): c[4] for c in chirality[name]}
        expected = ({("CA", "N", "C", "CB")} if "CB" in RESIDUE_ATOMS[name] else set()) | {
            "THR": {("CB", "CA", "OG1", "CG2")}, "ILE": {("CB", "CA", "CG1", "CG2")}}.get(name, set())
        assert set(centres) == expected
        assert all(2.3 < volume < 2.8 for volume in centres.values())  # L: positive in this atom order


def test_mirrored_centres_are_brought_back_to_l(structure):
    """CB (and its side chain) reflected through the N-CA-C plane: a D residue, which distances alone keep."""
    centres, volumes = chiral_graph(structure.residue_names, structure.atom_residues, structure.atom_names)
    x = structure.positions[0]
    assert np.all(chiral_volumes(x, centres)[0] > 0) and len(centres) > structure.n_residues * 0.8
    mirrored = x.copy()
    flipped = [r for r in range(0, structure.n_residues, 3)
               if "CB" in structure.atom_names[structure.atom_residues == r]]
    for r in flipped:
        atoms = np.flatnonzero(structure.atom_residues == r)
        n, ca, c = (x[atoms[structure.atom_names[atoms] == name][0]] for name in ("N", "CA", "C"))
        normal = np.cross(n - ca, c - ca)
        normal /= np.linalg.norm(normal)
        side = atoms[~np.isin(structure.atom_names[atoms], ["N", "CA", "C", "O", "OXT"])]
        mirrored[side] -= 2 * ((mirrored[side] - ca) @ normal)[:, None] * normal
    inverted = lambda y: int((chiral_volumes(y, centres)[0] < 0).sum())  # noqa: E731
    assert inverted(mirrored) >= len(flipped) > 5
    relaxed = relax_structure(structure.with_positions(mirrored[None])).positions[0]
    assert inverted(relaxed) == 0
    assert np.abs(chiral_volumes(relaxed, centres)[0] - volumes).mean() < 0.1
    without = relax_structure(structure.with_positions(mirrored[None]), chiral_weight=0).positions[0]
    assert inverted(without) >= len(flipped)  # the bond and angle terms are blind to handedness


def test_relax_structure_is_equivariant_with_every_term(structure):
    x = structure.positions[0] + np.random.default_rng(5).normal(0.0, 0.4, structure.positions[0].shape)
    q = Rotation.random(random_state=6).as_matrix()
    shift = np.array([-3.0, 40.0, 7.5])
    a = relax_structure(structure.with_positions(x[None])).positions[0]
    b = relax_structure(structure.with_positions((x @ q.T + shift)[None])).positions[0]
    assert np.abs(a @ q.T + shift - b).max() < 1e-8


def _omega_off_trans(x, structure):
    """|180 - |omega|| in degrees for every peptide bond of a structure at positions x."""
    previous = structure_previous(structure)
    def atom(r, name):
        return np.flatnonzero((structure.atom_residues == r) & (structure.atom_names == name))[0]

    off = []
    for r in np.flatnonzero(previous >= 0):
        p0, p1, p2, p3 = (x[atom(*key)] for key in ((previous[r], "CA"), (previous[r], "C"), (r, "N"), (r, "CA")))
        b0, b1, b2 = p0 - p1, (p2 - p1) / np.linalg.norm(p2 - p1), p3 - p2
        v, w = b0 - b0 @ b1 * b1, b2 - b2 @ b1 * b1
        off.append(180 - abs(np.degrees(np.arctan2(np.cross(b1, v) @ w, v @ w))))
    return np.array(off)


def test_peptide_bonds_are_held_planar_and_trans_except_into_proline(structure):
    previous = structure_previous(structure)
    pairs, lengths = bond_graph(structure.residue_names, structure.atom_residues, structure.atom_names, previous,
                                "trans")
    into = structure.atom_residues[pairs[:, 1]]
    n_links = int(((previous >= 0) & (structure.residue_names != "PRO")).sum())
    assert len(pairs) == 2 * n_links and not np.any(structure.residue_names[into] == "PRO")
    assert set(np.round(lengths, 3)) == {t[2] for t in bond_templates()["peptide_trans"]}
    x = structure.positions[0]
    assert _omega_off_trans(x, structure).mean() < 6  # X-ray: nearly planar
    noisy = x + np.random.default_rng(3).normal(0.0, 0.3, x.shape)
    held = _omega_off_trans(relax_structure(structure.with_positions(noisy[None])).positions[0], structure)
    free = _omega_off_trans(relax_structure(structure.with_positions(noisy[None]), trans_weight=0).positions[0],
                            structure)
    assert held.mean() < 6 < free.mean()


def test_close_cysteines_are_bonded_as_disulfides(pdb_files):
    """Hen lysozyme's four disulfides, pulled apart to 2.3-2.8 Å (as the network leaves them), are bonded
    again; a cysteine pair 3.5 Å apart (as around a zinc ion) is not."""
    lysozyme = read_structure(pdb_files / "1AKI.cif.gz")
    names, residues = lysozyme.atom_names, lysozyme.atom_residues
    sulfur = np.flatnonzero(names == "SG")
    x = lysozyme.positions[0].copy()
    distance = np.linalg.norm(x[sulfur][:, None] - x[sulfur][None], axis=-1)
    first, second = np.nonzero(np.triu(distance < 2.5, 1))
    assert len(first) == 4
    templates = bond_templates()
    assert templates["disulfide"][0][:2] == ["SG", "SG"] and 1.98 < templates["disulfide"][0][2] < 2.06
    for k, (a, b) in enumerate(zip(sulfur[first], sulfur[second])):  # stretch each bond along itself
        stretch = 0.35 + 0.15 * k
        direction = (x[b] - x[a]) / np.linalg.norm(x[b] - x[a])
        x[residues == residues[b]] += stretch * direction
    relaxed = relax_structure(lysozyme.with_positions(x[None])).positions[0]
    unbonded = relax_structure(lysozyme.with_positions(x[None]), disulfides=False).positions[0]
    ss = lambda y: np.linalg.norm(y[sulfur[first]] - y[sulfur[second]], axis=-1)  # noqa: E731
    assert np.all(ss(x) > 2.3) and np.all(np.abs(ss(relaxed) - templates["disulfide"][0][2]) < 0.05)
    assert np.all(ss(unbonded) > 2.3)
    contacts = Contacts.of(lysozyme.elements, names, residues, structure_previous(lysozyme))
    assert len(contacts.overlapping(relaxed, CLASH_OVERLAP_A)[0]) == 0
    # a pair 3.5 Å apart stays unbonded
    far = lysozyme.positions[0].copy()
    a, b = sulfur[first[0]], sulfur[second[0]]
    far[residues == residues[b]] += 1.5 * (far[b] - far[a]) / np.linalg.norm(far[b] - far[a])
    bonds, *_ = disulfide_graph(lysozyme.residue_names, residues, names, far)
    assert len(bonds) == 3 and not np.any(np.isin(bonds, [a, b]))


def test_recorded_disulfides_are_bonded_however_far_apart(pdb_files):
    """The input's disulfides (SSBOND records, CYX names) are bonded even where the network puts the SG atoms
    4 Å apart, beyond what the distance alone would bond; without the records they stay apart."""
    import dataclasses

    lysozyme = read_structure(pdb_files / "1AKI.cif.gz")
    assert len(lysozyme.disulfides) == 4  # struct_conn
    names, residues = lysozyme.atom_names, lysozyme.atom_residues
    sg = lambda r: np.flatnonzero((residues == r) & (names == "SG"))[0]  # noqa: E731
    a, b = (sg(r) for r in lysozyme.disulfides[0])
    x = lysozyme.positions[0].copy()
    x[residues == residues[b]] += 2.0 * (x[b] - x[a]) / np.linalg.norm(x[b] - x[a])
    assert np.linalg.norm(x[a] - x[b]) > 3.9
    ideal = bond_templates()["disulfide"][0][2]
    relaxed = relax_structure(lysozyme.with_positions(x)).positions[0]
    assert abs(np.linalg.norm(relaxed[a] - relaxed[b]) - ideal) < 0.05
    unrecorded = relax_structure(dataclasses.replace(lysozyme, disulfides=None).with_positions(x)).positions[0]
    assert np.linalg.norm(unrecorded[a] - unrecorded[b]) > 2.8  # not bonded (the peptide bonds pull it back)
    off = relax_structure(lysozyme.with_positions(x), disulfides=False).positions[0]
    assert np.linalg.norm(off[a] - off[b]) > 2.8
