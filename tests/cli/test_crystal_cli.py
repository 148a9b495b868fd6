"""End-to-end CLI runs of the crystal workflow on a tiny dataset (exit codes, JSON, files)."""
import json


def test_data_train_evaluate_info(tmp_path, cli):
    data = tmp_path / "crystals.npz"
    code, out, err = cli("data", "crystals", "-o", data, "--min-particles", "40", "--json", "--no-steinhardt")
    assert code == 0, err
    summary = json.loads(out)
    assert [row["class"] for row in summary["classes"]][:2] == ["cF4-Cu", "hP2-Mg"] and data.exists()
    run_dir = tmp_path / "run"
    code, out, err = cli("train", "crystal", data, "-o", run_dir, "--epochs", "1", "--dim", "8",
                         "--batch-size", "128", "--device", "cpu", "--quiet", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["stop_reason"] == "max_epochs" and (run_dir / "best.safetensors").exists()
    assert (run_dir / "metrics.csv").read_text().count("\n") == 2  # header + one epoch
    # the same folder again without --resume is refused, with one line
    assert "--resume" in cli("train", "crystal", data, "-o", run_dir, "--epochs", "1").one_line_error()
    code, out, err = cli("train", "crystal", data, "-o", run_dir, "--epochs", "2", "--dim", "8",
                         "--batch-size", "128", "--device", "cpu", "--quiet", "--resume")
    assert code == 0, err
    png = tmp_path / "confusion.png"
    code, out, err = cli("evaluate", "crystal", run_dir / "best.safetensors", data, "--plot", png,
                         "--json", "--device", "cpu")
    assert code == 0, err
    evaluation = json.loads(out)
    assert 0 <= evaluation["accuracy"] <= 1 and png.exists()
    code, out, err = cli("info", run_dir / "best.safetensors", "--json")
    assert code == 0 and json.loads(out)["task"] == "crystal"
    code, out, err = cli("info", run_dir / "best.safetensors")
    assert code == 0 and "crystal" in err


def test_usage_and_input_errors(tmp_path, cli):
    code, out, err = cli("--version")
    assert code == 0 and out.startswith("gaatool ")
    code, out, err = cli("train", "crystal")
    assert code == 2
    assert "none.npz" in cli("train", "crystal", tmp_path / "none.npz", "-o", tmp_path / "r").one_line_error()
    assert "mlp" in cli("train", "crystal", tmp_path / "none.npz", "--model", "mlp").one_line_error()
    assert "--noise" in cli("data", "crystals", "-o", tmp_path / "x.npz", "--noise", "a,b").one_line_error()
    assert not (tmp_path / "x.npz").exists()
    assert "none.safetensors" in cli("info", tmp_path / "none.safetensors").one_line_error()
