"""Run small workloads on one CPU thread.

A forward pass of a small input (one molecule in an MD step, a few crystal
environments) is thousands of tiny tensor operations. On a multi-core CPU each
one above torch's grain size opens an OpenMP parallel region, and waking the
worker threads costs more than the work: with ``OMP_WAIT_POLICY=PASSIVE`` (which
gaatool sets, because spinning threads are ruinous on shared cores) ethanol at
batch 1 runs ~3x faster on one thread than on two. Big inputs keep all threads.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

__all__ = ["SERIAL_TUPLES", "serial_when_small", "single_threaded"]

#: Below this many tuples per call (rank-2 tuples over all clouds of a batch),
#: one thread is faster than several (measured on 2-core CPUs: the crossover
#: for the ethanol force field lies between batch 16 and 64, i.e. 12k-47k tuples).
SERIAL_TUPLES = 32768


@contextmanager
def serial_when_small(tuples: int, device: torch.device | str = "cpu", threshold: int = SERIAL_TUPLES):
    """Limit torch to one intra-op thread inside the block when ``tuples`` < ``threshold`` on the CPU.

    torch's thread count is process-wide: it is restored on exit, and the
    block must not run concurrently with other torch work in the same process.
    """
    previous = torch.get_num_threads()
    if tuples >= threshold or previous == 1 or torch.device(device).type != "cpu":
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def single_threaded(device: torch.device | str = "cpu"):
    """One intra-op thread inside the block on the CPU (restored on exit); see :func:`serial_when_small`."""
    return serial_when_small(0, device)
