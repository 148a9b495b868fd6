"""Evaluation of crystal classifiers: accuracy overall, per class, per noise level; confusion matrix.

Per environment by default, as the paper measures; with ``smooth`` rounds,
as ``gaatool identify`` labels particles (class probabilities averaged over
each particle's neighbours, :mod:`.smoothing`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...checkpoint import load_model
from ...data.batch import iterate_batches
from ...data.store import load_dataset
from ...errors import InputFileError
from ...models.crystal import SteinhardtMLP
from ...train.device import resolve_device
from ..plots import save_confusion_matrix
from .dataset import split_neighbor_index
from .smoothing import average_over_neighbors, check_rounds
from .train import predict_logits, split_tensors

__all__ = ["CrystalEvaluation", "evaluate_crystal"]


@dataclass
class CrystalEvaluation:
    """Accuracy of a checkpoint on one split. Fractions in [0, 1]."""

    checkpoint: str
    dataset: str
    split: str
    n_environments: int
    accuracy: float
    class_names: list[str]
    per_class: dict[str, float]
    per_noise: dict[str, float]
    per_class_noise: dict[str, dict[str, float]]  # class -> noise level -> accuracy (where both occur)
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint, "dataset": self.dataset, "split": self.split,
            "n_environments": self.n_environments, "accuracy": self.accuracy, "per_class": self.per_class,
            "per_noise": self.per_noise, "per_class_noise": self.per_class_noise, "class_names": self.class_names,
            "confusion": self.confusion, **self.extra,
        }


def evaluate_crystal(checkpoint: str | Path, dataset: str | Path, split: str = "test", device: str = "auto",
                     batch_size: int = 2048, confusion_png: str | Path | None = None,
                     smooth: int = 0) -> CrystalEvaluation:
    """Evaluate ``checkpoint`` on ``split`` of a crystal dataset; optionally write the confusion matrix PNG.

    ``smooth``: rounds of neighbour averaging before the argmax, as ``gaatool identify --smooth``
    (0: per environment, the paper's measure). Needs a dataset whose recipe rebuilds the split.
    """
    smooth = check_rounds(smooth)
    model, metadata = load_model(checkpoint, task="crystal")
    arrays, dataset_metadata = load_dataset(dataset, expected_task="crystal")
    class_names = list(metadata["class_names"])
    if list(dataset_metadata["class_names"]) != class_names:
        raise InputFileError(f"{dataset}: classes {dataset_metadata['class_names']} differ from the checkpoint's "
                             f"{class_names}; evaluate on a dataset built with the same classes")
    # the same class names can still hide other inputs: cells of other species counts (type signal width)
    # or another neighbour count
    for key, default in (("type_names", None), ("neighbors", 12)):
        ours, theirs = metadata.get(key, default), dataset_metadata.get(key, default)
        if ours is not None and theirs is not None and ours != theirs:
            raise InputFileError(f"{dataset}: its {key} {theirs} differ from the checkpoint's {ours} (classes built "
                                 "from other unit cells?); evaluate on the dataset the model was trained for")
    kind = "steinhardt" if isinstance(model, SteinhardtMLP) else "gaa"
    tensors = split_tensors(arrays, split, kind, str(dataset))
    target = resolve_device(device)
    model = model.to(target).eval()
    neighbors = split_neighbor_index(dataset_metadata, arrays, split, str(dataset)) if smooth else None
    probabilities = []
    with torch.no_grad():
        for batch in iterate_batches(tensors, batch_size):
            batch = {k: v.to(target) for k, v in batch.items()}
            probabilities.append(torch.softmax(predict_logits(model, batch), dim=-1).float().cpu())
    probabilities = torch.cat(probabilities).numpy()
    if neighbors is not None:
        probabilities = average_over_neighbors(probabilities, neighbors, smooth)
    predicted = probabilities.argmax(-1)
    truth = tensors["labels"].numpy()
    noise = tensors["noise"].numpy()
    n_classes = len(class_names)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    correct = predicted == truth
    per_class = {name: float(correct[truth == c].mean()) for c, name in enumerate(class_names) if np.any(truth == c)}
    levels = {f"{level:g}": np.isclose(noise, level) for level in np.unique(noise)}
    per_noise = {key: float(correct[at].mean()) for key, at in levels.items()}
    per_class_noise = {name: {key: float(correct[at & (truth == c)].mean()) for key, at in levels.items()
                              if np.any(at & (truth == c))}
                       for c, name in enumerate(class_names) if np.any(truth == c)}
    result = CrystalEvaluation(
        checkpoint=str(checkpoint), dataset=str(dataset), split=split, n_environments=int(len(truth)),
        accuracy=float(correct.mean()), class_names=class_names, per_class=per_class, per_noise=per_noise,
        per_class_noise=per_class_noise,
        confusion=confusion.tolist(), extra={"model": metadata["model"]["name"], "smooth": smooth})
    if confusion_png is not None:
        averaged = f", neighbour-averaged x{smooth}" if smooth else ""
        save_confusion_matrix(confusion, class_names, confusion_png,
                              title=f"{Path(checkpoint).name} on {split}: accuracy {100 * result.accuracy:.2f}%{averaged}")
    return result
