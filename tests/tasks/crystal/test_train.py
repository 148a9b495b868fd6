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


@pytest.fixture(scope="module")
def dataset_with_added_cell(tmp_path_factory):
    """Two prototypes plus hP2-Mg given as an added unit cell, two training replicas."""
    from gaatool.tasks.crystal.dataset import CrystalDatasetConfig, build_crystal_dataset
    from gaatool.tasks.crystal.prototypes import prototype_cell

    path = tmp_path_factory.mktemp("fresh") / "added.npz"
    config = CrystalDatasetConfig(seed=3, min_particles=64, prototypes=("cF4-Cu", "cI2-W"), steinhardt=False,
                                  replicas={"train": 2, "val": 1, "test": 1})
    build_crystal_dataset(config, extra_cells=[prototype_cell("hP2-Mg")]).save(path)
    return path


def test_fresh_noise_recipe_rebuilds_the_stored_training_split(dataset_with_added_cell):
    """The recipe read back from the metadata (added cell included) makes exactly the stored split with the
    dataset's own seed, and new noise for every epoch: same environments per class, other positions."""
    import dataclasses

    import torch

    from gaatool.data.store import load_dataset
    from gaatool.tasks.crystal.dataset import build_crystal_dataset
    from gaatool.tasks.crystal.train import CrystalTrainTask, split_tensors, training_recipe

    arrays, metadata = load_dataset(dataset_with_added_cell)
    config, extra = training_recipe(metadata, "gaa")
    assert [cell.name for cell in extra] == ["hP2-Mg"] and config.replicas == {"train": 2, "val": 0, "test": 0}
    rebuilt = build_crystal_dataset(dataclasses.replace(config), extra_cells=extra)
    for key in ("r_ij", "type_pairs", "labels", "noise"):
        np.testing.assert_array_equal(rebuilt.arrays[f"train/{key}"], arrays[f"train/{key}"])

    task = CrystalTrainTask(dataset_with_added_cell, CrystalModelOptions(n_dim=8), 64, fresh_noise=True)
    stored, val = task.train_arrays, task.val_arrays
    draws = []
    for epoch in (1, 2):
        list(task.train_batches(epoch, torch.Generator().manual_seed(0)))
        draws.append(task.train_arrays)
    again = CrystalTrainTask(dataset_with_added_cell, CrystalModelOptions(n_dim=8), 64, fresh_noise=True)
    list(again.train_batches(2, torch.Generator().manual_seed(0)))
    assert torch.equal(again.train_arrays["r_ij"], draws[1]["r_ij"])  # deterministic per epoch (resume)
    for draw in draws:
        assert draw["r_ij"].shape == stored["r_ij"].shape and torch.equal(draw["labels"], stored["labels"])
        assert not torch.equal(draw["r_ij"], stored["r_ij"])
    assert not torch.equal(draws[0]["r_ij"], draws[1]["r_ij"])
    assert task.val_arrays is val
    assert split_tensors(arrays, "val", "gaa")["r_ij"].shape == val["r_ij"].shape


def test_training_with_fresh_noise(dataset_with_added_cell, tmp_path):
    result = train_crystal(dataset_with_added_cell, tmp_path, CrystalModelOptions(n_dim=8, dropout=0.0),
                           TrainConfig(epochs=2, batch_size=64, device="cpu"), quiet=True, fresh_noise=True)
    meta = read_metadata(result.best_path)
    assert meta["data"]["fresh_noise"] is True and len(meta["history"]) == 2


def test_fresh_noise_needs_the_dataset_recipe(dataset_with_added_cell, tmp_path):
    from gaatool.data.store import load_dataset, save_dataset

    arrays, metadata = load_dataset(dataset_with_added_cell)
    del metadata["config"]
    stripped = tmp_path / "stripped.npz"
    save_dataset(stripped, arrays, metadata)
    with pytest.raises(InputFileError, match="fresh noise needs a dataset from `gaatool data crystals`"):
        train_crystal(stripped, tmp_path / "run", config=TrainConfig(epochs=1), quiet=True, fresh_noise=True)
    train_crystal(stripped, tmp_path / "plain", CrystalModelOptions(n_dim=8), TrainConfig(epochs=1, device="cpu"),
                  quiet=True)  # the stored split alone needs no recipe


def test_split_neighbor_index_finds_each_environments_neighbours(dataset_with_added_cell):
    """Rebuilt from the recipe (added cell included), checked against geometry: each stored bond vector is
    the minimum-image vector from its particle to the row the index names, in the crystal's length unit."""
    from gaatool.data.neighbors import nearest_neighbor_distance
    from gaatool.data.store import load_dataset
    from gaatool.tasks.crystal.dataset import CrystalDatasetConfig, build_crystal_dataset, split_neighbor_index
    from gaatool.tasks.crystal.prototypes import prototype_cell

    arrays, metadata = load_dataset(dataset_with_added_cell)
    index = split_neighbor_index(metadata, arrays, "test")
    r_ij, labels = arrays["test/r_ij"], arrays["test/labels"]
    assert index.shape == r_ij.shape[:2]
    assert np.array_equal(labels[index], np.repeat(labels[:, None], index.shape[1], axis=1))
    config = CrystalDatasetConfig.from_dict(metadata["config"])
    systems = build_crystal_dataset(config, extra_cells=[prototype_cell("hP2-Mg")]).systems
    positions = np.concatenate([s.positions for s in systems if s.split == "test"])
    owner = np.concatenate([np.full(len(s.positions), k) for k, s in enumerate(systems) if s.split == "test"])
    for k, system in enumerate(systems):
        if system.split != "test":
            continue
        rows = np.flatnonzero(owner == k)
        scale = nearest_neighbor_distance(system.positions, system.box)
        vectors = positions[index[rows]] - positions[rows][:, None, :]
        fractional = vectors @ np.linalg.inv(system.box)
        vectors = (fractional - np.round(fractional)) @ system.box
        np.testing.assert_allclose(vectors / scale, r_ij[rows], atol=1e-5)


