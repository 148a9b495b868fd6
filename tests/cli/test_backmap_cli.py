"""CLI: gaatool data pdb, train/evaluate backmap, backmap (in-process: exit codes, JSON, one-line errors)."""
from __future__ import annotations

import http.server
import io
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from gaatool.cli.app import main
from gaatool.io.structure import parse_structure, read_structure, write_structure
from gaatool.io.trajectory import write_trajectory
from gaatool.tasks.backmap.coarse_grain import coarse_grain

PDB = Path(__file__).resolve().parents[1] / "files" / "pdb"
TINY = ["--dim", "8", "--translation-rank", "1", "--refine-rank", "1", "--device", "cpu", "--quiet"]


def run(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A dataset and a 1-epoch checkpoint made through the CLI, plus a CG file of 1CKB."""
    folder = tmp_path_factory.mktemp("backmap_cli")
    for args in (["data", "pdb", PDB / "1AJJ.pdb.gz", "--files", PDB / "1CKB.pdb.gz", PDB / "1A8O.cif.gz",
                  "--val-ids", "1CKB", "--test-ids", "1a8o", "-o", folder / "ds.npz", "--quiet"],
                 ["train", "backmap", folder / "ds.npz", "-o", folder / "run", "--epochs", "1", "--batch-size", "16",
                  *TINY]):
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        assert exit_info.value.code == 0
    write_structure(coarse_grain(read_structure(PDB / "1CKB.pdb.gz")), folder / "cg.pdb")
    return folder


def test_data_pdb_json_and_table(capsys, tmp_path):
    out = tmp_path / "ds.npz"
    code, stdout, err = run(capsys, "data", "pdb", "--files", PDB / "1AJJ.pdb.gz", PDB / "3NIR_atoms_only.pdb.gz",
                            PDB / "1CKB.pdb.gz", "--val-fraction", "0.34", "--test-fraction", "0", "--neighbors", 8,
                            "--bead", "com", "-o", out, "--json")
    assert code == 0 and out.is_file() and "reading" in err  # progress on stderr, JSON alone on stdout
    summary = json.loads(stdout)
    assert summary["config"]["bead"] == "com" and summary["config"]["neighbors"] == 8
    assert summary["splits"]["val"]["entries"] == 1 and summary["splits"]["train"]["entries"] == 2
    assert summary["skipped"]["hydrogen atoms"] == 424  # from 3NIR
    code, stdout, err = run(capsys, "data", "pdb", PDB / "1AJJ.pdb.gz", PDB / "1CKB.pdb.gz", "-o",
                            tmp_path / "t.npz", "--val-fraction", "0.5", "--test-fraction", "0")
    assert code == 0 and stdout == ""
    assert "1AJJ" in err and "1CKB" in err and "targets" in err


def test_data_pdb_errors(capsys, tmp_path):
    code, _, err = run(capsys, "data", "pdb", "-o", tmp_path / "x.npz")
    assert code == 1 and "give structure files" in one_line_error(err)
    code, _, err = run(capsys, "data", "pdb", tmp_path / "missing.pdb", "-o", tmp_path / "x.npz")
    assert code == 1 and "no such file" in one_line_error(err)
    code, _, err = run(capsys, "data", "pdb", PDB / "1AJJ.pdb.gz", "--bead", "martini", "-o", tmp_path / "x.npz")
    assert code == 1 and "bead" in one_line_error(err)
    code, _, err = run(capsys, "data", "pdb", PDB / "1AJJ.pdb.gz", "--ids", "not-an-id", "-o", tmp_path / "x.npz")
    assert code == 1 and "not a PDB entry id" in one_line_error(err)
    assert list(tmp_path.iterdir()) == []


def test_data_pdb_ids_from_a_local_mirror(capsys, tmp_path):
    body = (PDB / "1A8O.cif.gz").read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path != "/1A8O.cif.gz":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        mirror = f"http://127.0.0.1:{httpd.server_address[1]}/{{id}}.cif.gz"
        code, stdout, _ = run(capsys, "data", "pdb", PDB / "1AJJ.pdb.gz", "--ids", "1A8O", "--mirror", mirror,
                              "--cache", tmp_path / "cache", "--val-ids", "1A8O", "-o", tmp_path / "d.npz", "--json")
        assert code == 0 and (tmp_path / "cache" / "pdb" / "1A8O.cif.gz").is_file()
        assert {e["entry"]: e["split"] for e in json.loads(stdout)["entries"]} == {"1A8O": "val", "1AJJ": "train"}
        code, _, err = run(capsys, "data", "pdb", "--ids", "2ABC", "--mirror", mirror, "--cache", tmp_path / "cache",
                           "-o", tmp_path / "e.npz", "--quiet")
        assert code == 1 and not (tmp_path / "e.npz").exists()
        assert "HTTP 404" in one_line_error(err) and "pass the file instead of --ids" in err
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_train_and_evaluate(capsys, trained):
    assert (trained / "run" / "best.safetensors").is_file()
    code, stdout, _ = run(capsys, "evaluate", "backmap", trained / "run" / "best.safetensors", trained / "ds.npz",
                          "--device", "cpu", "--json")
    assert code == 0
    result = json.loads(stdout)
    assert result["entries"] == ["1A8O"] and result["split"] == "test" and result["rmsd_a"] > 0
    assert {"intra_residue", "peptide"} <= set(result["bonds"]) and "predicted" in result["clashes"]
    code, stdout, err = run(capsys, "evaluate", "backmap", trained / "run" / "best.safetensors", trained / "ds.npz",
                            "--split", "val", "--device", "cpu")
    assert code == 0 and stdout == "" and "RMSD side chain" in err and "1CKB" in err
    code, _, err = run(capsys, "evaluate", "backmap", trained / "ds.npz", trained / "ds.npz")
    assert code == 1 and one_line_error(err)


def test_train_transformer_json(capsys, trained, tmp_path):
    code, stdout, _ = run(capsys, "train", "backmap", trained / "ds.npz", "-o", tmp_path / "t", "--model",
                          "transformer", "--epochs", "1", "--dim", "8", "--device", "cpu", "--quiet", "--json")
    assert code == 0 and json.loads(stdout)["stop_reason"] == "max_epochs"
    code, _, err = run(capsys, "train", "backmap", trained / "ds.npz", "-o", tmp_path / "u", "--model", "mlp")
    assert code == 1 and "mlp" in one_line_error(err)


def test_backmap_file_to_file(capsys, trained, tmp_path):
    out = tmp_path / "aa.cif"
    code, stdout, err = run(capsys, "backmap", trained / "cg.pdb", "-o", out, "-m",
                            trained / "run" / "best.safetensors", "--device", "cpu")
    assert code == 0 and stdout == "" and "wrote" in err
    atoms = read_structure(out)
    reference = read_structure(PDB / "1CKB.pdb.gz")
    assert atoms.n_residues == reference.n_residues and list(atoms.chain_ids) == list(reference.chain_ids)
    code, stdout, _ = run(capsys, "backmap", trained / "cg.pdb", "-o", tmp_path / "aa.pdb", "-m",
                          trained / "run" / "best.safetensors", "--device", "cpu", "--json")
    summary = json.loads(stdout)
    assert code == 0 and summary["residues"] == 65 and summary["chains"] == 2 and summary["frames"] == 1


def test_backmap_stdin_to_stdout(capsys, trained, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((trained / "cg.pdb").read_bytes())))
    code, stdout, err = run(capsys, "backmap", "-", "-o", "-", "-m", trained / "run" / "best.safetensors",
                            "--device", "cpu")
    assert code == 0 and err == ""
    atoms = parse_structure(stdout, "pdb")
    assert atoms.n_residues == 65 and atoms.n_atoms > 400


def test_backmap_trajectory(capsys, trained, tmp_path):
    cg = read_structure(trained / "cg.pdb", heavy_only=False)
    write_trajectory(tmp_path / "run.xtc", np.stack([cg.positions[0], cg.positions[0] + 2.0, cg.positions[0]]))
    out = tmp_path / "traj.pdb"
    code, _, _ = run(capsys, "backmap", tmp_path / "run.xtc", "--top", trained / "cg.pdb", "--frames", "0:2", "-o",
                     out, "-m", trained / "run" / "best.safetensors", "--device", "cpu", "--quiet")
    assert code == 0
    models = read_structure(out, all_models=True)
    assert models.n_models == 2
    assert np.allclose(models.positions[1] - models.positions[0], 2.0, atol=0.02)  # translation covariance


def test_backmap_errors_leave_no_output(capsys, trained, tmp_path, monkeypatch):
    import gaatool.tasks.pretrained as pretrained

    monkeypatch.setattr(pretrained, "pretrained_dirs", lambda: [tmp_path / "none"])
    out = tmp_path / "out.pdb"
    code, _, err = run(capsys, "backmap", trained / "cg.pdb", "-o", out)
    assert code == 1 and "no pretrained model backmap.safetensors" in one_line_error(err)
    ckpt = trained / "run" / "best.safetensors"
    code, _, err = run(capsys, "backmap", PDB / "1AJJ.pdb.gz", "-o", out, "-m", ckpt)
    assert code == 1 and "one bead per residue" in one_line_error(err)
    broken = tmp_path / "broken.pdb"
    broken.write_text((trained / "cg.pdb").read_text()[:500])  # cut inside an ATOM record
    code, _, err = run(capsys, "backmap", broken, "-o", out, "-m", ckpt)
    assert code == 1 and "broken.pdb" in one_line_error(err)
    code, _, err = run(capsys, "backmap", trained / "cg.pdb", "-o", "-", "-m", ckpt, "--json")
    assert code == 1 and "stdout" in one_line_error(err)
    code, _, err = run(capsys, "backmap", tmp_path / "run.dcd", "-o", out, "-m", ckpt)
    assert code == 1 and one_line_error(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pdb"]
