"""Random streams per batch piece, so that pieces drawing random numbers can run side by side.

Training with dropout draws masks. Pieces of a batch that run on several
threads would take their draws from torch's one global generator in whatever
order the threads reach it, and a run would not repeat. Instead each piece gets
a generator of its own, seeded from the global generator in piece order
(:func:`piece_seeds`): the draws no longer depend on thread timing, a resumed
run (which restores the global generator) repeats them, and the pieces do not
contend for one generator's lock. :class:`~gaatool.nn.mlp.FastDropout` draws
from the stream of the thread it runs on (:func:`current_generator`).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import torch

__all__ = ["current_generator", "in_piece_streams", "piece_seeds", "piece_stream"]

_LOCAL = threading.local()


def current_generator() -> torch.Generator | None:
    """The calling thread's piece generator, or None (use torch's global one)."""
    return getattr(_LOCAL, "generator", None)


def piece_seeds(count: int) -> list[int]:
    """``count`` seeds drawn in order from this thread's piece stream, else from torch's global CPU generator
    (pieces of a piece draw theirs from the outer piece's stream: deterministic at any nesting)."""
    return torch.randint(0, 2**62, (count,), dtype=torch.int64, generator=current_generator()).tolist()


@contextmanager
def piece_stream(seed: int) -> Iterator[torch.Generator]:
    """Inside the block, this thread's CPU dropout draws from a generator seeded with ``seed``."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    previous = current_generator()
    _LOCAL.generator = generator
    try:
        yield generator
    finally:
        _LOCAL.generator = previous


def in_piece_streams(fn: Callable, pieces: list[tuple]) -> tuple[Callable, list[tuple]]:
    """(fn', pieces') where fn'(*piece') runs fn(*piece) in that piece's own random stream."""
    def streamed(seed: int, *piece):
        with piece_stream(seed):
            return fn(*piece)

    return streamed, [(seed, *piece) for seed, piece in zip(piece_seeds(len(pieces)), pieces)]
