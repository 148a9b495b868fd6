"""Tests of applying a backmapping checkpoint to coarse-grained structures and trajectories."""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from gaatool.checkpoint import load_model, save_checkpoint
from gaatool.errors import CheckpointError, ConfigError, InputFileError
from gaatool.ga.rotations import random_rotation
from gaatool.io.structure import parse_structure, read_structure, structure_text, write_structure
from gaatool.io.trajectory import write_trajectory
from gaatool.tasks.backmap.coarse_grain import coarse_grain
from gaatool.tasks.backmap.rebuild import (
    backmap_file,
    backmap_structure,
    pretrained_checkpoint,
    read_coarse_grained,
)
from gaatool.tasks.backmap.residues import RESIDUE_ATOMS


@pytest.fixture(scope="module")
def cg_two_chains(pdb_files):
    return coarse_grain(read_structure(pdb_files / "1CKB.pdb.gz"))


@pytest.fixture(scope="module")
def model64(tiny_backmap_checkpoint):
    model, meta = load_model(tiny_backmap_checkpoint, task="backmap")
    return model.double(), meta


def test_atoms_names_chains_and_oxt(cg_two_chains, model64):
    model, meta = model64
    atoms = backmap_structure(cg_two_chains, model, meta["neighbors"])
    assert list(atoms.chain_ids) == list(cg_two_chains.chain_ids)
    assert list(atoms.residue_numbers) == list(cg_two_chains.residue_numbers)
    starts = atoms.residue_starts()
    ends = {int(r[-1]) for _, r in cg_two_chains.chains()}
    for r in range(atoms.n_residues):
        names = list(atoms.atom_names[starts[r]:starts[r + 1]])
        expected = list(RESIDUE_ATOMS[atoms.residue_names[r]]) + (["OXT"] if r in ends else [])
        assert names == expected
    assert set(atoms.elements.tolist()) <= {"C", "N", "O", "S"}
    assert np.isfinite(atoms.positions).all()


def test_rotating_the_input_rotates_the_output(cg_two_chains, model64):
    model, meta = model64
    q = random_rotation(torch.Generator().manual_seed(3)).numpy()
    shift = np.array([5.0, -3.0, 12.0])
    moved = cg_two_chains.with_positions(cg_two_chains.positions[0] @ q.T + shift)
    a = backmap_structure(cg_two_chains, model, meta["neighbors"])
    b = backmap_structure(moved, model, meta["neighbors"])
    assert np.abs(a.positions[0] @ q.T + shift - b.positions[0]).max() < 1e-9


def test_trajectory_frames_become_models(cg_two_chains, tiny_backmap_checkpoint, tmp_path):
    top = tmp_path / "cg.pdb"
    write_structure(cg_two_chains, top)
    q = random_rotation(torch.Generator().manual_seed(1)).numpy()
    frames = np.stack([cg_two_chains.positions[0], cg_two_chains.positions[0] @ q.T])
    traj = write_trajectory(tmp_path / "run.dcd", frames)
    out = tmp_path / "aa.pdb"
    result = backmap_file(traj, out, checkpoint=tiny_backmap_checkpoint, top=top, device="cpu")
    assert result.structure.n_models == 2 and result.to_dict()["frames"] == 2
    back = read_structure(out, all_models=True)
    assert back.positions.shape == (2, result.structure.n_atoms, 3)
    # float32 model and trajectory: the network's second model is the first one rotated, to ~1e-3 Å (relaxing
    # an untrained model's side chains, atoms piled up where rounding decides the way out, can end elsewhere)
    raw = backmap_file(traj, None, checkpoint=tiny_backmap_checkpoint, top=top, device="cpu", relax=False)
    assert np.abs(raw.structure.positions[0] @ q.T - raw.structure.positions[1]).max() < 0.02
    only = backmap_file(traj, None, checkpoint=tiny_backmap_checkpoint, top=top, frames=slice(1, 2), device="cpu")
    assert only.structure.n_models == 1
    with pytest.raises(ConfigError, match="--top"):
        backmap_file(traj, None, checkpoint=tiny_backmap_checkpoint)
    with pytest.raises(ConfigError, match="--top is for"):
        backmap_file(top, None, checkpoint=tiny_backmap_checkpoint, top=top)


