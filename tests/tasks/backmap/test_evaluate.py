"""Tests of the backmapping metrics: known answers on real reference structures, and a checkpoint run."""
from __future__ import annotations

import numpy as np
import pytest

from gaatool.data.store import load_dataset
from gaatool.errors import ConfigError, InputFileError
from gaatool.tasks.backmap.evaluate import count_clashes, evaluate_backmap, evaluate_predictions
from gaatool.tasks.backmap.residues import LABELS, RESIDUE_NAMES, is_backbone


@pytest.fixture(scope="module")
def test_split(small_backmap_dataset):
    arrays, _ = load_dataset(small_backmap_dataset)
    return {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("test/")}


def test_reference_scores_perfectly(test_split):
    m = evaluate_predictions(test_split["atom_positions"], test_split)
    assert m["rmsd_a"] == 0 and m["backbone_rmsd_a"] == 0 and m["sidechain_rmsd_a"] == 0
    assert m["bonds"]["intra_residue"]["mean_abs_deviation_a"] == 0
    assert m["bonds"]["intra_residue"]["count"] > m["n_atoms"] * 0.85  # about one bond per heavy atom
    assert m["bonds"]["peptide"]["count"] == 66 - 3  # 1A8O: 66 residues, chain start + two gaps
    assert m["bonds"]["peptide"]["mean_length_a"] == pytest.approx(1.33, abs=0.02)
    assert m["clashes"]["predicted"] == m["clashes"]["reference"]
    assert m["clashes"]["reference"] <= 2  # a good X-ray model hardly clashes
    assert sum(v["residues"] for v in m["per_residue"].values()) == m["n_residues"] == 66
    assert m["chirality"]["inverted"] == 0 and m["chirality"]["centres"] > 0.8 * 66
    assert m["disulfides"]["formed"] == m["disulfides"]["reference"] and m["disulfides"]["spurious"] == 0
    peptide = m["bonds"]["peptide"]
    assert peptide["omega_mean_abs_deviation_deg"] == peptide["reference_omega_mean_abs_deviation_deg"] < 6
    assert peptide["omega_fraction_over_20_deg"] < 0.05


def test_mirror_image_inverts_every_chiral_centre(test_split):
    mirrored = test_split["atom_positions"] * np.array([1.0, 1.0, -1.0])  # relative to the beads: all of it
    m = evaluate_predictions(mirrored, test_split)
    assert m["chirality"]["inverted"] == m["chirality"]["centres"] > 50
    assert m["bonds"]["intra_residue"]["mean_abs_deviation_a"] < 1e-12  # distances alone cannot tell


def test_known_perturbations(test_split):
    labels = test_split["atom_labels"]
    side = ~np.vectorize(lambda i: is_backbone(LABELS[i][1]))(labels) & test_split["atom_mask"]
    moved = test_split["atom_positions"] + side[..., None] * np.array([0.0, 0.6, 0.8])  # side chains 1 Å off
    m = evaluate_predictions(moved, test_split)
    assert m["backbone_rmsd_a"] == 0 and m["sidechain_rmsd_a"] == pytest.approx(1.0)
    assert m["rmsd_a"] == pytest.approx(np.sqrt(side.sum() / test_split["atom_mask"].sum()))
    assert m["per_residue"]["GLY"]["rmsd_a"] == 0
    assert m["bonds"]["intra_residue"]["max_abs_deviation_a"] > 0.3  # CA-CB stretched
    assert m["bonds"]["peptide"]["mean_abs_deviation_a"] == 0
    # collapsing every residue onto its bead makes every bond length zero and no clash between residues
    collapsed = evaluate_predictions(np.zeros_like(test_split["atom_positions"]), test_split)
    assert collapsed["bonds"]["intra_residue"]["mean_abs_deviation_a"] == pytest.approx(
        collapsed["bonds"]["intra_residue"]["rms_deviation_a"], rel=0.2)
    assert collapsed["bonds"]["intra_residue"]["mean_abs_deviation_a"] > 1.3


