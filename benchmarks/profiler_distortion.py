"""How much torch's profiler distorts a force-model case: the same SiLU timed with and without it.

    python -m benchmarks.profiler_distortion                     # ethanol energies+forces, batch 1
    python -m benchmarks.profiler_distortion aspirin-inference-b1

One thread, gaatool alone. Prints the time per call of the case with and without the profiler, and
the median wall-clock time of the model's largest SiLU (timed around the call, inside the model) and
of the same SiLU on a tensor of that shape outside the model, each with and without the profiler.
Session 9 read `profile_case` self times as elementwise operations costing ~3x more inside the model
than alone; on session 12's EPYC the profiler itself made the in-model SiLU 3-4x slower while the
isolated one did not move, so that reading was the profiler's (benchmarks/README.md, "Session 12").
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import time

import torch

import gaatool.nn.swish as swish_module

from .bench_kernels import median_us
from .harness import median
from .profile_case import parse_case, warm_gaatool_step


class _TimedSilu:
    """Stands in for ``torch.nn`` inside gaatool.nn.swish: times each SiLU call, by element count."""

    def __init__(self):
        self.times: dict[int, list[float]] = {}
        self.functional = self

    def silu(self, x: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = torch.nn.functional.silu(x)
        self.times.setdefault(x.numel(), []).append(time.perf_counter() - start)
        return out


def measure(case: str, calls: int = 5) -> dict[str, float]:
    """ms per call and µs per largest SiLU (in the model and alone), each plain and profiled."""
    spec = parse_case(case)
    if spec.model not in ("ethanol", "aspirin"):
        raise SystemExit(f"profiler_distortion: {case}: only the force models (ethanol, aspirin) use SiLU")
    step = warm_gaatool_step(spec)
    result = {}
    original = swish_module.nn
    try:
        profiled = functools.partial(torch.profiler.profile, record_shapes=True)  # as profile_case runs it
        for label, context in (("plain", contextlib.nullcontext), ("profiled", profiled)):
            timed = _TimedSilu()
            swish_module.nn = timed
            with context():
                start = time.perf_counter()
                for _ in range(calls):
                    step()
                result[f"{label}_ms_per_call"] = (time.perf_counter() - start) / calls * 1e3
                largest = max(timed.times)
                result[f"{label}_model_silu_us"] = median(timed.times[largest]) * 1e6
                alone = torch.randn(largest)
                result[f"{label}_alone_silu_us"] = median_us(lambda: torch.nn.functional.silu(alone), 25)
            result["silu_elements"] = largest
    finally:
        swish_module.nn = original
    return result


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", nargs="?", default="ethanol-inference-b1", help="MODEL-MODE-bBATCH (force models)")
    parser.add_argument("--calls", type=int, default=5, help="calls per measurement")
    args = parser.parse_args(argv)
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    threads = torch.get_num_threads()
    try:
        result = measure(args.case, args.calls)
    finally:
        torch.set_num_threads(threads)
    print(f"{args.case}, one thread: {result['plain_ms_per_call']:.2f} ms per call, "
          f"{result['profiled_ms_per_call']:.2f} ms under the profiler")
    print(f"SiLU of {result['silu_elements']} values inside the model: {result['plain_model_silu_us']:.1f} us, "
          f"{result['profiled_model_silu_us']:.1f} us under the profiler")
    print(f"the same SiLU alone: {result['plain_alone_silu_us']:.1f} us, "
          f"{result['profiled_alone_silu_us']:.1f} us under the profiler")
    return result


if __name__ == "__main__":
    main()
