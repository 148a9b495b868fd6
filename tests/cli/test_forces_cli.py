"""CLI: gaatool data md17, train/evaluate/predict forces (in-process, exit codes, JSON, one-line errors)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from gaatool.io.xyz import read_xyz

TINY = ["--dim", "8", "--blocks", "1", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cli_exit_code, md17_50):
    """A dataset and a 1-epoch checkpoint made through the CLI."""
    folder = tmp_path_factory.mktemp("cli")
    assert cli_exit_code("data", "md17", "--molecule", "ethanol", "--from", md17_50, "--n-train", "16", "--n-val",
                         "8", "--n-test", "8", "-o", folder / "ds.npz", "--json") == 0
    assert cli_exit_code("train", "forces", "--data", folder / "ds.npz", "-o", folder / "run", "--epochs", "1",
                         "--batch-size", "8", *TINY) == 0
    return folder


def test_data_md17(cli, tmp_path, md17_50):
    out = tmp_path / "ds.npz"
    code, stdout, _ = cli("data", "md17", "--molecule", "ethanol", "--from", md17_50, "--n-train", 20,
                          "--n-val", 10, "--n-test", 10, "--seed", 3, "-o", out, "--json")
    assert code == 0 and out.is_file()
    summary = json.loads(stdout)
    assert summary["formula"] == "C2H6O" and summary["splits"]["train"]["n_frames"] == 20
    assert summary["split"]["seed"] == 3 and summary["fingerprint_verified"] is True
    assert summary["units"]["forces"] == "kcal/mol/angstrom"
    code, stdout, err = cli("data", "md17", "--molecule", "ethanol", "--from", md17_50, "--n-train", 20,
                            "--n-val", 10, "--n-test", 10, "-o", tmp_path / "table.npz")
    assert code == 0 and stdout == ""
    assert "force RMS (meV/Å)" in err and "train" in err and "C2H6O" in err


def test_data_md17_errors(cli, tmp_path, monkeypatch, md17_50):
    monkeypatch.chdir(tmp_path)
    result = cli("data", "md17", "--molecule", "water", "--from", md17_50)
    assert "unknown MD17 molecule 'water'" in result.one_line_error() and result.out == ""
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(md17_50.read_bytes()[:3000])
    result = cli("data", "md17", "--molecule", "ethanol", "--from", corrupt, "-o", tmp_path / "o.npz")
    assert "corrupt.npz" in result.one_line_error()
    result = cli("data", "md17", "--molecule", "ethanol", "--from", md17_50, "-o", tmp_path / "o.npz")
    assert "needs 3000 frames" in result.one_line_error()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.npz"]  # nothing half-written


def test_train_forces_from_cached_molecule(cli, tmp_path, md17_50):
    # The md17 fixture carries a valid embedded fingerprint, so a cache holding it verifies offline.
    cache = tmp_path / "cache"
    (cache / "md17").mkdir(parents=True)
    shutil.copy(md17_50, cache / "md17" / "md17_ethanol.npz")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"data": {"n_train": 12, "n_val": 6, "n_test": 6},
                                  "train": {"lr_patience": 5}}))
    code, stdout, _ = cli("train", "forces", "--molecule", "ethanol", "--cache", cache, "--config", config,
                          "-o", tmp_path / "run", "--epochs", 2, "--batch-size", 6, "--energy-weight", 0.1, "--json",
                          *TINY)
    assert code == 0, stdout
    result = json.loads(stdout)
    assert result["epoch"] == 2 and result["dataset"] == str(tmp_path / "run" / "dataset.npz")
    assert "val_energy_mae_mev" in result["history"][-1]
    code, stdout, _ = cli("info", tmp_path / "run" / "best.safetensors", "--json")
    meta = json.loads(stdout)["metadata"]
    assert meta["train"]["lr_patience"] == 5 and meta["train"]["lr_factor"] == 0.8  # paper schedule + override
    assert meta["energy_trained"] is True and meta["data"]["split"]["n_train"] == 12
    assert meta["data"]["provenance"]["source"] == "download"  # from the cache, not a --from file


def test_train_forces_errors(cli, tmp_path, trained):
    result = cli("train", "forces", "--molecule", "ethanol", "--data", trained / "ds.npz", *TINY)
    assert "exactly one of --molecule" in result.one_line_error()
    result = cli("train", "forces", "--data", trained / "ds.npz", "-o", trained / "run", *TINY)
    assert "already holds a training run" in result.one_line_error()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"width": 3}}))
    result = cli("train", "forces", "--data", trained / "ds.npz", "--config", bad, "-o", tmp_path / "r", *TINY)
    assert "unknown keys ['width']" in result.one_line_error()
    assert not (tmp_path / "r").exists()


def test_evaluate_forces(cli, trained, tmp_path):
    plot = tmp_path / "parity.png"
    code, stdout, _ = cli("evaluate", "forces", trained / "run" / "best.safetensors", trained / "ds.npz",
                          "--plot", plot, "--device", "cpu", "--json")
    assert code == 0 and plot.read_bytes()[:4] == b"\x89PNG"
    result = json.loads(stdout)
    assert result["n_frames"] == 8 and result["energy_trained"] is False and result["force_mae_mev_per_a"] > 0
    code, stdout, err = cli("evaluate", "forces", trained / "run" / "best.safetensors", trained / "ds.npz",
                            "--split", "val", "--device", "cpu")
    assert code == 0 and stdout == "" and "force MAE per component (meV/Å)" in err and "no (offset fitted" in err
    assert "ds.npz" in cli("evaluate", "forces", trained / "ds.npz", trained / "ds.npz").one_line_error()
    assert "note: the model was trained" not in err  # the same molecule


def test_evaluate_forces_notes_another_molecule(cli, trained):
    from gaatool.tasks.pretrained import pretrained_path

    code, stdout, err = cli("evaluate", "forces", pretrained_path("forces-aspirin.safetensors"), trained / "ds.npz",
                            "--device", "cpu")
    assert code == 0 and "note: the model was trained on C9H8O4; predictions for other molecules are " \
                          "extrapolations" in err.replace("\n", " ")


def test_resume_refuses_another_energy_weight_or_dataset(cli, tmp_path, trained, md17_50):
    run = tmp_path / "run"
    assert cli("train", "forces", "--data", trained / "ds.npz", "-o", run, "--epochs", "1", "--batch-size", "8",
               *TINY).code == 0
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    resume = ["-o", run, "--epochs", "2", "--batch-size", "8", "--resume", *TINY]
    error = cli("train", "forces", "--data", trained / "ds.npz", *resume, "--energy-weight", "1").one_line_error()
    assert "energy_weight: checkpoint 0.0, now 1.0" in error
    assert cli("data", "md17", "--molecule", "ethanol", "--from", md17_50, "--n-train", "16", "--n-val", "8",
               "--n-test", "8", "--seed", "1", "-o", tmp_path / "other.npz", "--json").code == 0
    error = cli("train", "forces", "--data", tmp_path / "other.npz", *resume).one_line_error()
    assert "was trained on other data" in error and "ds.npz" in error
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before  # refused before writing


def test_predict_forces(cli, trained, tmp_path, extxyz):
    model = trained / "run" / "best.safetensors"
    out = tmp_path / "out.xyz"
    code, stdout, _ = cli("predict", "forces", extxyz, "-m", model, "-o", out, "--device", "cpu", "--json")
    assert code == 0
    summary = json.loads(stdout)
    frames = read_xyz(out)
    assert summary["n_frames"] == len(frames) == 5 and summary["energy_unit"] == "kcal/mol"
    assert frames[0].arrays["forces"].shape == (9, 3)
    code, stdout, _ = cli("predict", "forces", out, "-m", model, "-o", "-", "--frames", "1:3", "--device", "cpu")
    assert code == 0
    assert stdout.splitlines()[0] == "9" and "energy=" in stdout.splitlines()[1]
    assert stdout.count("forces:R:3") == 2
    code, _, _ = cli("predict", "forces", out, "-m", model, "-o", tmp_path / "out.npz", "--device", "cpu")
    with np.load(tmp_path / "out.npz", allow_pickle=False) as npz:
        assert code == 0 and npz["forces"].shape == (5, 9, 3)


def test_predict_forces_without_o_names_the_output_after_the_input(cli, trained, tmp_path, extxyz, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("predict", "forces", extxyz, "-m", trained / "run" / "best.safetensors", "--device", "cpu")
    written = tmp_path / f"{extxyz.name.rpartition('.')[0]}_forces.extxyz"
    assert result.code == 0 and f"wrote {written.name}" in result.err
    assert len(read_xyz(written)) == 5


def test_predict_forces_errors(cli, trained, tmp_path, extxyz):
    model = trained / "run" / "best.safetensors"
    wrong = tmp_path / "wrong.xyz"
    wrong.write_text("3\nammonia-ish\nN 0 0 0\nH 1 0 0\nH 0 1 0\n")
    out = tmp_path / "out.xyz"
    result = cli("predict", "forces", wrong, "-m", model, "-o", out, "--device", "cpu")
    assert result.out == ""
    assert "wrong.xyz: frame 0: atom 1 is N, but the model knows only H, C, O" in result.one_line_error()
    corrupt = tmp_path / "corrupt.xyz"
    corrupt.write_text("9\nenergy=1\nC 0 0\n")
    result = cli("predict", "forces", corrupt, "-m", model, "-o", out, "--device", "cpu")
    assert "corrupt.xyz" in result.one_line_error()
    assert "--json" in cli("predict", "forces", extxyz, "-m", model, "-o", "-", "--json").one_line_error()
    assert "'a:b'" in cli("predict", "forces", extxyz, "-m", model, "-o", out, "--frames", "a:b").one_line_error()
    assert "--compile must be one of" in cli("predict", "forces", extxyz, "-m", model, "-o", out,
                                             "--compile", "always").one_line_error()
    assert not out.exists()


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_predict_forces_refuses_non_finite_xyz_positions(cli, tmp_path, extxyz, bad):
    """A NaN in an XYZ gave NaN forces and exit code 0 (the npz reader already refused it)."""
    from gaatool.tasks.pretrained import pretrained_path

    lines = extxyz.read_text().splitlines(keepends=True)
    n = int(lines[0])
    second = 1 * (n + 2) + 2 + 4  # frame 1's (the second's) fifth atom line
    lines[second] = " ".join(lines[second].split()[:1] + [bad] + lines[second].split()[2:]) + "\n"
    damaged, out = tmp_path / "eth_nan.xyz", tmp_path / "pp.npz"
    damaged.write_text("".join(lines))
    result = cli("predict", "forces", damaged, "-m", pretrained_path("forces-ethanol.safetensors"), "-o", out,
                 "--device", "cpu")
    assert result.one_line_error() == f"error: {damaged}: frame 1 has non-finite (NaN or infinite) positions"
    assert not out.exists()
