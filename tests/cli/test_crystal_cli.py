"""End-to-end CLI runs of the crystal workflow on a tiny dataset (exit codes, JSON, files)."""
import json

import pytest

from gaatool.cli.app import main


def run(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_data_train_evaluate_info(tmp_path, capsys):
    data = tmp_path / "crystals.npz"
    code, out, err = run(["data", "crystals", "-o", str(data), "--min-particles", "40", "--json", "--no-steinhardt"],
                         capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert [row["class"] for row in summary["classes"]][:2] == ["cF4-Cu", "hP2-Mg"] and data.exists()
    run_dir = tmp_path / "run"
    code, out, err = run(["train", "crystal", str(data), "-o", str(run_dir), "--epochs", "1", "--dim", "8",
                          "--batch-size", "128", "--device", "cpu", "--quiet", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["stop_reason"] == "max_epochs" and (run_dir / "best.safetensors").exists()
    assert (run_dir / "metrics.csv").read_text().count("\n") == 2  # header + one epoch
    # the same folder again without --resume is refused, with one line
    code, out, err = run(["train", "crystal", str(data), "-o", str(run_dir), "--epochs", "1"], capsys)
    assert code == 1 and err.startswith("error:") and "--resume" in err
    code, out, err = run(["train", "crystal", str(data), "-o", str(run_dir), "--epochs", "2", "--dim", "8",
                          "--batch-size", "128", "--device", "cpu", "--quiet", "--resume"], capsys)
    assert code == 0, err
    png = tmp_path / "confusion.png"
    code, out, err = run(["evaluate", "crystal", str(run_dir / "best.safetensors"), str(data), "--plot", str(png),
                          "--json", "--device", "cpu"], capsys)
    assert code == 0, err
    evaluation = json.loads(out)
    assert 0 <= evaluation["accuracy"] <= 1 and png.exists()
    code, out, err = run(["info", str(run_dir / "best.safetensors"), "--json"], capsys)
    assert code == 0 and json.loads(out)["task"] == "crystal"
    code, out, err = run(["info", str(run_dir / "best.safetensors")], capsys)
    assert code == 0 and "crystal" in err


def test_usage_and_input_errors(tmp_path, capsys):
    code, out, err = run(["--version"], capsys)
    assert code == 0 and out.startswith("gaatool ")
    code, out, err = run(["train", "crystal"], capsys)
    assert code == 2
    code, out, err = run(["train", "crystal", str(tmp_path / "none.npz"), "-o", str(tmp_path / "r")], capsys)
    assert code == 1 and err.count("\n") == 1 and "none.npz" in err
    code, out, err = run(["train", "crystal", str(tmp_path / "none.npz"), "--model", "mlp"], capsys)
    assert code == 1 and "mlp" in err
    code, out, err = run(["data", "crystals", "-o", str(tmp_path / "x.npz"), "--noise", "a,b"], capsys)
    assert code == 1 and "--noise" in err and not (tmp_path / "x.npz").exists()
    code, out, err = run(["info", str(tmp_path / "none.safetensors")], capsys)
    assert code == 1 and "none.safetensors" in err
