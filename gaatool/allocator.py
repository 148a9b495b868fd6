"""Let glibc keep freed memory, so that the next batch does not page-fault it in again.

torch's CPU tensors come from malloc. With glibc's defaults, blocks of a few
MiB (the tuple hidden layers of a piece) are returned to the kernel when freed
(mmap'ed blocks, or the top of a heap above the trim threshold), and the next
batch's tensors of the same size are fresh pages that fault in one by one,
zero-filled. On 2-core CPUs that was 10-35% of a training step (crystal,
backmapping, forces at large batches; ``python -m benchmarks.bench_allocator``).

:func:`keep_freed_memory` raises the thresholds with ``mallopt`` so freed
blocks stay in the process for reuse: the peak memory is the same, but the
resident size stays near it until the process ends. It changes the whole
process, so the library never calls it by itself; the ``gaatool`` command
line does at start (the process is gaatool's), and Python users can call it.
"""
from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory", "freed_memory_kept", "user_malloc_settings", "USER_SETTINGS", "OPT_OUT"]

#: glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3

#: Environment variables with which a user sets glibc's malloc up themselves: then nothing is changed.
USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_")

#: ``GAATOOL_MALLOC=default`` leaves glibc's settings alone.
OPT_OUT = ("GAATOOL_MALLOC", "default")

#: Blocks up to this size come from the heap (glibc caps the setting at 32 MiB on 64-bit).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of a heap is returned to the kernel only above this.
TRIM_THRESHOLD = 1 << 30
#: Extra memory requested whenever a heap grows, so that it grows rarely.
TOP_PAD = 64 << 20

_kept = False  # set by a successful keep_freed_memory()


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # musl and others lack it  # noqa: B018
        libc.mallopt
    except (OSError, AttributeError):
        return None
    return libc


def user_malloc_settings(environ: dict) -> list[str]:
    """The environment variables in ``environ`` that set glibc's malloc thresholds up (:data:`USER_SETTINGS`,
    and ``GLIBC_TUNABLES`` when it holds ``glibc.malloc`` tunables)."""
    names = [name for name in USER_SETTINGS if name in environ]
    return names + (["GLIBC_TUNABLES"] if "glibc.malloc" in environ.get("GLIBC_TUNABLES", "") else [])


def keep_freed_memory(environ: dict | None = None) -> bool:
    """Raise glibc's trim and mmap thresholds for this process; True if they were changed.

    Does nothing (False) off glibc, when the user set glibc's malloc up in the
    environment (:data:`USER_SETTINGS`, or ``glibc.malloc`` tunables in
    ``GLIBC_TUNABLES``), or with ``GAATOOL_MALLOC=default``.
    """
    environ = os.environ if environ is None else environ
    if environ.get(OPT_OUT[0], "").strip().lower() == OPT_OUT[1]:
        return False
    if user_malloc_settings(environ):
        return False
    libc = _glibc()
    if libc is None:
        return False
    global _kept
    results = [libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD), libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
               libc.mallopt(_M_TOP_PAD, TOP_PAD)]
    changed = all(result == 1 for result in results)  # mallopt returns 1 on success
    _kept = _kept or changed
    return changed


def freed_memory_kept() -> bool:
    """Whether :func:`keep_freed_memory` changed this process's malloc: then fresh big tensors come from memory
    the process already holds, where with glibc's defaults their pages fault in again."""
    return _kept