def test_evaluate_with_neighbour_averaging(dataset_with_added_cell, tmp_path):
    import torch

    from gaatool.checkpoint import load_model
    from gaatool.data.store import load_dataset, save_dataset
    from gaatool.tasks.crystal.dataset import split_neighbor_index
    from gaatool.tasks.crystal.train import predict_logits, split_tensors

    run = train_crystal(dataset_with_added_cell, tmp_path / "run", CrystalModelOptions(n_dim=8, dropout=0.0),
                        TrainConfig(epochs=2, batch_size=64, device="cpu", learning_rate=3e-3), quiet=True)
    arrays, metadata = load_dataset(dataset_with_added_cell)
    model, _ = load_model(run.best_path, task="crystal")
    with torch.no_grad():
        probabilities = torch.softmax(predict_logits(model.eval(), split_tensors(arrays, "test", "gaa")), -1).numpy()
    index = split_neighbor_index(metadata, arrays, "test")
    averaged = (4 * probabilities + probabilities[index].sum(axis=1)) / (index.shape[1] + 4)
    expected = np.mean(averaged.argmax(1) == arrays["test/labels"])
    plain = evaluate_crystal(run.best_path, dataset_with_added_cell, device="cpu")
    smoothed = evaluate_crystal(run.best_path, dataset_with_added_cell, device="cpu", smooth=1)
    assert smoothed.accuracy == pytest.approx(expected) and smoothed.to_dict()["smooth"] == 1
    assert plain.accuracy == pytest.approx(np.mean(probabilities.argmax(1) == arrays["test/labels"]))
    # a split that its recipe does not rebuild, or no recipe at all: one clear error
    moved = dict(arrays)
    moved["test/r_ij"] = arrays["test/r_ij"] + np.float32(1e-3)
    save_dataset(tmp_path / "moved.npz", moved, metadata)
    with pytest.raises(InputFileError, match="could not be rebuilt"):
        evaluate_crystal(run.best_path, tmp_path / "moved.npz", device="cpu", smooth=1)
    stripped = {key: value for key, value in metadata.items() if key != "config"}
    save_dataset(tmp_path / "stripped.npz", arrays, stripped)
    with pytest.raises(InputFileError, match="neighbour averaging needs a dataset"):
        evaluate_crystal(run.best_path, tmp_path / "stripped.npz", device="cpu", smooth=1)
    with pytest.raises(ConfigError, match="--smooth"):
        evaluate_crystal(run.best_path, dataset_with_added_cell, device="cpu", smooth=-1)


def test_training_with_dropout_side_by_side_resumes_exactly(tiny_crystal_dataset, tmp_path, two_threads, monkeypatch):
    """Dropout (the default, 0.5) with the batch's pieces side by side on two threads: a run resumed after
    one epoch repeats the uninterrupted run exactly (each piece's masks come from a stream seeded from the
    global generator, which the run state restores)."""
    import torch

    import gaatool.nn.chunks as chunks
    from gaatool.checkpoint import load_checkpoint

    streamed, in_streams = [], chunks.in_piece_streams
    monkeypatch.setattr(chunks, "in_piece_streams", lambda fn, pieces: streamed.append(len(pieces))
                        or in_streams(fn, pieces))
    options = CrystalModelOptions(n_dim=8)
    assert options.dropout == 0.5

    def config(epochs):
        return TrainConfig(epochs=epochs, batch_size=256, device="cpu", seed=3, learning_rate=3e-3)

    straight = train_crystal(tiny_crystal_dataset, tmp_path / "straight", options, config(2), quiet=True)
    assert streamed and min(streamed) >= 2  # training batches ran in pieces, each with its own stream
    train_crystal(tiny_crystal_dataset, tmp_path / "resumed", options, config(1), quiet=True)
    resumed = train_crystal(tiny_crystal_dataset, tmp_path / "resumed", options, config(2), resume=True, quiet=True)
    assert resumed.epochs_run == 1 and resumed.history == straight.history
    ours, theirs = load_checkpoint(resumed.last_path), load_checkpoint(straight.last_path)
    for mine, other in [(ours.state_dict, theirs.state_dict), (ours.extra_tensors, theirs.extra_tensors)]:
        assert mine.keys() == other.keys() and all(torch.equal(mine[k], other[k]) for k in mine)


def test_evaluate_refuses_a_dataset_of_other_types_under_the_same_class_names(tiny_crystal_checkpoint, tmp_path):
    """Class names are file names for added cells: the same names can hold cells of other species counts,
    whose type signal the model cannot take (it was a matrix-shape RuntimeError)."""
    from gaatool.tasks.crystal.dataset import build_crystal_dataset
    from gaatool.tasks.crystal.prototypes import UnitCell, prototype_cell

    simple_cubic = UnitCell("cP2-CsCl", np.eye(3), np.zeros((1, 3)), [0], ("Po",))
    path = tmp_path / "one_type.npz"
    build_crystal_dataset(prototypes=("cF4-Cu", "cI2-W"), min_particles=64, noise_levels=(0.05,),
                          replicas={"test": 1}, extra_cells=[simple_cubic, prototype_cell("hP2-Mg")]).save(path)
    with pytest.raises(InputFileError, match=r"one_type.npz: its type_names \['A'\] differ from the checkpoint's "
                                             r"\['A', 'B'\]"):
        evaluate_crystal(tiny_crystal_checkpoint, path, device="cpu")
