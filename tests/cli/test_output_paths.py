"""Output paths: a folder, a path inside a file, or the input itself is a one-line error before any work,
and the input is left as it was."""
from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def structure(tmp_path, pdb_files):
    path = tmp_path / "1CKB.pdb"
    import gzip

    path.write_bytes(gzip.decompress((pdb_files / "1CKB.pdb.gz").read_bytes()))
    return path


def test_an_output_that_is_the_input_is_refused(cli, tmp_path, structure, md17_50):
    before = structure.read_bytes()
    assert "also the input" in cli("coarse-grain", structure, "-o", structure).one_line_error()
    assert "also the input" in cli("coarse-grain", structure, "-o", tmp_path / "." / structure.name).one_line_error()
    assert structure.read_bytes() == before
    beads = tmp_path / "cg.pdb"
    assert cli("coarse-grain", structure, "-o", beads, "--quiet").code == 0
    cg = beads.read_bytes()
    assert "also the input" in cli("backmap", beads, "-o", beads, "--device", "cpu").one_line_error()
    assert beads.read_bytes() == cg
    source = tmp_path / "ethanol.npz"
    shutil.copy(md17_50, source)
    raw = source.read_bytes()
    error = cli("data", "md17", "--molecule", "ethanol", "--from", source, "--n-train", "10", "--n-val", "5",
                "--n-test", "5", "-o", source).one_line_error()
    assert "also the input" in error and source.read_bytes() == raw


def test_unusable_output_paths_are_one_line_errors(cli, tmp_path, structure):
    (tmp_path / "folder.pdb").mkdir()
    (tmp_path / "file").write_text("x")
    assert "is a folder" in cli("coarse-grain", structure, "-o", tmp_path / "folder.pdb").one_line_error()
    assert "is a file, not a folder" in cli("coarse-grain", structure, "-o", tmp_path / "file" / "cg.pdb"
                                            ).one_line_error()
    assert "is a folder" in cli("data", "crystals", "-o", tmp_path / "folder.pdb").one_line_error()


def test_identify_keeps_its_input(cli, tmp_path):
    from pathlib import Path

    metals = Path(__file__).resolve().parents[2] / "docs" / "examples" / "metals.gsd"
    trajectory = tmp_path / "metals.gsd"
    shutil.copy(metals, trajectory)
    before = trajectory.read_bytes()
    assert "also the input" in cli("identify", trajectory, "-o", trajectory, "--frames", "0").one_line_error()
    assert trajectory.read_bytes() == before
    (tmp_path / "labels.npz").mkdir()
    assert "is a folder" in cli("identify", trajectory, "-o", tmp_path / "labels.npz").one_line_error()
