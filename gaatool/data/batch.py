"""Batching: split dicts of equal-length arrays into (shuffled) batches; pad ragged clouds."""
from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

__all__ = ["iterate_batches", "pad_clouds"]


def iterate_batches(arrays: Mapping[str, torch.Tensor], batch_size: int,
                    generator: torch.Generator | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Yield dicts of row slices of ``arrays`` (all of length M), shuffled when a generator is given.

    >>> batches = list(iterate_batches({"x": torch.arange(5)}, 2))
    >>> [b["x"].tolist() for b in batches]
    [[0, 1], [2, 3], [4]]
    """
    lengths = {len(value) for value in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"arrays have different lengths: {sorted(lengths)}")
    (n,) = lengths
    order = torch.randperm(n, generator=generator) if generator is not None else None
    for start in range(0, n, batch_size):
        if order is None:
            yield {key: value[start:start + batch_size] for key, value in arrays.items()}
        else:
            rows = order[start:start + batch_size]
            yield {key: value[rows] for key, value in arrays.items()}


def pad_clouds(clouds: Sequence[np.ndarray], fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Stack clouds of different sizes (n_b, ...) into (B, N_max, ...) plus a mask (B, N_max).

    >>> padded, mask = pad_clouds([np.ones((2, 3)), np.ones((1, 3))])
    >>> padded.shape, mask.tolist()
    ((2, 2, 3), [[True, True], [True, False]])
    """
    if not clouds:
        raise ValueError("no clouds to pad")
    n_max = max(len(cloud) for cloud in clouds)
    trailing = clouds[0].shape[1:]
    padded = np.full((len(clouds), n_max, *trailing), fill, dtype=np.result_type(*clouds))
    mask = np.zeros((len(clouds), n_max), dtype=bool)
    for b, cloud in enumerate(clouds):
        padded[b, :len(cloud)] = cloud
        mask[b, :len(cloud)] = True
    return padded, mask
