"""Where one benchmark case spends its time: gaatool alone, one torch thread, torch's profiler.

    python -m benchmarks.profile_case ethanol-inference-b1
    python -m benchmarks.profile_case crystal-inference-b256 --calls 10 --rows 20
    python -m benchmarks.profile_case crystal-inference-b1024 --keep-freed-memory   # as the gaatool command runs

Prints the median time per call, the process's user and system CPU time and minor page faults per
call (getrusage), then the operations with the most self time, grouped by input shape. One thread,
so every operation shows up (the side-by-side workers of a multi-core run are invisible to the
profiler). For diagnosis, not for ratios: the profiler itself adds time, and not evenly. It prints
the profiled calls' own time beside the unprofiled median: on session 12's EPYC an ethanol batch-1
call took 10.6 ms alone and 17.7 ms profiled, and a SiLU of the (1, 9, 9, 9, 64) hidden layer 28 us
alone inside the model (timed around the call) but 97 us as the profiler reports it, while a SiLU
outside the model measured the same with and without it (21 / 22 us). Read self times as a ranking
of operations, not as what they cost unprofiled.
"""
from __future__ import annotations

import argparse
import resource
import time

import torch

from . import harness
from .bench_models_reference import CaseSpec, prepare
from .run import select_cases


def parse_case(key: str) -> CaseSpec:
    """``MODEL-MODE-bBATCH`` -> CaseSpec (``crystal-inference-b256``), parsed as ``benchmarks.run --cases`` does."""
    try:
        cases = select_cases(key)
    except ValueError as err:
        raise SystemExit(f"profile_case: case must look like crystal-inference-b256 ({err})") from None
    if len(cases) != 1:
        raise SystemExit(f"profile_case: case must look like crystal-inference-b256 ({key!r} names {len(cases)})")
    return cases[0]


def warm_gaatool_step(spec: CaseSpec):
    """gaatool's step of the case on one torch thread, called three times (caches filled, pages touched)."""
    torch.set_num_threads(1)
    step = prepare(spec, implementations=("gaatool",)).steps["gaatool"]
    for _ in range(3):
        step()
    return step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", help="MODEL-MODE-bBATCH, e.g. ethanol-inference-b1")
    parser.add_argument("--calls", type=int, default=20, help="timed calls (and profiled: a quarter)")
    parser.add_argument("--rows", type=int, default=15, help="operations listed")
    harness.add_keep_freed_memory_option(parser)
    args = parser.parse_args(argv)
    harness.apply_keep_freed_memory_option(parser, args)
    spec = parse_case(args.case)
    step = warm_gaatool_step(spec)
    times = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(args.calls):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    n = args.calls
    print(f"{spec.key}, one thread: {sorted(times)[n // 2] * 1e3:.3f} ms per call (median of {n}); per call "
          f"user {(after.ru_utime - before.ru_utime) / n * 1e3:.3f} ms, system "
          f"{(after.ru_stime - before.ru_stime) / n * 1e3:.3f} ms, {(after.ru_minflt - before.ru_minflt) / n:.0f} "
          "minor page faults")
    profiled = max(1, n // 4)
    with torch.profiler.profile(record_shapes=True) as profile:
        start = time.perf_counter()
        for _ in range(profiled):
            step()
        profiled_ms = (time.perf_counter() - start) / profiled * 1e3
    print(f"operations by self time over {profiled} profiled calls ({profiled_ms:.3f} ms per call under the "
          "profiler, its own cost included):")
    print(profile.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=32, max_shapes_column_width=70))


if __name__ == "__main__":
    main()
