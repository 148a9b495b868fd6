"""CLI: gaatool data pdb, train/evaluate backmap, backmap (in-process: exit codes, JSON, one-line errors)."""
from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest

from gaatool.io.structure import parse_structure, read_structure, write_structure
from gaatool.io.trajectory import write_trajectory
from gaatool.tasks.backmap.coarse_grain import coarse_grain

TINY = ["--dim", "8", "--translation-rank", "1", "--refine-rank", "1", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cli_exit_code, pdb_files):
    """A dataset and a 1-epoch checkpoint made through the CLI, plus a CG file of 1CKB."""
    folder = tmp_path_factory.mktemp("backmap_cli")
    assert cli_exit_code("data", "pdb", pdb_files / "1AJJ.pdb.gz", "--files", pdb_files / "1CKB.pdb.gz",
                         pdb_files / "1A8O.cif.gz", "--val-ids", "1CKB", "--test-ids", "1a8o", "-o", folder / "ds.npz",
                         "--quiet") == 0
    assert cli_exit_code("train", "backmap", folder / "ds.npz", "-o", folder / "run", "--epochs", "1",
                         "--batch-size", "16", *TINY) == 0
    write_structure(coarse_grain(read_structure(pdb_files / "1CKB.pdb.gz")), folder / "cg.pdb")
    return folder


def test_data_pdb_json_and_table(cli, tmp_path, pdb_files):
    out = tmp_path / "ds.npz"
    code, stdout, err = cli("data", "pdb", "--files", pdb_files / "1AJJ.pdb.gz", pdb_files / "3NIR_atoms_only.pdb.gz",
                            pdb_files / "1CKB.pdb.gz", "--val-fraction", "0.34", "--test-fraction", "0",
                            "--neighbors", 8, "--bead", "com", "-o", out, "--json")
    assert code == 0 and out.is_file() and "reading" in err  # progress on stderr, JSON alone on stdout
    summary = json.loads(stdout)
    assert summary["config"]["bead"] == "com" and summary["config"]["neighbors"] == 8
    assert summary["splits"]["val"]["entries"] == 1 and summary["splits"]["train"]["entries"] == 2
    assert summary["skipped"]["hydrogen atoms"] == 424  # from 3NIR
    code, stdout, err = cli("data", "pdb", pdb_files / "1AJJ.pdb.gz", pdb_files / "1CKB.pdb.gz", "-o",
                            tmp_path / "t.npz", "--val-fraction", "0.5", "--test-fraction", "0")
    assert code == 0 and stdout == ""
    assert "1AJJ" in err and "1CKB" in err and "targets" in err


def test_data_pdb_errors(cli, tmp_path, pdb_files):
    assert "give structure files" in cli("data", "pdb", "-o", tmp_path / "x.npz").one_line_error()
    assert "no such file" in cli("data", "pdb", tmp_path / "missing.pdb", "-o", tmp_path / "x.npz").one_line_error()
    result = cli("data", "pdb", pdb_files / "1AJJ.pdb.gz", "--bead", "martini", "-o", tmp_path / "x.npz")
    assert "bead" in result.one_line_error()
    result = cli("data", "pdb", pdb_files / "1AJJ.pdb.gz", "--ids", "not-an-id", "-o", tmp_path / "x.npz")
    assert "not a PDB entry id" in result.one_line_error()
    result = cli("data", "pdb", pdb_files / "1AJJ.pdb.gz", "--neighbors", "100000", "-o", tmp_path / "x.npz")
    assert "neighbors must be from 1 to 256, got 100000" in result.one_line_error()
    assert list(tmp_path.iterdir()) == []


def test_data_pdb_ids_from_a_local_mirror(cli, tmp_path, pdb_files, http_server):
    http_server.routes["/1A8O.cif.gz"] = (pdb_files / "1A8O.cif.gz").read_bytes()
    mirror = http_server.url("/{id}.cif.gz")
    code, stdout, _ = cli("data", "pdb", pdb_files / "1AJJ.pdb.gz", "--ids", "1A8O", "--mirror", mirror,
                          "--cache", tmp_path / "cache", "--val-ids", "1A8O", "-o", tmp_path / "d.npz", "--json")
    assert code == 0 and (tmp_path / "cache" / "pdb" / "1A8O.cif.gz").is_file()
    assert {e["entry"]: e["split"] for e in json.loads(stdout)["entries"]} == {"1A8O": "val", "1AJJ": "train"}
    result = cli("data", "pdb", "--ids", "2ABC", "--mirror", mirror, "--cache", tmp_path / "cache",
                 "-o", tmp_path / "e.npz", "--quiet")
    assert "HTTP 404" in result.one_line_error() and "pass the file instead of --ids" in result.err
    assert not (tmp_path / "e.npz").exists()