# the usual table of structure comparisons, written out here rather than taken from the code under test
STANDARD_EQUIVALENT_ATOMS = {"ASP": (("OD1", "OD2"),), "GLU": (("OE1", "OE2"),), "ARG": (("NH1", "NH2"),),
                             "PHE": (("CD1", "CD2"), ("CE1", "CE2")), "TYR": (("CD1", "CD2"), ("CE1", "CE2"))}


def test_swapped_equivalent_atoms_count_only_in_the_plain_rmsd(test_split):
    # a prediction naming OD1 as OD2 (and the PHE/TYR ring atoms the other way round) is the same structure
    labels, mask = test_split["atom_labels"], test_split["atom_mask"]
    names = np.array([atom for _, atom in LABELS])[labels]
    residues = np.array(RESIDUE_NAMES)[test_split["residue_types"]]
    swapped = test_split["atom_positions"].copy()
    flipped = 0
    for row in range(len(residues)):
        for first, second in STANDARD_EQUIVALENT_ATOMS.get(residues[row], ()):
            a, b = np.flatnonzero(names[row] == first), np.flatnonzero(names[row] == second)
            if len(a) and len(b) and mask[row, a[0]] and mask[row, b[0]]:
                swapped[row, [a[0], b[0]]] = swapped[row, [b[0], a[0]]]
                flipped += 1
    assert flipped >= 5
    m = evaluate_predictions(swapped, test_split)
    assert m["rmsd_a"] > 0.1 and m["backbone_rmsd_a"] == 0
    assert m["symmetric"]["rmsd_a"] == 0 and m["symmetric"]["sidechain_rmsd_a"] == 0
    assert 0 < m["symmetric"]["residues_swapped"] <= flipped
    # a residue with only one of its pairs exchanged (CD1/CD2 but not CE1/CE2 of a ring) is not the same
    # structure: swapping both pairs back cannot make it exact
    ring = next(row for row in range(len(residues)) if residues[row] in ("PHE", "TYR")
                and all(mask[row][names[row] == atom].any() for atom in ("CD1", "CD2", "CE1", "CE2")))
    half = test_split["atom_positions"].copy()
    a, b = np.flatnonzero(names[ring] == "CD1")[0], np.flatnonzero(names[ring] == "CD2")[0]
    half[ring, [a, b]] = half[ring, [b, a]]
    assert evaluate_predictions(half, test_split)["symmetric"]["rmsd_a"] > 0
    # and the reference itself needs no swap
    assert evaluate_predictions(test_split["atom_positions"], test_split)["symmetric"]["residues_swapped"] == 0


def test_clash_rules():
    excluded = np.zeros((4, 4), bool)
    pos = np.array([[0.0, 0, 0], [2.7, 0, 0], [10, 0, 0], [12.0, 0, 0]])
    # C-C at 2.7 Å: overlap 0.7 >= 0.6 -> clash; N-O at 2.0 Å: 3.07 - 2.0 - 0.4 = 0.67 -> clash
    assert count_clashes(pos, np.array(["C", "C", "N", "O"]), np.arange(4), excluded) == 2
    assert count_clashes(pos, np.array(["C", "C", "N", "N"]), np.arange(4), excluded) == 2  # N-N 2.0: 0.7
    pos[3, 0] = 12.1  # N-O at 2.1 Å is a hydrogen bond, not a clash
    assert count_clashes(pos, np.array(["C", "C", "N", "O"]), np.arange(4), excluded) == 1
    assert count_clashes(pos, np.array(["C", "C", "N", "O"]), np.array([0, 0, 1, 2]), excluded) == 0
    excluded[0, 1] = excluded[1, 0] = True  # sequence neighbours
    assert count_clashes(pos, np.array(["C", "C", "N", "O"]), np.arange(4), excluded) == 0
    sulfur = np.array([[0.0, 0, 0], [2.05, 0, 0]])
    assert count_clashes(sulfur, np.array(["S", "S"]), np.arange(2), np.zeros((2, 2), bool),
                         np.array([True, True])) == 0
    assert count_clashes(sulfur, np.array(["S", "S"]), np.arange(2), np.zeros((2, 2), bool)) == 1


