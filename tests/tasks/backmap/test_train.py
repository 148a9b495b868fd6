"""Tests of backmap training: loss and metric values, augmentation, the tiny end-to-end run."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gaatool.checkpoint import load_model
from gaatool.data.store import load_dataset, save_dataset
from gaatool.errors import ConfigError, InputFileError
from gaatool.models.backmap import Backmapper, BackmapTransformer
from gaatool.tasks.backmap.train import (
    _jitter_beads,
    BackmapModelOptions,
    BackmapTrainTask,
    _rotate_batch,
    bucketed_batches,
    check_vocabulary,
    predict_atoms,
    split_tensors,
    train_backmap,
)
from gaatool.train import TrainConfig


def test_loss_and_rmsd_known_values(small_backmap_dataset):
    task = BackmapTrainTask(small_backmap_dataset, BackmapModelOptions(n_dim=4), batch_size=8)
    batch = next(iter(task.val_batches()))

    class Shift(torch.nn.Module):
        def __init__(self, shift):
            super().__init__()
            self.shift = torch.tensor(shift)

        def forward(self, r, t, c, labels, mask, atom_mask):
            return batch["atom_positions"][:, :labels.shape[1]] + self.shift

    loss, metrics = task.loss(Shift([0.0, 0.0, 0.0]), batch, train=False)
    assert float(loss) == 0.0 and metrics["rmsd_a"] == 0.0
    loss, metrics = task.loss(Shift([1.0, 2.0, 2.0]), batch, train=False)  # every atom 3 Å off
    assert float(loss) == pytest.approx(3.0) and metrics["rmsd_a"] == pytest.approx(3.0)


def test_rotation_augmentation_rotates_each_residue_rigidly(small_backmap_dataset):
    arrays, _ = load_dataset(small_backmap_dataset)
    batch = {k: v[:6] for k, v in split_tensors(arrays, "train").items()}
    rotated = _rotate_batch(batch, torch.Generator().manual_seed(0))
    for key in ("neighbor_positions", "atom_positions"):
        assert torch.allclose(rotated[key].norm(dim=-1), batch[key].norm(dim=-1), atol=1e-4)
        assert not torch.allclose(rotated[key], batch[key])
    # neighbourhood and atoms of one residue turn together: their dot products are kept
    dots = lambda b: torch.einsum("bkx,bax->bka", b["neighbor_positions"], b["atom_positions"])  # noqa: E731
    assert torch.allclose(dots(rotated), dots(batch), atol=1e-3)
    assert torch.equal(rotated["atom_labels"], batch["atom_labels"])


def test_bead_noise_moves_real_neighbour_beads_only(small_backmap_dataset):
    arrays, _ = load_dataset(small_backmap_dataset)
    batch = {k: v[:6] for k, v in split_tensors(arrays, "train").items()}
    batch["neighbor_mask"] = batch["neighbor_mask"].clone()
    batch["neighbor_mask"][:, -3:] = False  # as if padded
    batch["neighbor_positions"] = torch.where(batch["neighbor_mask"].unsqueeze(-1), batch["neighbor_positions"], 0.0)
    noisy = _jitter_beads(batch, 0.3, torch.Generator().manual_seed(5))
    again = _jitter_beads(batch, 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(noisy["neighbor_positions"], again["neighbor_positions"])  # from the engine's generator
    delta = noisy["neighbor_positions"] - batch["neighbor_positions"]
    real = batch["neighbor_mask"]
    assert torch.all(delta[~real] == 0) and 0.2 < float(delta[real].std()) < 0.4
    assert torch.equal(noisy["atom_positions"], batch["atom_positions"])  # targets untouched
    # training batches get it, validation batches do not
    task = BackmapTrainTask(small_backmap_dataset, BackmapModelOptions(bead_noise=0.3), 16)
    train = list(task.train_batches(1, torch.Generator().manual_seed(0)))
    total = lambda batches, key: sum(float(b[key].double().sum()) for b in batches)  # noqa: E731
    assert total(train, "atom_positions") == pytest.approx(float(task.train_arrays["atom_positions"].double().sum()))
    assert total(train, "neighbor_positions") != pytest.approx(
        float(task.train_arrays["neighbor_positions"].double().sum()), abs=1e-3)
    val = list(task.val_batches())
    assert total(val, "neighbor_positions") == pytest.approx(float(task.val_arrays["neighbor_positions"].double().sum()))
    with pytest.raises(ConfigError, match="bead_noise"):
        BackmapModelOptions(bead_noise=-1.0)


def test_tiny_training_runs_and_records_entries(tiny_backmap_checkpoint):
    model, meta = load_model(tiny_backmap_checkpoint, task="backmap")
    assert isinstance(model, Backmapper) and model.config.n_dim == 8 and model.translate.rank == 1
    assert meta["data"]["train_entries"] == ["1AJJ"] and meta["data"]["val_entries"] == ["1CKB"]
    assert meta["data"]["test_entries"] == ["1A8O"] and meta["neighbors"] == 16
    assert len(meta["data"]["sources"]["1AJJ"]["sha256"]) == 64
    history = meta["history"]
    assert all(np.isfinite(row["val_rmsd_a"]) and row["val_rmsd_a"] > 0 for row in history)


def test_transformer_trains_with_rotations(small_backmap_dataset, tmp_path):
    options = BackmapModelOptions(model="transformer", n_dim=8, n_heads=2)
    assert options.augment and not BackmapModelOptions().augment
    result = train_backmap(small_backmap_dataset, tmp_path, options,
                           TrainConfig(epochs=1, batch_size=16, device="cpu"), quiet=True)
    model, meta = load_model(result.best_path, task="backmap")
    assert isinstance(model, BackmapTransformer) and meta["model_options"]["model"] == "transformer"


def test_bad_options_and_datasets(small_backmap_dataset, tmp_path):
    with pytest.raises(ConfigError):
        BackmapModelOptions(model="mlp")
    with pytest.raises(ConfigError, match="multiple"):
        BackmapModelOptions(model="transformer", n_dim=10, n_heads=4)
    arrays, meta = load_dataset(small_backmap_dataset)
    no_val = {k: (v[:0] if k.startswith("val/") else v) for k, v in arrays.items()}
    save_dataset(tmp_path / "noval.npz", no_val, meta)
    with pytest.raises(InputFileError, match="validation split is empty"):
        BackmapTrainTask(tmp_path / "noval.npz", BackmapModelOptions(), 8)
    with pytest.raises(InputFileError, match="vocabulary"):
        check_vocabulary({"atom_labels": ["ALA:N"]}, "x")
    with pytest.raises(ConfigError, match="transformer"):
        BackmapModelOptions(model="transformer", sequence_offsets=2)
    with pytest.raises(ConfigError, match="sequence_offsets"):
        BackmapModelOptions(sequence_offsets=-1)
    old = {k: v for k, v in arrays.items() if not k.endswith("/neighbor_offsets")}  # a dataset from before offsets
    save_dataset(tmp_path / "old.npz", old, meta)
    with pytest.raises(InputFileError, match="rebuild it"):
        BackmapTrainTask(tmp_path / "old.npz", BackmapModelOptions(sequence_offsets=3), 8)
    BackmapTrainTask(tmp_path / "old.npz", BackmapModelOptions(), 8)  # the paper's model does not need them


def test_bucketed_batches_cover_every_row_once(small_backmap_dataset):
    arrays, _ = load_dataset(small_backmap_dataset)
    tensors = split_tensors(arrays, "train")
    tensors["row"] = torch.arange(len(tensors["residue_types"]))
    batches = list(bucketed_batches(tensors, 5, torch.Generator().manual_seed(0), bucket=2))
    rows = torch.cat([b["row"] for b in batches])
    assert sorted(rows.tolist()) == list(range(37))
    again = torch.cat([b["row"] for b in bucketed_batches(tensors, 5, torch.Generator().manual_seed(0), bucket=2)])
    assert torch.equal(rows, again)  # the generator alone decides the order
    fixed = list(bucketed_batches(tensors, 8))
    counts = torch.cat([b["atom_mask"].sum(-1) for b in fixed])
    assert torch.all(counts[1:] >= counts[:-1])  # validation batches: sorted by size


def test_predict_atoms_trims_padding_exactly(small_backmap_dataset):
    arrays, _ = load_dataset(small_backmap_dataset)
    tensors = split_tensors(arrays, "val")
    small = torch.argsort(tensors["atom_mask"].sum(-1))[:6]  # GLY/ALA/SER...: far fewer than 15 atoms
    batch = {k: v[small] for k, v in tensors.items()}
    batch["neighbor_positions"] = batch["neighbor_positions"].double()
    torch.manual_seed(0)
    model = BackmapModelOptions(n_dim=6).build().double().eval()
    full = model(batch["neighbor_positions"], batch["neighbor_types"], batch["residue_types"], batch["atom_labels"],
                 batch["neighbor_mask"], batch["atom_mask"])
    trimmed = predict_atoms(model, batch)
    assert int(batch["atom_mask"].sum(-1).max()) < 15
    assert trimmed.shape == full.shape and torch.allclose(trimmed, full, atol=1e-9, rtol=0)
