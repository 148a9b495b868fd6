"""A TrainTask base for datasets held as dicts of equal-length tensors (all three workflows)."""
from __future__ import annotations

import hashlib
from typing import Any, Iterable

import torch

from ..data.batch import iterate_batches

__all__ = ["ArrayTask"]


class ArrayTask:
    """Implements batching, device transfer and batch sizes; subclasses add model, loss, metadata.

    ``train_arrays`` / ``val_arrays``: dict name -> tensor (M, ...), one row per item.
    """

    task_name = "array"

    def __init__(self, train_arrays: dict[str, torch.Tensor], val_arrays: dict[str, torch.Tensor],
                 batch_size: int, val_batch_size: int | None = None):
        self.train_arrays, self.val_arrays = train_arrays, val_arrays
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or max(batch_size, 256)

    def train_batches(self, epoch: int, generator: torch.Generator) -> Iterable[dict[str, torch.Tensor]]:
        return iterate_batches(self.train_arrays, self.batch_size, generator)

    def val_batches(self) -> Iterable[dict[str, torch.Tensor]]:
        return iterate_batches(self.val_arrays, self.val_batch_size)

    def to_device(self, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        return {key: value.to(device, non_blocking=True) for key, value in batch.items()}

    def batch_size_of(self, batch: dict[str, torch.Tensor]) -> int:
        return len(next(iter(batch.values())))

    def data_fingerprint(self) -> str:
        """sha256 of the training and validation arrays (names, dtypes, shapes, values): what a resumed run
        compares, since a dataset file may be moved or rebuilt the same."""
        digest = hashlib.sha256()
        for split, arrays in (("train", self.train_arrays), ("val", self.val_arrays)):
            for name in sorted(arrays):
                array = arrays[name].detach().cpu().contiguous()
                digest.update(f"{split}/{name} {array.dtype} {tuple(array.shape)};".encode())
                digest.update(array.view(-1).view(torch.uint8).numpy().data if array.numel() else b"")
        return digest.hexdigest()

    def metadata(self) -> dict[str, Any]:
        return {}
