"""End-to-end CLI runs of the crystal workflow on a tiny dataset (exit codes, JSON, files)."""
import json

import pytest


def test_data_train_evaluate_info(tmp_path, cli):
    data = tmp_path / "crystals.npz"
    code, out, err = cli("data", "crystals", "-o", data, "--min-particles", "40", "--json", "--no-steinhardt")
    assert code == 0, err
    summary = json.loads(out)
    assert [row["class"] for row in summary["classes"]][:2] == ["cF4-Cu", "hP2-Mg"] and data.exists()
    run_dir = tmp_path / "run"
    code, out, err = cli("train", "crystal", data, "-o", run_dir, "--epochs", "1", "--dim", "8", "--dropout", "0.25",
                         "--batch-size", "128", "--device", "cpu", "--quiet", "--json")
    assert code == 0, err
    result = json.loads(out)
    code, info_out, _ = cli("info", run_dir / "best.safetensors", "--json")
    assert json.loads(info_out)["metadata"]["model_options"]["dropout"] == 0.25
    assert result["stop_reason"] == "max_epochs" and (run_dir / "best.safetensors").exists()
    assert (run_dir / "metrics.csv").read_text().count("\n") == 2  # header + one epoch
    # the same folder again without --resume is refused, with one line
    assert "--resume" in cli("train", "crystal", data, "-o", run_dir, "--epochs", "1").one_line_error()
    code, out, err = cli("train", "crystal", data, "-o", run_dir, "--epochs", "2", "--dim", "8", "--dropout", "0.25",
                         "--batch-size", "128", "--device", "cpu", "--quiet", "--resume")
    assert code == 0, err
    png = tmp_path / "confusion.png"
    code, out, err = cli("evaluate", "crystal", run_dir / "best.safetensors", data, "--plot", png,
                         "--json", "--device", "cpu")
    assert code == 0, err
    evaluation = json.loads(out)
    assert 0 <= evaluation["accuracy"] <= 1 and png.exists()
    assert set(evaluation["per_class_noise"]) == set(evaluation["per_class"])
    code, out, err = cli("evaluate", "crystal", run_dir / "best.safetensors", data, "--device", "cpu")
    assert code == 0 and "per class and noise level" in err and "confusion" in err
    code, out, err = cli("evaluate", "crystal", run_dir / "best.safetensors", data, "--device", "cpu", "--smooth", "1")
    assert code == 0 and "averaged over neighbours x1" in err
    assert "--smooth" in cli("evaluate", "crystal", run_dir / "best.safetensors", data, "--smooth", "-2").one_line_error()
    code, out, err = cli("info", run_dir / "best.safetensors", "--json")
    assert code == 0 and json.loads(out)["task"] == "crystal"
    code, out, err = cli("info", run_dir / "best.safetensors")
    assert code == 0 and "crystal" in err
    # fine-tuning: a new run from those weights, with another batch size; a mismatched model is one line
    tuned = tmp_path / "tuned"
    code, out, err = cli("train", "crystal", data, "-o", tuned, "--epochs", "1", "--dim", "8", "--dropout", "0.25",
                         "--batch-size", "64",
                         "--device", "cpu", "--quiet", "--json", "--init-from", run_dir / "best.safetensors")
    assert code == 0, err
    assert json.loads(out)["epoch"] == 1
    code, out, err = cli("info", tuned / "last.safetensors", "--json")
    assert json.loads(out)["metadata"]["initialized_from"]["path"] == str(run_dir / "best.safetensors")
    error = cli("train", "crystal", data, "-o", tmp_path / "wide", "--epochs", "1", "--dim", "16",
                "--init-from", run_dir / "best.safetensors").one_line_error()
    assert "different model configuration" in error and not (tmp_path / "wide" / "last.safetensors").exists()
    assert "n_dim: checkpoint 8, now 16" in error  # names what differs


def test_prototype_subset_plus_own_cell(tmp_path, cli):
    from pathlib import Path

    cell = Path(__file__).resolve().parents[2] / "docs" / "examples" / "A_cF136_227_aeg_pyriodic_aflow_variant.cif"
    code, out, err = cli("data", "crystals", "-o", tmp_path / "c.npz", "--min-particles", "40", "--no-steinhardt",
                         "--prototypes", "cI2-W, cF4-Cu", "--add", cell, "--json")
    assert code == 0, err
    assert [row["class"] for row in json.loads(out)["classes"]] == ["cI2-W", "cF4-Cu",
                                                                     "A_cF136_227_aeg_pyriodic_aflow_variant"]


def test_usage_and_input_errors(tmp_path, cli):
    code, out, err = cli("--version")
    assert code == 0 and out.startswith("gaatool ")
    code, out, err = cli("train", "crystal")
    assert code == 2
    assert "none.npz" in cli("train", "crystal", tmp_path / "none.npz", "-o", tmp_path / "r").one_line_error()
    assert "mlp" in cli("train", "crystal", tmp_path / "none.npz", "--model", "mlp").one_line_error()
    assert "dropout must be in [0, 1)" in cli("train", "crystal", tmp_path / "none.npz", "--dropout", "1").one_line_error()
    assert "--noise" in cli("data", "crystals", "-o", tmp_path / "x.npz", "--noise", "a,b").one_line_error()
    assert "unknown prototype 'fcc'" in cli("data", "crystals", "-o", tmp_path / "x.npz",
                                           "--prototypes", "cF4-Cu,fcc").one_line_error()
    assert not (tmp_path / "x.npz").exists()
    assert "none.safetensors" in cli("info", tmp_path / "none.safetensors").one_line_error()


@pytest.mark.parametrize("box", ["10.8,10.8,-10.8", "10.8,0,10.8", "10.8,10.8,nan", "-4,5,6,0,0,0"])
def test_identify_refuses_box_lengths_that_are_not_positive(tmp_path, cli, box):
    """A negative length passed as a mirrored box."""
    error = cli("identify", tmp_path / "cluster.xyz", "--box", box).one_line_error()
    assert error == f"error: --box {box!r}: the box lengths Lx, Ly, Lz must be positive numbers"


@pytest.mark.parametrize("twice", [False, True])
def test_sigterm_stops_training_like_ctrl_c(tmp_path, cli, twice):
    """Batch schedulers end jobs with SIGTERM: the run saves its state, says how to resume and exits 130; a
    second signal right after (Ctrl-C pressed twice, ``timeout -s INT`` on the process group) changes nothing
    (it interrupted the interpreter's shutdown: a traceback, or death by the signal)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    data = tmp_path / "crystals.npz"
    assert cli("data", "crystals", "-o", data, "--min-particles", "40", "--no-steinhardt").code == 0
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "gaatool", "train", "crystal", str(data), "-o", str(run_dir), "--epochs", "100000",
         "--dim", "8", "--batch-size", "128", "--device", "cpu", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 300  # generous: a loaded machine
        while (not (run_dir / "last.safetensors").exists() and process.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.2)
        if process.poll() is not None:
            raise AssertionError(f"training ended before the signal (exit {process.returncode}): "
                                 f"{process.stderr.read()}")
        assert (run_dir / "last.safetensors").exists(), "no epoch finished in time"
        process.send_signal(signal.SIGTERM)
        if twice:
            time.sleep(0.05)
            process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert err.startswith("error: training interrupted during epoch ") and err.count("\n") == 1, err
    assert "continue with --resume" in err
    code, out, err = cli("info", run_dir / "last.safetensors", "--json")
    assert code == 0, err