def test_train_and_evaluate(cli, trained):
    assert (trained / "run" / "best.safetensors").is_file()
    code, stdout, _ = cli("evaluate", "backmap", trained / "run" / "best.safetensors", trained / "ds.npz",
                          "--device", "cpu", "--json")
    assert code == 0
    result = json.loads(stdout)
    assert result["entries"] == ["1A8O"] and result["split"] == "test" and result["rmsd_a"] > 0
    assert {"intra_residue", "peptide"} <= set(result["bonds"]) and "predicted" in result["clashes"]
    code, stdout, err = cli("evaluate", "backmap", trained / "run" / "best.safetensors", trained / "ds.npz",
                            "--split", "val", "--device", "cpu")
    assert code == 0 and stdout == "" and "RMSD side chain" in err and "1CKB" in err
    assert cli("evaluate", "backmap", trained / "ds.npz", trained / "ds.npz").one_line_error()
    for split in ("test", "val"):  # a missing file is missing, not "a structure file" given a --split
        assert "missing.npz: no such file" in cli("evaluate", "backmap", trained / "run" / "best.safetensors",
                                                  trained / "missing.npz", "--split", split).one_line_error()


def test_train_transformer_json(cli, trained, tmp_path):
    code, stdout, _ = cli("train", "backmap", trained / "ds.npz", "-o", tmp_path / "t", "--model",
                          "transformer", "--epochs", "1", "--dim", "8", "--device", "cpu", "--quiet", "--json")
    assert code == 0 and json.loads(stdout)["stop_reason"] == "max_epochs"
    result = cli("train", "backmap", trained / "ds.npz", "-o", tmp_path / "u", "--model", "mlp")
    assert "mlp" in result.one_line_error()


def test_backmap_file_to_file(cli, trained, tmp_path, pdb_files):
    out = tmp_path / "aa.cif"
    code, stdout, err = cli("backmap", trained / "cg.pdb", "-o", out, "-m",
                            trained / "run" / "best.safetensors", "--device", "cpu")
    assert code == 0 and stdout == "" and "wrote" in err
    atoms = read_structure(out)
    reference = read_structure(pdb_files / "1CKB.pdb.gz")
    assert atoms.n_residues == reference.n_residues and list(atoms.chain_ids) == list(reference.chain_ids)
    code, stdout, _ = cli("backmap", trained / "cg.pdb", "-o", tmp_path / "aa.pdb", "-m",
                          trained / "run" / "best.safetensors", "--device", "cpu", "--json")
    summary = json.loads(stdout)
    assert code == 0 and summary["residues"] == 65 and summary["chains"] == 2 and summary["frames"] == 1


def test_backmap_stdin_to_stdout(cli, trained, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((trained / "cg.pdb").read_bytes())))
    code, stdout, err = cli("backmap", "-", "-o", "-", "-m", trained / "run" / "best.safetensors",
                            "--device", "cpu")
    assert code == 0 and err == ""
    atoms = parse_structure(stdout, "pdb")
    assert atoms.n_residues == 65 and atoms.n_atoms > 400


def test_backmap_trajectory(cli, trained, tmp_path):
    cg = read_structure(trained / "cg.pdb", heavy_only=False)
    write_trajectory(tmp_path / "run.xtc", np.stack([cg.positions[0], cg.positions[0] + 2.0, cg.positions[0]]))
    out = tmp_path / "traj.pdb"
    # the network's output: the relaxation is a local minimisation, and from this untrained model's atoms
    # (piled near their beads) the .xtc's 0.01 Å rounding can lead it to another minimum
    code, _, _ = cli("backmap", tmp_path / "run.xtc", "--top", trained / "cg.pdb", "--frames", "0:2", "-o",
                     out, "-m", trained / "run" / "best.safetensors", "--device", "cpu", "--quiet", "--no-relax")
    assert code == 0
    models = read_structure(out, all_models=True)
    assert models.n_models == 2
    assert np.allclose(models.positions[1] - models.positions[0], 2.0, atol=0.02)  # translation covariance
    relaxed = tmp_path / "traj_relaxed.pdb"
    assert cli("backmap", tmp_path / "run.xtc", "--top", trained / "cg.pdb", "--frames", "0:2", "-o", relaxed,
               "-m", trained / "run" / "best.safetensors", "--device", "cpu", "--quiet")[0] == 0
    assert read_structure(relaxed, all_models=True).n_models == 2  # every frame relaxed
    # GROMACS: the same beads as a .gro topology of the .xtc
    import mdtraj

    gro = tmp_path / "cg.gro"
    mdtraj.load(str(trained / "cg.pdb")).save_gro(str(gro))
    out_gro = tmp_path / "traj_gro.pdb"
    code, _, err = cli("backmap", tmp_path / "run.xtc", "--top", gro, "--frames", "0:2", "-o", out_gro,
                       "-m", trained / "run" / "best.safetensors", "--device", "cpu", "--quiet")
    assert code == 0, err
    from_gro = read_structure(out_gro, all_models=True)
    assert list(from_gro.residue_names) == list(models.residue_names) and from_gro.n_models == 2


