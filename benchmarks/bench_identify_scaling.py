"""``gaatool identify`` at scale: particles per second and peak memory on fcc frames of 10^4-10^6 particles.

    python -m benchmarks.bench_identify_scaling [--quick] [--device cpu|cuda] [--model PATH]
                                                [--sizes 1e4,1e5,1e6] [--chunk-size N] [--threads N]
                                                [--keep-freed-memory] [--out DIR]

Runs the library path of ``gaatool identify``
(:class:`gaatool.tasks.crystal.identify.Identifier`, ``label(frame)``: length
scale, periodic neighbour search, model in chunks) on synthetic frames: a
perfect fcc supercell of at least N particles
(:func:`gaatool.tasks.crystal.dataset.perfect_crystal`) with Gaussian noise
of 0.05 nearest-neighbour distances. Each size runs in two fresh subprocesses:
one measures the wall time of ``label`` (median of up to 3 calls while they
take under 20 s in all) with the normal allocator (with ``--keep-freed-memory``:
after :func:`gaatool.allocator.keep_freed_memory`, as the ``gaatool identify``
command runs, which also lets the fused kernels of :mod:`gaatool.nn.fused` run), the other the peak
resident-memory growth of one call (method in :mod:`benchmarks.harness`,
whose fixed mmap threshold would slow the timing down; on CUDA also the GPU
peak). Frame construction is not timed.

Time should grow linearly with N (the model works per particle, in chunks of
``chunk_size``): the fitted exponent of time ~ N^a is reported and flagged
when a is outside [0.8, 1.2].

The model is ``--model`` (default: the pretrained crystal model); if that is
missing, a randomly initialised default-size CrystalClassifier is saved to a
temporary checkpoint: the same cost, meaningless labels, and the output says so.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the gaatool CLI does

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from . import harness  # noqa: E402

__all__ = ["fcc_frame", "random_checkpoint", "measure", "scaling_exponent", "main", "FULL_SIZES", "QUICK_SIZES"]

FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 2_000, 4_000)
LINEAR_EXPONENT_RANGE = (0.8, 1.2)
NOISE = 0.05  # nearest-neighbour distances

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def fcc_frame(n_particles: int, noise: float = NOISE, seed: int = 0):
    """A periodic fcc Frame of at least ``n_particles`` particles (unit nearest-neighbour distance), with noise."""
    from gaatool.io.frame import Frame
    from gaatool.tasks.crystal.dataset import add_noise, perfect_crystal
    from gaatool.tasks.crystal.prototypes import prototype_cell

    supercell, counts = perfect_crystal(prototype_cell("cF4-Cu"), int(n_particles), neighbors=12, noise=noise)
    positions = add_noise(supercell.positions, noise, np.random.default_rng(seed))
    return Frame(positions, supercell.lattice, np.zeros(len(positions), dtype=np.int64), ["A"],
                 source=f"synthetic fcc {counts}", index=0)


def random_checkpoint(path: str | os.PathLike, seed: int = 0) -> Path:
    """Save a randomly initialised default-size CrystalClassifier as a crystal checkpoint (for timing only).

    Two particle types (A, B), matching the default 4 type-pair features.
    """
    from gaatool.checkpoint import save_checkpoint
    from gaatool.models.crystal import CrystalClassifier
    from gaatool.tasks.crystal.prototypes import PROTOTYPE_NAMES

    torch.manual_seed(seed)
    model = CrystalClassifier(CrystalClassifier.Config(n_classes=len(PROTOTYPE_NAMES)))
    metadata = {"task": "crystal", "class_names": list(PROTOTYPE_NAMES), "type_names": ["A", "B"], "neighbors": 12,
                "note": "random weights, written by benchmarks/bench_identify_scaling.py for timing only"}
    return save_checkpoint(path, model, metadata)


def measure(n_particles: int, checkpoint: str | os.PathLike, device: str = "cpu", chunk_size: int | None = None,
            repeats: int = 3, compile: str = "off") -> dict:
    """Time and peak memory of ``Identifier.label`` on one fcc frame (run in a fresh process for sound memory).

    The memory is the first call's; the time the median of up to ``repeats`` calls.
    """
    from gaatool.tasks.crystal.identify import Identifier

    frame = fcc_frame(n_particles)
    identifier = Identifier(checkpoint, device=device, chunk_size=chunk_size, compile=compile)
    on_cuda = identifier.device.type == "cuda"
    identifier.label(fcc_frame(500, seed=1))  # warm-up: threads, kernels, allocator, compilation
    before = harness.rss_bytes()
    harness.reset_peak_rss()
    if on_cuda:
        torch.cuda.synchronize(identifier.device)
        gpu_before = torch.cuda.memory_allocated(identifier.device)
        torch.cuda.reset_peak_memory_stats(identifier.device)
    start = time.perf_counter()
    labels = identifier.label(frame)
    seconds = [time.perf_counter() - start]
    result = {"n_particles": frame.n_particles, "peak_memory_bytes": max(harness.peak_rss_bytes() - before, 0),
              "process_peak_bytes": harness.peak_rss_bytes()}
    if on_cuda:
        result["gpu_peak_memory_bytes"] = max(torch.cuda.max_memory_allocated(identifier.device) - gpu_before, 0)
    # more calls only while they are cheap (10^6 particles take minutes on a CPU); memory is the first call's
    while len(seconds) < repeats and sum(seconds) < 20.0:
        start = time.perf_counter()
        identifier.label(frame)
        seconds.append(time.perf_counter() - start)
    median = float(np.median(seconds))
    fractions = labels.fractions(len(identifier.class_names))
    result.update({"seconds": median, "samples_s": seconds, "particles_per_second": frame.n_particles / median,
                   "us_per_particle": 1e6 * median / frame.n_particles, "chunk_size": identifier.chunk_size,
                   "fcc_fraction": float(fractions[identifier.class_names.index("cF4-Cu")])
                   if "cF4-Cu" in identifier.class_names else None})
    return result


def scaling_exponent(sizes, seconds) -> float:
    """Least-squares exponent a of seconds ~ sizes^a (1 = linear)."""
    x, y = np.log(np.asarray(sizes, dtype=float)), np.log(np.asarray(seconds, dtype=float))
    if len(x) < 2:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])


def _parse_sizes(text: str | None, quick: bool) -> list[int]:
    if not text:
        return list(QUICK_SIZES if quick else FULL_SIZES)
    try:
        sizes = [int(float(part)) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--sizes {text!r}: give particle counts separated by commas, e.g. 1e4,1e5,1e6") from None
    if not sizes or min(sizes) < 100:
        raise ValueError(f"--sizes {text!r}: each size must be at least 100 particles")
    return sizes


def render_markdown(payload: dict) -> str:
    """The scaling results as Markdown."""
    info = payload["machine"]
    lines = [f"# gaatool identify scaling on {payload['device_name']}", "",
             f"{info['date']} · host {info['hostname']} · {info['cpu_model']} · torch {info['torch_version']} · "
             f"{info['torch_threads']} threads · chunk size {payload['chunk_size']}"
             f" · torch.compile {payload.get('compile', 'off')}"
             + (" · freed memory kept (as the gaatool command runs)" if payload.get("kept_memory") else "")
             + (" · **quick run**" if payload["quick"] else ""), "",
             f"Model: {payload['model']}" + (" (**random weights: timing only**)" if payload["random_weights"] else ""),
             ""]
    header = ["particles", "seconds", "particles/s", "µs/particle", "peak memory growth MiB", "process peak MiB"]
    if any("gpu_peak_memory_bytes" in r for r in payload["sizes"]):
        header.append("GPU peak MiB")
    rows = []
    for r in payload["sizes"]:
        row = [r["n_particles"], f"{r['seconds']:.3g}", f"{r['particles_per_second']:.4g}",
               f"{r['us_per_particle']:.3g}", f"{r['peak_memory_bytes'] / 2**20:.1f}",
               f"{r['process_peak_bytes'] / 2**20:.0f}"]
        if "gpu_peak_memory_bytes" in r:
            row.append(f"{r['gpu_peak_memory_bytes'] / 2**20:.1f}")
        rows.append(row)
    lines.append(harness.markdown_table(header, rows))
    low, high = LINEAR_EXPONENT_RANGE
    verdict = "linear" if payload["linear"] else f"NOT linear (outside [{low}, {high}])"
    lines += ["", f"Time ~ N^{payload['scaling_exponent']:.2f}: {verdict}.", "",
              f"Peak memory: {payload['memory_method']}"]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_identify_scaling",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES} instead of {FULL_SIZES}")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--model", type=Path, default=None,
                        help="crystal checkpoint (default: pretrained/crystal.safetensors, else random weights)")
    parser.add_argument("--sizes", default=None, help="particle counts, comma-separated (e.g. 1e4,1e5,1e6)")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="particles per model call (default: identify's, 2048 on a CPU, 16384 on a GPU)")
    parser.add_argument("--compile", choices=("off", "on"), default="off",
                        help="identify's --compile (default off: the eager scaling; 'on' compiles every size)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    harness.add_keep_freed_memory_option(parser)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the .md and .json results")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    return parser


def _resolve_model(path: Path | None, scratch: Path) -> tuple[Path, bool]:
    if path is not None:
        if not path.is_file():
            raise ValueError(f"--model {path}: no such checkpoint")
        return path, False
    from gaatool.errors import CheckpointError
    from gaatool.tasks.crystal.identify import default_crystal_checkpoint

    try:
        return default_crystal_checkpoint(), False
    except CheckpointError:
        return random_checkpoint(scratch / "random-crystal.safetensors"), True


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child is not None:
        harness.apply_keep_freed_memory_option(parser, args)
        print(json.dumps(measure(args.child, args.model, args.device, args.chunk_size, repeats=args.repeats,
                                 compile=args.compile)))
        return 0
    device = torch.device(args.device)
    try:
        sizes = _parse_sizes(args.sizes, args.quick)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: this torch has no CUDA device; use --device cpu")
        if args.chunk_size is not None and args.chunk_size < 1:
            raise ValueError(f"--chunk-size must be positive, got {args.chunk_size}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="gaatool-bench-") as scratch:
        try:
            model, random_weights = _resolve_model(args.model, Path(scratch))
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        results = []
        for n in sizes:
            arguments = ["--child", str(n), "--model", str(model), "--device", args.device,
                         "--threads", str(torch.get_num_threads()), "--compile", args.compile]
            if args.chunk_size is not None:
                arguments += ["--chunk-size", str(args.chunk_size)]
            # time with the normal allocator, memory with the fixed mmap threshold (harness.child_environment)
            timing = arguments + (["--keep-freed-memory"] if args.keep_freed_memory else [])
            try:
                result = harness.run_child("benchmarks.bench_identify_scaling", timing, fixed_mmap_threshold=False)
                memory = harness.run_child("benchmarks.bench_identify_scaling", arguments + ["--repeats", "1"])
            except RuntimeError as err:  # the child's own error (a damaged checkpoint, ...), in one line
                print(f"error: {err}", file=sys.stderr)
                return 1
            result.update({key: memory[key] for key in memory if "memory" in key or key == "process_peak_bytes"})
            results.append(result)
            print(f"{result['n_particles']} particles: {result['seconds']:.3g} s, "
                  f"{result['particles_per_second']:.4g} particles/s, "
                  f"{result['peak_memory_bytes'] / 2**20:.1f} MiB", file=sys.stderr)
    exponent = scaling_exponent([r["n_particles"] for r in results], [r["seconds"] for r in results])
    info = harness.machine_info(device)
    payload = {
        "benchmark": "identify-scaling", "quick": args.quick, "device_name": info.get("gpu_name", info["cpu_model"]),
        "machine": info, "model": "random default-size CrystalClassifier" if random_weights else str(model),
        "random_weights": random_weights, "chunk_size": results[0]["chunk_size"], "compile": args.compile,
        "kept_memory": args.keep_freed_memory,
        "noise": NOISE,
        "sizes": results,
        "scaling_exponent": exponent,
        "linear": bool(LINEAR_EXPONENT_RANGE[0] <= exponent <= LINEAR_EXPONENT_RANGE[1]),
        "memory_method": ("resident-set growth of one label() call in a fresh subprocess per size "
                          f"(glibc MALLOC_MMAP_THRESHOLD_={harness.MALLOC_MMAP_THRESHOLD}, VmHWM reset); "
                          "the frame and model are loaded before; times come from another subprocess with the "
                          + ("allocator keeping freed memory, as the gaatool command runs" if args.keep_freed_memory
                             else "normal allocator") +
                          ("; GPU: max_memory_allocated growth" if device.type == "cuda" else "") + "."),
    }
    stem = "identify-" + harness.device_slug(device) + ("" if args.compile == "off" else f"-compile-{args.compile}") \
        + ("-kept" if args.keep_freed_memory else "") + ("-quick" if args.quick else "")
    for path in harness.write_results(args.out, stem, payload, render_markdown(payload)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
