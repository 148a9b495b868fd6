"""Training of crystal-structure classifiers (the GAA network or the Steinhardt-MLP baseline)."""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.splits import derive_seed
from ...data.store import load_dataset
from ...errors import ConfigError, InputFileError
from ...ga.invariants import INVARIANT_MODES
from ...models.blocks import MAX_RANK
from ...models.crystal import CrystalClassifier, SteinhardtMLP
from ...train.array_task import ArrayTask
from ...train.engine import FitResult, TrainConfig, fit
from .dataset import CrystalDatasetConfig, build_crystal_dataset, stored_recipe

__all__ = ["CrystalModelOptions", "CrystalTrainTask", "train_crystal", "split_tensors", "training_recipe",
           "fresh_training_arrays", "MODEL_KINDS"]

MODEL_KINDS = ("gaa", "steinhardt")


@dataclass
class CrystalModelOptions:
    """Architecture choices; defaults are the paper's Listing 1 (dim 32, 2 blocks, rank 2, mean merge/join)."""

    model: str = "gaa"
    n_dim: int = 32
    n_blocks: int = 2
    rank: int = 2
    invariant_mode: str = "single"
    dropout: float = 0.5
    o3: bool = False

    def __post_init__(self):
        if self.model not in MODEL_KINDS:
            raise ConfigError(f"unknown crystal model {self.model!r}; choose one of {list(MODEL_KINDS)}")
        for name in ("n_dim", "n_blocks"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 1 <= self.rank <= MAX_RANK:
            raise ConfigError(f"rank must be from 1 to {MAX_RANK}, got {self.rank}")
        if self.invariant_mode not in INVARIANT_MODES:
            raise ConfigError(f"unknown invariant_mode {self.invariant_mode!r}; choose one of {list(INVARIANT_MODES)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


def split_tensors(arrays: dict[str, np.ndarray], split: str, model: str, source: str = "dataset") -> dict[str, torch.Tensor]:
    """The tensors of one split that a crystal model consumes (float32 inputs, int64 labels)."""
    needed = ["labels", "noise"] + (["r_ij", "type_pairs"] if model == "gaa" else ["steinhardt"])
    missing = [f"{split}/{name}" for name in needed if f"{split}/{name}" not in arrays]
    if missing:
        raise InputFileError(f"{source}: crystal dataset lacks {missing}; rebuild it with `gaatool data crystals`")
    result = {name: torch.from_numpy(np.ascontiguousarray(arrays[f"{split}/{name}"])) for name in needed}
    result["labels"] = result["labels"].long()
    for name in ("r_ij", "type_pairs", "steinhardt", "noise"):
        if name in result:
            result[name] = result[name].float()
    return result


class CrystalTrainTask(ArrayTask):
    """TrainTask for crystal identification: cross-entropy loss, accuracy metric."""

    task_name = "crystal"
    # what the weights' inputs and outputs mean: --init-from needs the same values
    compatibility_keys = ("class_names", "type_names", "neighbors", "length_unit")
    # what is trained on beyond the architecture: --resume needs the same values
    resume_keys = ("model_options", "data.fresh_noise")

    def __init__(self, dataset_path: str | Path, options: CrystalModelOptions, batch_size: int,
                 fresh_noise: bool = False):
        arrays, self.dataset_metadata = load_dataset(dataset_path, expected_task="crystal")
        self.dataset_path, self.options = Path(dataset_path), options
        train = split_tensors(arrays, "train", options.model, str(dataset_path))
        val = split_tensors(arrays, "val", options.model, str(dataset_path))
        super().__init__(train, val, batch_size, val_batch_size=1024)
        self.class_names = list(self.dataset_metadata["class_names"])
        # fresh noise: the dataset's recipe, checked now rather than after the first epoch
        self.fresh_noise = fresh_noise
        self._recipe = training_recipe(self.dataset_metadata, options.model, str(dataset_path)) if fresh_noise else None

    def train_batches(self, epoch: int, generator: torch.Generator):
        """The epoch's batches; with fresh noise, of training replicas drawn for this epoch."""
        if self._recipe is not None:
            self.train_arrays = fresh_training_arrays(self._recipe, epoch, self.options.model, self.class_names)
        return super().train_batches(epoch, generator)

    def build_model(self) -> torch.nn.Module:
        o = self.options
        if o.model == "steinhardt":
            n_features = self.train_arrays["steinhardt"].shape[-1]
            return SteinhardtMLP(SteinhardtMLP.Config(n_classes=len(self.class_names), n_features=n_features,
                                                      dropout=o.dropout))
        attention = {"rank": o.rank, "invariant_mode": o.invariant_mode, "dropout": o.dropout, "o3": o.o3}
        return CrystalClassifier(CrystalClassifier.Config(
            n_classes=len(self.class_names), n_type_features=self.train_arrays["type_pairs"].shape[-1],
            n_dim=o.n_dim, n_blocks=o.n_blocks, attention=attention))

    def loss(self, model, batch, train: bool):
        logits = predict_logits(model, batch)
        loss = torch.nn.functional.cross_entropy(logits, batch["labels"])
        accuracy = (logits.argmax(-1) == batch["labels"]).float().mean()
        return loss, {"accuracy": float(accuracy)}

    def metadata(self) -> dict[str, Any]:
        meta = self.dataset_metadata
        return {
            "class_names": self.class_names,
            "type_names": list(meta.get("type_names", [])),
            "neighbors": int(meta.get("neighbors", 12)),
            "length_unit": meta.get("length_unit", "nearest-neighbour distance"),
            # elements of each class's cell per model type: identify maps element-named files with it
            "species": {c["name"]: dict(c["species"]) for c in meta.get("classes", []) if c.get("species")},
            "model_options": asdict(self.options),
            "data": {"path": str(self.dataset_path), "fresh_noise": self.fresh_noise,
                     **{k: meta[k] for k in ("seed", "noise_levels", "provenance") if k in meta}},
        }


def training_recipe(metadata: dict[str, Any], model: str, source: str = "dataset") -> tuple[CrystalDatasetConfig, list]:
    """How the dataset's training split was made: its config (training replicas only) and its added cells.

    From the metadata of ``gaatool data crystals``; the added classes (not among the prototypes) come
    back from the unit cells stored there.
    """
    config, extra = stored_recipe(metadata, source, "fresh noise")
    config = dataclasses.replace(config, replicas={"train": config.replicas.get("train", 0), "val": 0, "test": 0},
                                 steinhardt=config.steinhardt and model == "steinhardt")
    if config.replicas["train"] < 1:
        raise ConfigError(f"{source}: the dataset has no training replicas to draw afresh")
    return config, extra


def fresh_training_arrays(recipe: tuple[CrystalDatasetConfig, list], epoch: int, model: str,
                          class_names: list[str]) -> dict[str, torch.Tensor]:
    """Training replicas of the recipe with noise drawn for ``epoch`` (deterministic in the dataset's seed)."""
    config, extra = recipe
    seed = derive_seed(config.seed, "fresh-noise", epoch)  # never the seed of a stored split's replica
    dataset = build_crystal_dataset(config, extra_cells=extra, align=False, seed=seed)  # the cells as stored
    if dataset.class_names != class_names:
        raise ConfigError(f"fresh noise rebuilt classes {dataset.class_names}, not the dataset's {class_names}")
    return split_tensors(dataset.arrays, "train", model)


def predict_logits(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits (B, C) for a batch of either model kind."""
    if isinstance(model, SteinhardtMLP):
        return model(batch["steinhardt"])
    return model(batch["r_ij"], batch["type_pairs"], batch.get("mask"))


def train_crystal(dataset: str | Path, out_dir: str | Path, options: CrystalModelOptions | None = None,
                  config: TrainConfig | None = None, resume: bool = False, quiet: bool = False,
                  init_from: str | Path | None = None, fresh_noise: bool = False) -> FitResult:
    """Train a crystal classifier on a dataset from ``gaatool data crystals``; see :func:`gaatool.train.fit`.

    ``fresh_noise``: every epoch trains on as many replicas as the dataset's training split, built by
    its recipe (cells, noise levels, neighbours) with noise drawn for that epoch, instead of the stored
    ones: the model never sees the same noisy copy twice (the stored 6-replica split was overfitted
    after ~70 epochs). Validation stays the stored split. Costs one dataset build per epoch.
    """
    options = options or CrystalModelOptions()
    config = config or TrainConfig()
    task = CrystalTrainTask(dataset, options, config.batch_size, fresh_noise=fresh_noise)
    return fit(task, config, out_dir, resume=resume, quiet=quiet, init_from=init_from)