def test_backmap_errors_leave_no_output(cli, trained, tmp_path, monkeypatch, pdb_files):
    import gaatool.tasks.pretrained as pretrained

    monkeypatch.setattr(pretrained, "pretrained_dirs", lambda: [tmp_path / "none"])
    out = tmp_path / "out.pdb"
    assert "no pretrained model backmap.safetensors" in cli("backmap", trained / "cg.pdb", "-o", out).one_line_error()
    ckpt = trained / "run" / "best.safetensors"
    result = cli("backmap", pdb_files / "1AJJ.pdb.gz", "-o", out, "-m", ckpt)
    assert "one bead per residue" in result.one_line_error()
    broken = tmp_path / "broken.pdb"
    broken.write_text((trained / "cg.pdb").read_text()[:500])  # cut inside an ATOM record
    assert "broken.pdb" in cli("backmap", broken, "-o", out, "-m", ckpt).one_line_error()
    assert "stdout" in cli("backmap", trained / "cg.pdb", "-o", "-", "-m", ckpt, "--json").one_line_error()
    assert cli("backmap", tmp_path / "run.dcd", "-o", out, "-m", ckpt).one_line_error()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pdb"]


def test_sequence_offsets_model_end_to_end(cli, trained, tmp_path):
    run = tmp_path / "seq"
    code, out, err = cli("train", "backmap", trained / "ds.npz", "-o", run, "--epochs", "1", "--batch-size", "16",
                         "--sequence-offsets", "3", *TINY)
    assert code == 0, err
    code, out, err = cli("info", run / "best.safetensors", "--json")
    assert json.loads(out)["metadata"]["model"]["config"]["sequence_offsets"] == 3
    code, out, err = cli("evaluate", "backmap", run / "best.safetensors", trained / "ds.npz", "--json", "--device", "cpu")
    assert code == 0 and json.loads(out)["rmsd_a"] > 0
    a, b = tmp_path / "a.pdb", tmp_path / "b.pdb"
    assert cli("backmap", trained / "cg.pdb", "-m", run / "best.safetensors", "-o", a, "--device", "cpu").code == 0
    # the same beads with every residue number spread apart: no sequence neighbours, another prediction
    lines = [line[:22] + f"{3 * int(line[22:26]):4d}" + line[26:] if line.startswith("ATOM") else line
             for line in (trained / "cg.pdb").read_text().splitlines()]
    (tmp_path / "spread.pdb").write_text("\n".join(lines) + "\n")
    assert cli("backmap", tmp_path / "spread.pdb", "-m", run / "best.safetensors", "-o", b, "--device", "cpu").code == 0
    assert np.abs(read_structure(a).positions - read_structure(b).positions).max() > 1e-3
    error = cli("train", "backmap", trained / "ds.npz", "-o", tmp_path / "t", "--model", "transformer",
                "--sequence-offsets", "2").one_line_error()
    assert "transformer" in error


def test_coarse_grain_then_backmap(cli, trained, tmp_path, pdb_files):
    """`gaatool coarse-grain` makes the one-bead-per-residue file that `gaatool backmap` reads, from every model."""
    source = pdb_files / "1CKB.pdb.gz"
    reference = read_structure(source)
    beads = tmp_path / "cg.cif"
    result = cli("coarse-grain", source, "-o", beads)
    assert result.code == 0 and "wrote" in result.err and "beads" in result.err
    cg = read_structure(beads, heavy_only=False)
    assert cg.n_residues == cg.n_atoms == reference.n_residues and set(cg.atom_names) == {"BB"}
    assert np.allclose(cg.positions, coarse_grain(reference).positions, atol=1e-3)
    assert cli("backmap", beads, "-o", tmp_path / "aa.pdb", "-m", trained / "run" / "best.safetensors",
               "--device", "cpu", "--quiet").code == 0
    assert read_structure(tmp_path / "aa.pdb").n_residues == reference.n_residues
    # C-alpha traces are named CA (what backmap's model choice looks for), to stdout as PDB
    result = cli("coarse-grain", source, "-o", "-", "--bead", "ca", "--quiet")
    assert result.code == 0 and result.err == ""
    trace = parse_structure(result.out, "pdb")
    assert set(trace.atom_names) == {"CA"}
    ca = reference.atom_names == "CA"
    assert np.allclose(trace.positions[0], reference.positions[0][ca], atol=1e-3)
    # every model of an ensemble
    two = tmp_path / "two.pdb"
    write_structure(reference.with_positions(np.stack([reference.positions[0], reference.positions[0] + 1.0])), two)
    assert cli("coarse-grain", two, "-o", tmp_path / "two_cg.pdb", "--quiet").code == 0
    assert read_structure(tmp_path / "two_cg.pdb", all_models=True, heavy_only=False).n_models == 2