def test_stdin_and_stdout(cg_two_chains, tiny_backmap_checkpoint):
    text = structure_text(cg_two_chains, "cif")
    out = io.StringIO()
    result = backmap_file("-", "-", checkpoint=tiny_backmap_checkpoint, stdin=io.BytesIO(gzip.compress(text.encode())),
                          stdout=out, device="cpu")
    back = parse_structure(out.getvalue(), "pdb")
    assert back.n_atoms == result.structure.n_atoms and back.positions.shape[0] == 1
    out = io.StringIO()
    backmap_file("-", "-", checkpoint=tiny_backmap_checkpoint, stdin=io.BytesIO(text.encode()), stdout=out, fmt="cif",
                 device="cpu")
    assert out.getvalue().startswith("data_")


def test_nonstandard_residues_breaks_and_bad_inputs(pdb_files, tiny_backmap_checkpoint, tmp_path):
    structure = read_structure(pdb_files / "1A8O.cif.gz", heavy_only=True)
    cg = coarse_grain(structure)
    text = structure_text(cg, "pdb")
    # put a phosphoserine bead in, as a CG model of a phosphorylated protein would have it
    line = next(l for l in text.splitlines() if l.startswith("ATOM"))
    mse = line[:17] + "SEP" + line[20:22] + " 185" + line[26:]
    path = tmp_path / "cg.pdb"
    path.write_text(text.replace(line, line + "\n" + mse, 1))
    beads, warnings = read_coarse_grained(path)
    assert beads.n_residues == cg.n_residues
    assert any("non-standard amino acid SEP x1" in w for w in warnings)
    assert any("2 chain break(s)" in w and "A/TRP184-A/THR186" in w for w in warnings)
    only_mse = tmp_path / "mse.pdb"
    only_mse.write_text(mse + "\nEND\n")
    with pytest.raises(InputFileError, match="no standard amino-acid residues"):
        backmap_file(only_mse, tmp_path / "out.pdb", checkpoint=tiny_backmap_checkpoint)
    with pytest.raises(InputFileError, match="one bead per residue"):
        backmap_file(pdb_files / "1AJJ.pdb.gz", tmp_path / "out.pdb", checkpoint=tiny_backmap_checkpoint)
    with pytest.raises(ConfigError, match="extension"):
        backmap_file(path, tmp_path / "out.xyz", checkpoint=tiny_backmap_checkpoint)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cg.pdb", "mse.pdb"]  # nothing half-written


def test_force_field_residue_names_are_read_as_standard(pdb_files, tiny_backmap_checkpoint, tmp_path):
    cg = coarse_grain(read_structure(pdb_files / "1A8O.cif.gz"))
    renames = {"HIS": "HSD", "CYS": "CYX", "MET": "MSE", "GLU": "GLH", "LYS": "LYN"}
    lines = []
    for line in structure_text(cg, "pdb").splitlines():
        if line.startswith("ATOM") and line[17:20] in renames:
            line = line[:17] + renames[line[17:20]] + line[20:]
        lines.append(line)
    renamed = tmp_path / "cg_md_names.pdb"
    renamed.write_text("\n".join(lines) + "\n")
    beads, warnings = read_coarse_grained(renamed)
    assert list(beads.residue_names) == list(cg.residue_names)
    assert sum("chain break" in w for w in warnings) == 1  # the protein's own gap, none at renamed residues
    counts = {f"{renames[n]} as {n}": int((cg.residue_names == n).sum()) for n in renames if (cg.residue_names == n).any()}
    assert beads.renamed == counts and len(counts) >= 3
    assert any("read " in w and "force-field names" in w for w in warnings)
    standard = tmp_path / "cg.pdb"
    standard.write_text(structure_text(cg, "pdb"))
    backmap_file(standard, tmp_path / "a.pdb", checkpoint=tiny_backmap_checkpoint)
    backmap_file(renamed, tmp_path / "b.pdb", checkpoint=tiny_backmap_checkpoint)
    a, b = read_structure(tmp_path / "a.pdb"), read_structure(tmp_path / "b.pdb")
    assert list(a.residue_names) == list(b.residue_names) and list(a.atom_names) == list(b.atom_names)
    np.testing.assert_array_equal(a.positions, b.positions)
    # full-atom reading (datasets) keeps its strict rule: force-field names are not standard residues
    assert read_structure(renamed, heavy_only=False).n_residues < cg.n_residues


