"""Measurement tools shared by the benchmarks: timing, FLOPs, peak memory, machine facts, output files.

Methods (also in benchmarks/README.md):

* **time**: wall clock (``time.perf_counter``) of whole calls, device
  synchronised inside the step; warm-up calls first; the implementations are
  timed alternately in the same process, so that load from other processes
  hits both alike; the median is reported.
* **FLOPs**: ``torch.utils.flop_counter.FlopCounterMode`` over one call,
  forward and backward: matrix products only (mm, addmm, bmm, baddbmm, convs,
  attention kernels), not element-wise work. Divided by the batch size.
* **peak memory, CPU**: torch's CPU allocations go through malloc, which
  tracemalloc cannot see, so the step runs in a fresh subprocess whose glibc
  malloc returns every block of 128 KiB or more to the kernel on free
  (``MALLOC_MMAP_THRESHOLD_`` fixed, which also disables glibc's adaptive
  threshold). After a warm-up call, the kernel's resident-set high-water mark
  is reset (``/proc/self/clear_refs`` = 5) and one call is made; the peak is
  ``VmHWM`` after the call minus ``VmRSS`` before it: the extra memory the
  call needed on top of the model, inputs and optimiser state. Linux only.
* **peak memory, CUDA**: ``torch.cuda.max_memory_allocated`` during one call
  minus ``torch.cuda.memory_allocated`` before it, in the same process.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from gaatool.io.atomic import atomic_write_text

__all__ = ["add_keep_freed_memory_option", "apply_keep_freed_memory_option", "time_alternating", "count_flops",
           "matmul_peak_gflops", "rss_bytes", "peak_rss_bytes", "reset_peak_rss",
           "cpu_peak_growth", "cuda_peak_growth", "run_child", "child_environment", "machine_info", "device_slug",
           "write_results", "markdown_table", "MALLOC_MMAP_THRESHOLD"]

#: glibc allocations of at least this many bytes are mmap'ed, so freeing them returns them to the kernel.
MALLOC_MMAP_THRESHOLD = 131072


def time_alternating(steps: Mapping[str, Callable[[], None]], *, warmup: int = 1, min_repeats: int = 3,
                     max_repeats: int = 20, target_seconds: float = 2.0) -> dict[str, list[float]]:
    """Seconds per call of each step, the steps called in turn (a, b, a, b, ...).

    After ``warmup`` untimed calls of each, one more round sizes the run: the
    number of timed rounds is ``target_seconds`` divided by that round's
    slowest call, clipped to ``[min_repeats, max_repeats]``. (Sizing from the
    warm-up itself let a one-off cost, such as a 10 s compilation, cut a fast
    case down to ``min_repeats`` samples taken while it was still warming up.)
    """
    for _ in range(max(warmup, 1)):
        for step in steps.values():
            step()
    slowest = 0.0
    for step in steps.values():
        start = time.perf_counter()
        step()
        slowest = max(slowest, time.perf_counter() - start)
    repeats = int(min(max(target_seconds / max(slowest, 1e-9), min_repeats), max_repeats))
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            samples[name].append(time.perf_counter() - start)
    return samples


def add_keep_freed_memory_option(parser) -> None:
    """``--keep-freed-memory``: keep freed memory in the process, as the ``gaatool`` command does."""
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="keep freed memory in the process, as the gaatool command does (gaatool.allocator)")


def apply_keep_freed_memory_option(parser, args) -> None:
    """:func:`gaatool.allocator.keep_freed_memory` when ``--keep-freed-memory`` was given; a usage error if it
    cannot apply."""
    if not args.keep_freed_memory:
        return
    from gaatool.allocator import keep_freed_memory

    if not keep_freed_memory():
        parser.error("--keep-freed-memory: glibc's malloc could not be changed (not glibc, MALLOC_* set, "
                     "or GAATOOL_MALLOC=default)")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def count_flops(step: Callable[[], None]) -> int:
    """Matrix-product FLOPs (multiply and add counted separately) of one call, forward and backward."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def matmul_peak_gflops(device: str | torch.device = "cpu", size: int | None = None, repeats: int = 10) -> dict:
    """Best achieved GFLOP/s of a dense float32 (size x size) @ (size x size) on ``device``.

    On CUDA, TF32 is switched off for the measurement so that it is a true
    float32 peak (restored afterwards).
    """
    device = torch.device(device)
    size = size or (8192 if device.type == "cuda" else 2048)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g).to(device)
    b = torch.randn(size, size, generator=g).to(device)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        best = float("inf")
        for i in range(repeats + 2):
            start = time.perf_counter()
            torch.mm(a, b)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - start
            if i >= 2:  # two warm-ups
                best = min(best, elapsed)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return {"size": size, "gflops": 2.0 * size**3 / best / 1e9, "best_seconds": best, "tf32": False}