def test_coarse_grain_warns_of_incomplete_residues(cli, tmp_path, pdb_files):
    """Beads of residues that lack atoms sit off where complete residues put them: said, not silently written."""
    import dataclasses

    reference = read_structure(pdb_files / "1CKB.pdb.gz")
    backbone = np.isin(reference.atom_names, ["N", "CA", "C", "O", "CB"])
    cut = (reference.residue_numbers[reference.atom_residues] < 10) & ~backbone
    trimmed = dataclasses.replace(reference.select_residues(np.ones(reference.n_residues, bool)),
                                  atom_names=reference.atom_names[~cut], elements=reference.elements[~cut],
                                  atom_residues=reference.atom_residues[~cut], positions=reference.positions[:, ~cut],
                                  file_atom_index=None)
    write_structure(trimmed, tmp_path / "trimmed.pdb")
    result = cli("coarse-grain", tmp_path / "trimmed.pdb", "-o", tmp_path / "cg.pdb")
    assert result.code == 0 and "residue(s) lack heavy atoms" in result.err
    assert "2 residue(s) lack" in cli("coarse-grain", pdb_files / "1CKB.pdb.gz", "-o", tmp_path / "as_is.pdb").err
    assert cli("coarse-grain", pdb_files / "1AKI.cif.gz", "-o", tmp_path / "full.pdb").err.count("warning") == 0
    ca = reference.atom_names == "CA"
    write_structure(dataclasses.replace(trimmed, atom_names=reference.atom_names[ca], elements=reference.elements[ca],
                                        atom_residues=reference.atom_residues[ca],
                                        positions=reference.positions[:, ca]), tmp_path / "ca.pdb")
    result = cli("coarse-grain", tmp_path / "ca.pdb", "-o", tmp_path / "cg_ca.pdb")
    assert result.code == 0 and "--bead ca" in result.err
    assert cli("coarse-grain", tmp_path / "ca.pdb", "-o", tmp_path / "ca2.pdb", "--bead", "ca").err.count("warning") == 0

def test_coarse_grain_bad_input(cli, tmp_path, pdb_files):
    out = tmp_path / "cg.pdb"
    assert "no such file" in cli("coarse-grain", tmp_path / "missing.pdb", "-o", out).one_line_error()
    assert "bead kind" in cli("coarse-grain", pdb_files / "1CKB.pdb.gz", "-o", out, "--bead", "x").one_line_error()
    assert "format" in cli("coarse-grain", pdb_files / "1CKB.pdb.gz", "-o", tmp_path / "cg.xyz").one_line_error()
    (tmp_path / "junk.pdb").write_text("not a structure\n")
    cli("coarse-grain", tmp_path / "junk.pdb", "-o", out).one_line_error()
    assert not out.exists()
    # an all-atom file given to backmap points to coarse-grain
    assert "gaatool coarse-grain" in cli("backmap", pdb_files / "1CKB.pdb.gz", "-o", out).one_line_error()


def test_without_o_the_output_is_named_after_the_input(cli, trained, tmp_path, pdb_files, monkeypatch):
    """`gaatool backmap cg.pdb` (as the docs show it) and `gaatool coarse-grain 1abc.cif` work without -o: the
    output goes to <input name>_backmapped.pdb / _cg.cif in the current folder."""
    monkeypatch.chdir(tmp_path)
    result = cli("coarse-grain", pdb_files / "1CKB.pdb.gz", "--quiet")
    assert result.code == 0 and (tmp_path / "1CKB_cg.pdb").exists()
    result = cli("backmap", "1CKB_cg.pdb", "-m", trained / "run" / "best.safetensors", "--device", "cpu")
    assert result.code == 0 and "wrote 1CKB_cg_backmapped.pdb" in result.err
    assert read_structure(tmp_path / "1CKB_cg_backmapped.pdb").n_residues == 65
    assert cli("coarse-grain", pdb_files / "1AKI.cif.gz", "--quiet").code == 0 and (tmp_path / "1AKI_cg.cif").exists()
    assert cli("coarse-grain", pdb_files / "1AKI.cif.gz", "--format", "pdb", "--quiet").code == 0
    assert (tmp_path / "1AKI_cg.pdb").exists()
