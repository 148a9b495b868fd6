"""Run big batches in cache-sized pieces.

Between their matrix products the models do elementwise work (activations,
layer norms, sums of tuple terms) on tensors of 64 values per tuple. For a big
batch those tensors are far larger than the CPU caches and that work runs at
memory speed: 1024 crystal environments take ~3x longer in one piece than in
pieces of ~256 (benchmarks/). Items of a batch are independent, so a model
can split its batch into pieces of about :data:`CPU_CHUNK_TUPLES` tuples and
concatenate the results: the same operations per item, the same outputs.
Autograd follows the pieces too, so backward passes also run piece by piece.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

__all__ = ["CPU_CHUNK_TUPLES", "CUDA_CHUNK_TUPLES", "chunk_items", "map_chunks"]

#: Tuples per piece on a CPU: ~8 MiB per 64-wide float32 hidden layer, cache-sized
#: (1-2 MiB of L2 per core plus a shared L3 on the machines measured).
CPU_CHUNK_TUPLES = 32768
#: On a GPU small pieces would leave it idle between kernel launches.
CUDA_CHUNK_TUPLES = 1 << 22


def chunk_items(tuples_per_item: int, device: torch.device | str) -> int:
    """Items per piece so that a piece holds about the device's tuple budget (at least one item).

    >>> chunk_items(144, "cpu")
    227
    """
    budget = CPU_CHUNK_TUPLES if torch.device(device).type == "cpu" else CUDA_CHUNK_TUPLES
    return max(1, budget // max(1, int(tuples_per_item)))


def map_chunks(fn: Callable, inputs: Sequence[torch.Tensor | None], size: int):
    """``fn(*inputs)`` computed on pieces of ``size`` items along axis 0 and concatenated.

    ``inputs`` share their first (batch) axis; None entries are passed as None.
    ``fn`` returns a tensor or a tuple of tensors (or None), each with the batch
    as its first axis. Runs in one piece when the batch fits, and while
    torch.compile traces (a compiled graph is built for one batch size).
    """
    n = next(x for x in inputs if x is not None).shape[0]
    if n <= size or torch.compiler.is_compiling():
        return fn(*inputs)
    size = -(-n // -(-n // size))  # as few pieces as before, evened out (256 items by 227: 128 + 128)
    pieces = [fn(*(None if x is None else x[start:start + size] for x in inputs)) for start in range(0, n, size)]
    if isinstance(pieces[0], tuple):
        return tuple(None if parts[0] is None else torch.cat(parts) for parts in zip(*pieces))
    return torch.cat(pieces)