# --------------------------------------------------------------------------- memory


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def rss_bytes() -> int:
    """Current resident set size of this process (Linux)."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """Resident-set high-water mark of this process since start or :func:`reset_peak_rss` (Linux)."""
    return _status_kib("VmHWM") * 1024


def reset_peak_rss() -> None:
    """Reset the kernel's resident-set high-water mark to the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def cpu_peak_growth(step: Callable[[], None], warmup: int = 1) -> int:
    """Bytes of resident memory one call of ``step`` needs above what is resident before it.

    Sound only in a process started with :func:`child_environment` (mmap'ed
    large blocks), which :func:`run_child` arranges.
    """
    import gc

    for _ in range(warmup):
        step()
    gc.collect()
    before = rss_bytes()
    reset_peak_rss()
    step()
    return max(peak_rss_bytes() - before, 0)


def cuda_peak_growth(step: Callable[[], None], device: str | torch.device, warmup: int = 1) -> int:
    """Bytes of CUDA memory allocated at the peak of one call above what is allocated before it."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return max(torch.cuda.max_memory_allocated(device) - before, 0)


def child_environment(fixed_mmap_threshold: bool = True) -> dict[str, str]:
    """Environment of a benchmark subprocess: this one's, plus (for memory) a fixed glibc mmap threshold.

    The fixed threshold makes memory figures sound but costs time (every big
    block is mapped and unmapped again), so timings run without it.
    """
    env = dict(os.environ)
    if fixed_mmap_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = str(MALLOC_MMAP_THRESHOLD)
    else:
        env.pop("MALLOC_MMAP_THRESHOLD_", None)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_child(module: str, arguments: Sequence[str], timeout: float | None = None,
              fixed_mmap_threshold: bool = True, env: dict[str, str] | None = None) -> dict:
    """Run ``python -m module arguments`` in a fresh process; its last stdout line is a JSON object.

    ``fixed_mmap_threshold``: see :func:`child_environment` (True for memory, False for time);
    ``env`` replaces that environment altogether.
    """
    command = [sys.executable, "-m", module, *arguments]
    env = child_environment(fixed_mmap_threshold) if env is None else env
    completed = subprocess.run(command, capture_output=True, text=True, env=env,
                               timeout=timeout,
                               cwd=str(Path(__file__).resolve().parent.parent))
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = completed.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"benchmark subprocess {' '.join(command[2:])} failed (exit {completed.returncode}): "
                           + " | ".join(tail))
    return json.loads(lines[-1])


# --------------------------------------------------------------------------- machine and output


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform reports."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def _slug(text: str) -> str:
    text = re.sub(r"\(r\)|\(tm\)|\bcpu\b|@.*$", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "unknown"


def device_slug(device: str | torch.device) -> str:
    """File-name id of a device: ``cpu-<cpu model>`` or ``cuda-<gpu name>``."""
    device = torch.device(device)
    if device.type == "cuda":
        return "cuda-" + _slug(torch.cuda.get_device_name(device))
    return "cpu-" + _slug(cpu_model())


def machine_info(device: str | torch.device) -> dict:
    """Facts that make results comparable: date, host, CPU/GPU, torch version, threads."""
    device = torch.device(device)
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "device": str(device),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        # glibc's malloc settings change the reference's times ~2x (its big tensors page-fault when
        # freshly mapped); recorded so that runs with and without them are told apart
        "malloc_env": {key: value for key, value in sorted(os.environ.items()) if key.startswith("MALLOC_")},
        "dtype": "float32",
    }
    try:
        with open("/proc/loadavg") as handle:
            info["load_average_1min"] = float(handle.read().split()[0])
    except OSError:
        pass
    if device.type == "cuda":
        info["gpu_name"] = torch.cuda.get_device_name(device)
        info["cuda_version"] = torch.version.cuda
        props = torch.cuda.get_device_properties(device)
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda_matmul_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)  # False: true fp32 models
    return info


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(out_dir: str | os.PathLike, stem: str, payload: dict, markdown: str) -> tuple[Path, Path]:
    """Write ``<out>/<stem>.json`` and ``<out>/<stem>.md`` atomically; returns both paths."""
    out = Path(out_dir)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    atomic_write_text(json_path, json.dumps(payload, indent=2, sort_keys=False) + "\n")
    atomic_write_text(md_path, markdown.rstrip() + "\n")
    return json_path, md_path