def test_pretrained_lookup(monkeypatch, tmp_path, tiny_backmap_checkpoint):
    import gaatool.tasks.pretrained as pretrained

    monkeypatch.setattr(pretrained, "pretrained_dirs", lambda: [tmp_path])
    with pytest.raises(CheckpointError, match="--model"):
        pretrained_checkpoint()
    (tmp_path / "backmap.safetensors").write_bytes(tiny_backmap_checkpoint.read_bytes())
    assert pretrained_checkpoint() == tmp_path / "backmap.safetensors"


def test_wrong_task_checkpoint_is_refused(tmp_path, cg_two_chains):
    from gaatool.models.crystal import CrystalClassifier

    model = CrystalClassifier(CrystalClassifier.Config(n_dim=4))
    ckpt = save_checkpoint(tmp_path / "crystal.safetensors", model, {"task": "crystal"})
    cg = tmp_path / "cg.pdb"
    write_structure(cg_two_chains, cg)
    with pytest.raises(CheckpointError, match="backmap"):
        backmap_file(cg, tmp_path / "out.pdb", checkpoint=ckpt)


def test_c_alpha_traces_get_the_ca_model(monkeypatch, tmp_path, tiny_backmap_checkpoint, pdb_files):
    import gaatool.tasks.pretrained as pretrained
    from gaatool.checkpoint import update_metadata

    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setattr(pretrained, "pretrained_dirs", lambda: [folder])
    (folder / "backmap.safetensors").write_bytes(tiny_backmap_checkpoint.read_bytes())
    beads = structure_text(coarse_grain(read_structure(pdb_files / "1CKB.pdb.gz"), "ca"), "pdb")
    trace, other = tmp_path / "trace.pdb", tmp_path / "beads.pdb"
    trace.write_text(beads)  # coarse_grain names C-alpha beads CA
    other.write_text(beads.replace(" CA ", " BB "))
    # no CA model installed: the centroid model, with a warning that says why the atoms will sit off
    result = backmap_file(trace, tmp_path / "a.pdb")
    assert Path(result.checkpoint).name == "backmap.safetensors"
    assert any("beads are C-alpha atoms" in w for w in result.warnings)
    (folder / "backmap-ca.safetensors").write_bytes(tiny_backmap_checkpoint.read_bytes())
    update_metadata(folder / "backmap-ca.safetensors", {"bead": "ca"})
    result = backmap_file(trace, tmp_path / "b.pdb")
    assert Path(result.checkpoint).name == "backmap-ca.safetensors" and not any("C-alpha" in w for w in result.warnings)
    # the spacing of the beads decides, not their names: a C-alpha trace named BB ...
    result = backmap_file(other, tmp_path / "c.pdb")
    assert Path(result.checkpoint).name == "backmap-ca.safetensors"
    assert any("not all named CA but are spaced like C-alpha atoms" in w for w in result.warnings)
    # ... and centroid beads named CA (as tools write them for viewers)
    centroids = tmp_path / "centroids.pdb"
    centroids.write_text(structure_text(coarse_grain(read_structure(pdb_files / "1CKB.pdb.gz")), "pdb")
                         .replace(" BB ", " CA "))
    result = backmap_file(centroids, tmp_path / "d.pdb")
    assert Path(result.checkpoint).name == "backmap.safetensors"
    assert any("named CA but are spaced like residue centroids" in w for w in result.warnings)
    # a model for the other kind of bead, chosen by hand, gets a warning either way
    result = backmap_file(centroids, tmp_path / "e.pdb", checkpoint=folder / "backmap-ca.safetensors")
    assert any("not C-alpha atoms but backmap-ca.safetensors" in w for w in result.warnings)
    result = backmap_file(other, tmp_path / "f.pdb", checkpoint=folder / "backmap.safetensors")
    assert any("are C-alpha atoms but backmap.safetensors" in w for w in result.warnings)


