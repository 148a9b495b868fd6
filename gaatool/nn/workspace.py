"""Reused output buffers for the biggest products of no-grad CPU inference.

torch's CPU tensors come from malloc, and with glibc's defaults a freed block
of a few MiB goes back to the kernel: the next piece's tuple hidden layer of the
same size is fresh memory whose pages fault in one by one, zero-filled. The
``gaatool`` command avoids that for the whole process (:mod:`gaatool.allocator`);
a library call cannot change malloc for its caller, so the attention layers
write their big results, the value net's hidden layer, the layer's core (its
output, per pair or per tuple), the tuple values and the score and scale nets'
hidden layers, into buffers that each thread keeps and reuses for every layer
and piece (slots "hidden", "core", "tuple_values"). gaatool alone with
glibc's defaults (``python -m benchmarks.bench_allocator``, 2-core EPYC,
session 12): crystal inference at batch 1024 0.057 -> 0.041 ms per environment
(20,859 -> 3,362 page faults per call), at batch 256 0.070 -> 0.055 (5,996 -> 1),
backmapping inference 2.18 -> 1.61 ms per residue (48,753 -> 14,113); with freed
memory kept, as the command runs, about the same.

A slot holds one tensor at a time: a caller may use a slot only for a result
that is dead before the next use of that slot on the same thread. Buffers are
per thread (side-by-side pieces run on worker threads), grow to the largest
piece seen (for the crystal classifier's CPU pieces at most 26 MiB per thread),
and are used only where nothing records a graph: CPU, gradients off, not under
torch.compile or autocast. :func:`release` drops them.
"""
from __future__ import annotations

import threading
import weakref

import torch
from torch.nn import functional

from .shapes import broadcast_shape

__all__ = ["applies", "empty", "linear", "add", "index_select", "release", "ENABLED", "MIN_ELEMENTS"]

#: Reuse buffers at all (the A/B switch of ``benchmarks.ab_switches workspace``).
ENABLED = True
#: Products with fewer output elements than this come from malloc as usual: glibc's heap reuses blocks
#: below its initial mmap threshold (128 KiB). 1 << 20 left the crystal classifier's pair values at
#: batch 256 (0.64 M values) faulting: 4,536 page faults per call against 1.
MIN_ELEMENTS = 1 << 15


class _Slots:
    """One thread's buffers by (slot, dtype); gone with its thread."""

    __slots__ = ("buffers", "__weakref__")

    def __init__(self):
        self.buffers: dict[tuple[str, torch.dtype], torch.Tensor] = {}


_local = threading.local()
_all_slots: "weakref.WeakSet[_Slots]" = weakref.WeakSet()  # every live thread's, for release()
_lock = threading.Lock()


def applies(x: torch.Tensor) -> bool:
    """Whether results computed from ``x`` may go to reused buffers: CPU floats, nothing recording a graph."""
    return (ENABLED and x.device.type == "cpu" and not torch.is_grad_enabled()
            and x.dtype in (torch.float32, torch.float64) and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling())


def _applies(x: torch.Tensor, other: torch.Tensor) -> bool:
    return x.dtype == other.dtype and x.device == other.device and applies(x)


def _buffer(slot: str, count: int, dtype: torch.dtype) -> torch.Tensor:
    slots = getattr(_local, "slots", None)
    if slots is None:
        slots = _local.slots = _Slots()
        with _lock:
            _all_slots.add(slots)
    cache = slots.buffers
    storage = cache.get((slot, dtype))
    if storage is None or storage.numel() < count:
        cache.pop((slot, dtype), None)  # free the smaller one first
        with torch.inference_mode(False):  # a normal tensor: writable in and outside inference mode
            storage = cache[(slot, dtype)] = torch.empty(count, dtype=dtype)
    return storage[:count]


def empty(slot: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` in this thread's ``slot`` buffer (CPU; callers check :func:`applies`),
    valid until the slot's next use on this thread."""
    return _buffer(slot, torch.Size(shape).numel(), dtype).view(shape)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, slot: str) -> torch.Tensor:
    """``functional.linear(x, weight, bias)``, written into this thread's ``slot`` buffer when that applies.

    The result is then a view of the buffer, valid until the slot's next use on this thread.
    """
    rows, cols = x.numel() // max(x.shape[-1], 1), weight.shape[0]
    if rows * cols < MIN_ELEMENTS or not _applies(x, weight):
        return functional.linear(x, weight, bias)
    out = _buffer(slot, rows * cols, x.dtype).view(rows, cols)
    flat = x.reshape(rows, x.shape[-1])
    if bias is None:
        torch.mm(flat, weight.t(), out=out)
    else:
        torch.addmm(bias, flat, weight.t(), out=out)
    return out.view(*x.shape[:-1], cols)


def add(a: torch.Tensor, b: torch.Tensor, slot: str) -> torch.Tensor:
    """``a + b`` (broadcast), written into this thread's ``slot`` buffer when that applies.

    The result is then a view of the buffer, valid until the slot's next use on this thread.
    """
    shape = broadcast_shape(a.shape, b.shape)
    count = shape.numel()
    if count < MIN_ELEMENTS or not _applies(a, b):
        return a + b
    out = _buffer(slot, count, a.dtype).view(shape)
    return torch.add(a, b, out=out)


def index_select(x: torch.Tensor, dim: int, index: torch.Tensor, slot: str) -> torch.Tensor:
    """``x.index_select(dim, index)``, written into this thread's ``slot`` buffer when that applies.

    The result is then a view of the buffer, valid until the slot's next use on this thread.
    """
    shape = list(x.shape)
    shape[dim] = index.numel()
    count = torch.Size(shape).numel()
    if count < MIN_ELEMENTS or not applies(x):
        return x.index_select(dim, index)
    return torch.index_select(x, dim, index, out=_buffer(slot, count, x.dtype).view(shape))


def release() -> None:
    """Drop every thread's buffers (they are made again on the next use)."""
    with _lock:
        for slots in list(_all_slots):
            slots.buffers.clear()
