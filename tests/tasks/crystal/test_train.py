import numpy as np
import pytest

from gaatool.checkpoint import read_metadata
from gaatool.errors import ConfigError, InputFileError
from gaatool.tasks.crystal.evaluate import evaluate_crystal
from gaatool.tasks.crystal.train import CrystalModelOptions, train_crystal
from gaatool.train import TrainConfig


def test_training_learns_and_records_metadata(tiny_crystal_checkpoint):
    meta = read_metadata(tiny_crystal_checkpoint)
    assert meta["task"] == "crystal"
    assert meta["class_names"] == ["cF4-Cu", "cI2-W", "cP2-CsCl", "hP2-Mg"]
    assert meta["type_names"] == ["A", "B"]
    history = meta["history"]
    # 4 classes: chance is 25%; three short epochs must do clearly better
    assert history[-1]["val_accuracy"] > 0.5
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_evaluate_reports_consistent_numbers(tiny_crystal_checkpoint, tiny_crystal_dataset, tmp_path):
    png = tmp_path / "confusion.png"
    result = evaluate_crystal(tiny_crystal_checkpoint, tiny_crystal_dataset, split="val", device="cpu",
                              confusion_png=png)
    confusion = np.array(result.confusion)
    assert confusion.sum() == result.n_environments
    assert result.accuracy == pytest.approx(np.trace(confusion) / confusion.sum())
    # the engine measured the same validation accuracy at the best epoch
    meta = read_metadata(tiny_crystal_checkpoint)
    assert result.accuracy == pytest.approx(meta["metrics"]["val_accuracy"], abs=1e-6)
    assert set(result.per_noise) == {"0.001", "0.05", "0.1"}
    # per class and noise level: consistent with the confusion matrix and the per-noise accuracies
    assert set(result.per_class_noise) == set(result.per_class)
    for name, by_level in result.per_class_noise.items():
        assert set(by_level) == set(result.per_noise)
        assert min(by_level.values()) <= result.per_class[name] <= max(by_level.values())
    for level, value in result.per_noise.items():
        column = [by_level[level] for by_level in result.per_class_noise.values()]
        assert min(column) - 1e-12 <= value <= max(column) + 1e-12
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_steinhardt_baseline_trains(tiny_crystal_dataset, tmp_path):
    result = train_crystal(tiny_crystal_dataset, tmp_path, CrystalModelOptions(model="steinhardt"),
                           TrainConfig(epochs=2, batch_size=64, device="cpu"), quiet=True)
    evaluation = evaluate_crystal(result.best_path, tiny_crystal_dataset, device="cpu")
    assert evaluation.extra["model"] == "crystal-steinhardt"
    assert 0 <= evaluation.accuracy <= 1


def test_bad_inputs(tiny_crystal_dataset, tmp_path):
    with pytest.raises(ConfigError):
        CrystalModelOptions(model="mlp")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(tiny_crystal_dataset.read_bytes()[:1000])
    with pytest.raises(InputFileError):
        train_crystal(broken, tmp_path / "run", config=TrainConfig(epochs=1), quiet=True)
    assert not (tmp_path / "run" / "best.safetensors").exists()