def test_short_bead_chains_are_told_by_their_names(monkeypatch, tmp_path, tiny_backmap_checkpoint, pdb_files):
    """Fewer than 8 peptide-bonded beads say too little: the atom names decide, with a note where those few
    are spaced unlike C-alpha atoms."""
    import gaatool.tasks.pretrained as pretrained
    from gaatool.checkpoint import update_metadata

    monkeypatch.setattr(pretrained, "pretrained_dirs", lambda: [tmp_path])
    (tmp_path / "backmap.safetensors").write_bytes(tiny_backmap_checkpoint.read_bytes())
    (tmp_path / "backmap-ca.safetensors").write_bytes(tiny_backmap_checkpoint.read_bytes())
    update_metadata(tmp_path / "backmap-ca.safetensors", {"bead": "ca"})
    lysozyme = read_structure(pdb_files / "1AKI.cif.gz")
    short = coarse_grain(lysozyme.select_residues(np.arange(lysozyme.n_residues) < 6))
    path = tmp_path / "short.pdb"
    path.write_text(structure_text(short, "pdb").replace(" BB ", " CA "))
    result = backmap_file(path, tmp_path / "out.pdb")
    assert Path(result.checkpoint).name == "backmap-ca.safetensors"
    assert len(result.warnings) == 1 and "named CA, so taken for a C-alpha trace" in result.warnings[0]
    assert "4.59 Å apart" in result.warnings[0]  # the centroids of 1AKI's first six residues
    trace = tmp_path / "trace.pdb"  # six real C-alpha atoms: no note
    trace.write_text(structure_text(coarse_grain(lysozyme.select_residues(np.arange(lysozyme.n_residues) < 6),
                                                 "ca"), "pdb"))
    result = backmap_file(trace, tmp_path / "out_ca.pdb")
    assert Path(result.checkpoint).name == "backmap-ca.safetensors" and not result.warnings


def _renumbered_without(structure, numbers):
    import dataclasses

    cut = structure.select_residues(~np.isin(structure.residue_numbers, numbers))
    return dataclasses.replace(cut, residue_numbers=np.arange(1, cut.n_residues + 1))


def test_chain_breaks_reach_the_relaxation_and_the_output(pdb_files, tiny_backmap_checkpoint, tmp_path):
    """A C-alpha trace with residue 42 left out and the rest renumbered: a break (C-alphas 6.5 Å apart), reported
    with the limit, kept on the atoms (no peptide bond across it when relaxed) and written as a TER record."""
    trace = _renumbered_without(coarse_grain(read_structure(pdb_files / "1AKI.cif.gz"), "ca"), [42])
    path = tmp_path / "trace.pdb"
    write_structure(trace, path)
    _, warnings = read_coarse_grained(path)
    assert any("1 chain break(s)" in w and "more than 4.4 Å apart" in w and "A/GLN41-A/THR42" in w for w in warnings)
    out = tmp_path / "atoms.pdb"
    result = backmap_file(path, out, checkpoint=tiny_backmap_checkpoint)
    atoms = result.structure
    assert atoms.breaks.tolist() == [[40, 41]]
    c = np.flatnonzero((atoms.atom_residues == 40) & (atoms.atom_names == "C"))[0]
    n = np.flatnonzero((atoms.atom_residues == 41) & (atoms.atom_names == "N"))[0]
    bonded = np.flatnonzero((atoms.atom_residues == 41) & (atoms.atom_names == "C"))[0]
    after = np.flatnonzero((atoms.atom_residues == 42) & (atoms.atom_names == "N"))[0]
    x = atoms.positions[0]
    assert abs(np.linalg.norm(x[bonded] - x[after]) - 1.33) < 0.05 and np.linalg.norm(x[c] - x[n]) > 2.0
    lines = out.read_text().splitlines()
    ters = [k for k, line in enumerate(lines) if line.startswith("TER")]
    assert len(ters) == 2 and int(lines[ters[0] - 1][22:26]) == 41 and int(lines[ters[0] + 1][22:26]) == 42
    assert read_structure(out).n_residues == trace.n_residues