def test_evaluate_checkpoint(tiny_backmap_checkpoint, small_backmap_dataset):
    result = evaluate_backmap(tiny_backmap_checkpoint, small_backmap_dataset, split="test", device="cpu")
    assert result.entries == ["1A8O"] and result.n_residues == 66 and not result.warnings
    assert 0.3 < result.rmsd_a < 20
    data = result.to_dict()
    assert set(data["per_residue"]) <= {"ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE", "LEU",
                                        "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL"}
    train = evaluate_backmap(tiny_backmap_checkpoint, small_backmap_dataset, split="train", device="cpu")
    assert train.entries == ["1AJJ"] and "used to train" in train.warnings[0]
    with pytest.raises(ConfigError):
        evaluate_backmap(tiny_backmap_checkpoint, small_backmap_dataset, split="holdout")


def test_evaluate_an_all_atom_structure_file(tiny_backmap_checkpoint, small_backmap_dataset, pdb_files):
    """A user's own protein, as a structure file: beads and neighbourhoods as the checkpoint was trained on, every
    residue evaluated; the numbers equal those of a dataset holding the entry as its test split."""
    direct = evaluate_backmap(tiny_backmap_checkpoint, pdb_files / "1A8O.cif.gz", device="cpu")
    via_dataset = evaluate_backmap(tiny_backmap_checkpoint, small_backmap_dataset, split="test", device="cpu")
    assert direct.entries == ["1A8O"] and direct.n_residues == via_dataset.n_residues == 66
    assert direct.rmsd_a == pytest.approx(via_dataset.rmsd_a, rel=1e-9)
    assert direct.dataset == str(pdb_files / "1A8O.cif.gz")
    with pytest.raises(ConfigError, match="a structure file, not a dataset.*leave out --split"):
        evaluate_backmap(tiny_backmap_checkpoint, pdb_files / "1A8O.cif.gz", split="val", device="cpu")


def test_evaluate_refuses_mismatched_dataset(tiny_backmap_checkpoint, pdb_files, tmp_path):
    from gaatool.tasks.backmap.dataset import BackmapDatasetConfig, build_backmap_dataset

    other = tmp_path / "k8.npz"
    build_backmap_dataset([pdb_files / "1AJJ.pdb.gz"], BackmapDatasetConfig(neighbors=8, val_fraction=0,
                                                                           test_fraction=0)).save(other)
    with pytest.raises(InputFileError, match="neighbors=8"):
        evaluate_backmap(tiny_backmap_checkpoint, other, split="train", device="cpu")
    with pytest.raises(InputFileError, match="empty"):
        from gaatool.tasks.backmap.evaluate import evaluate_backmap as run
        build_backmap_dataset([pdb_files / "1AJJ.pdb.gz"], BackmapDatasetConfig(val_fraction=0,
                                                                               test_fraction=0)).save(other)
        run(tiny_backmap_checkpoint, other, split="test", device="cpu")


def test_evaluate_refuses_a_coarse_grained_file(tiny_backmap_checkpoint, pdb_files, tmp_path):
    # a bead file has no heavy atoms to score against: it crashed on an inconsistent atom index before
    from gaatool.tasks.backmap.coarse_grain import coarse_grain_file

    coarse_grain_file(pdb_files / "1CKB.pdb.gz", tmp_path / "cg.pdb")
    with pytest.raises(InputFileError, match="one atom per residue, a coarse-grained structure"):
        evaluate_backmap(tiny_backmap_checkpoint, tmp_path / "cg.pdb", device="cpu")


def test_selenomethionine_is_a_complete_methionine(pdb_files, tmp_path):
    from gaatool.tasks.backmap.coarse_grain import coarse_grain_file

    beads, warnings = coarse_grain_file(pdb_files / "1A8O.cif.gz", tmp_path / "cg.pdb")
    assert not any("lack heavy atoms" in w for w in warnings), warnings
    assert int((beads.residue_names == "MET").sum()) >= 4  # the four MSE residues, read as MET