def test_disulfides_from_records_and_cyx_names(pdb_files, tiny_backmap_checkpoint, tmp_path):
    """Hen lysozyme's four disulfides reach the relaxation and the output from the bead file's SSBOND records, or
    from its cysteines named CYX, paired by bead distance; what cannot be paired is said."""
    import dataclasses

    from gaatool.tasks.backmap.coarse_grain import bead_disulfides

    beads = coarse_grain(read_structure(pdb_files / "1AKI.cif.gz"))
    expected = beads.disulfides.tolist()
    assert len(expected) == 4  # carried over from the all-atom file's records
    text = structure_text(beads, "pdb")
    recorded, named, one = tmp_path / "recorded.pdb", tmp_path / "named.pdb", tmp_path / "one.pdb"
    recorded.write_text(text)
    atom_lines = [line for line in text.splitlines() if not line.startswith("SSBOND")]
    named.write_text("\n".join(line[:17] + "CYX" + line[20:] if line[17:20] == "CYS" else line
                               for line in atom_lines) + "\n")
    for path in (recorded, named):
        read, warnings = read_coarse_grained(path)
        assert read.disulfides.tolist() == expected
        assert any("4 disulfide(s) between the cysteines named CYX, paired by bead distance" in w
                   for w in warnings) == (path == named)
    result = backmap_file(named, tmp_path / "out.pdb", checkpoint=tiny_backmap_checkpoint)
    atoms = result.structure
    sulfur = [[np.flatnonzero((atoms.atom_residues == r) & (atoms.atom_names == "SG"))[0] for r in pair]
              for pair in expected]
    x = atoms.positions[0]
    assert all(abs(np.linalg.norm(x[a] - x[b]) - 2.02) < 0.1 for a, b in sulfur)  # an untrained model's atoms
    assert sum(line.startswith("SSBOND") for line in (tmp_path / "out.pdb").read_text().splitlines()) == 4
    # a lone CYX has no partner; a recorded pair whose beads are 12 Å apart is not bonded
    first_cys = next(k for k, line in enumerate(atom_lines) if line[17:20] == "CYS")
    one.write_text("\n".join(atom_lines[:first_cys] + [atom_lines[first_cys][:17] + "CYX" + atom_lines[first_cys][20:]]
                             + atom_lines[first_cys + 1:]) + "\n")
    read, warnings = read_coarse_grained(one)
    assert len(read.disulfides) == 0
    assert any("1 cysteine(s) named CYX without such a partner within 7.5 Å (A/CYS6)" in w for w in warnings)
    x = beads.positions.copy()
    x[:, expected[0][1]] += [12.0, 0.0, 0.0]
    pairs, notes = bead_disulfides(beads.with_positions(x))
    assert pairs.tolist() == expected[1:] and len(notes) == 1
    assert "the disulfide A/CYS6-A/CYS127 of the file's records has its beads" in notes[0]
    assert bead_disulfides(dataclasses.replace(beads, disulfides=None))[0].shape == (0, 2)
