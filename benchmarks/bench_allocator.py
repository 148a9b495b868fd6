"""What :func:`gaatool.allocator.keep_freed_memory` (called by the ``gaatool`` CLI) buys: gaatool alone, glibc defaults against kept memory.

    python -m benchmarks.bench_allocator [--quick] [--cases KEYS] [--rounds N] [--calls N] [--threads N] [--out DIR]

Each case (the keys of :mod:`benchmarks.run`, default: every default case
except aspirin) runs in fresh subprocesses, one per setting and round, the
two settings alternating (default, kept, default, kept, ...): glibc's malloc
as a Python user's process has it, and after ``keep_freed_memory()``, as in
the ``gaatool`` command line. Each subprocess builds gaatool's model, makes
two warm-up calls and times ``--calls`` calls; reported per setting: the
median over rounds of each subprocess's median ms per item, and the minor page
faults per call (``getrusage``). ``MALLOC_*`` variables are removed from the
subprocesses' environment (they would stop ``keep_freed_memory``). The
reference library is not involved: this is a change to gaatool's own process.
Output: ``results/allocator-<device>.md`` and ``.json``.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the gaatool CLI does

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from gaatool.allocator import user_malloc_settings  # noqa: E402

from . import harness  # noqa: E402
from .bench_models_reference import FULL_CASES, QUICK_CASES, CaseSpec, prepare  # noqa: E402

__all__ = ["SETTINGS", "DEFAULT_CASES", "measure", "child_environment", "summarize", "main"]

#: ``default``: glibc as the process starts; ``kept``: after keep_freed_memory().
SETTINGS = ("default", "kept")
DEFAULT_CASES = tuple(c for c in FULL_CASES if c.model != "aspirin")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(spec: CaseSpec, setting: str, calls: int = 5, threads: int | None = None) -> dict:
    """In this process: gaatool's step for ``spec`` under ``setting``; ms per item and page faults per call."""
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    applied = False
    if setting == "kept":
        from gaatool.allocator import keep_freed_memory

        applied = keep_freed_memory()
    if threads:
        torch.set_num_threads(threads)
    step = prepare(spec, "cpu", implementations=("gaatool",)).steps["gaatool"]
    for _ in range(2):
        step()
    times, faults = [], []
    for _ in range(calls):
        before, start = _minor_faults(), time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        faults.append(_minor_faults() - before)
    return {"case": spec.key, "setting": setting, "applied": applied,
            "ms_per_item": harness.median(times) * 1e3 / spec.batch, "faults_per_call": harness.median(faults),
            "samples_ms_per_item": [t * 1e3 / spec.batch for t in times]}


def child_environment() -> dict[str, str]:
    """This process's environment without the user's malloc settings, with the repository on the path."""
    env = harness.child_environment(fixed_mmap_threshold=False)
    for key in user_malloc_settings(env):
        del env[key]
    return env


def _run_child(spec: CaseSpec, setting: str, calls: int, threads: int | None) -> dict:
    arguments = ["--child", json.dumps(spec.to_dict()), "--setting", setting, "--calls", str(calls)]
    arguments += ["--threads", str(threads)] if threads else []
    return harness.run_child("benchmarks.bench_allocator", arguments, env=child_environment())


def summarize(runs: list[dict]) -> list[dict]:
    """Per case: median ms per item and faults per call of each setting over rounds, and default / kept."""
    rows = []
    for case in dict.fromkeys(run["case"] for run in runs):
        row: dict = {"case": case}
        for setting in SETTINGS:
            mine = [run for run in runs if run["case"] == case and run["setting"] == setting]
            row[setting] = {"ms_per_item": harness.median([run["ms_per_item"] for run in mine]),
                            "range_ms_per_item": [min(run["ms_per_item"] for run in mine),
                                                  max(run["ms_per_item"] for run in mine)],
                            "faults_per_call": harness.median([run["faults_per_call"] for run in mine]),
                            "applied": all(run["applied"] for run in mine) if setting == "kept" else False}
        row["speedup"] = row["default"]["ms_per_item"] / row["kept"]["ms_per_item"]
        rows.append(row)
    return rows


def _markdown(info: dict, rows: list[dict], rounds: int, calls: int) -> str:
    table = harness.markdown_table(
        ["case", "default ms/item (range)", "kept ms/item (range)", "speed-up", "page faults per call: default / kept"],
        [[row["case"],
          f"{row['default']['ms_per_item']:.4g} ({row['default']['range_ms_per_item'][0]:.4g}-"
          f"{row['default']['range_ms_per_item'][1]:.4g})",
          f"{row['kept']['ms_per_item']:.4g} ({row['kept']['range_ms_per_item'][0]:.4g}-"
          f"{row['kept']['range_ms_per_item'][1]:.4g})",
          f"{row['speedup']:.2f}x" + ("" if row["kept"]["applied"] else " (not applied)"),
          f"{row['default']['faults_per_call']:.0f} / {row['kept']['faults_per_call']:.0f}"] for row in rows])
    return (f"# gaatool with glibc's malloc defaults and with freed memory kept\n\n"
            f"{info['date']} · host {info['hostname']} · {info['cpu_model']} · torch {info['torch_version']} · "
            f"{info['torch_threads']} threads · float32\n\n"
            f"gaatool only, fresh subprocess per case, setting and round ({rounds} rounds, settings alternating); "
            f"median of {calls} calls after 2 warm-up calls, then median (and range) over rounds. *kept*: "
            f"`gaatool.allocator.keep_freed_memory()`, what the `gaatool` command line does at start.\n\n"
            f"{table}\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_allocator",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batches, 1 round (a smoke check)")
    parser.add_argument("--cases", default=None, help="case keys as in benchmarks.run (default: all but aspirin)")
    parser.add_argument("--rounds", type=int, default=None, help="subprocess pairs per case (default 3; quick 1)")
    parser.add_argument("--calls", type=int, default=None, help="timed calls per subprocess (default 5; quick 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the .md and .json results")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--setting", default="default", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        result = measure(CaseSpec(**json.loads(args.child)), args.setting, args.calls or 5, args.threads)
        print(json.dumps(result))
        return 0
    from .run import select_cases

    rounds = args.rounds or (1 if args.quick else 3)
    calls = args.calls or (2 if args.quick else 5)
    try:
        cases = select_cases(args.cases, args.quick) if args.cases else list(QUICK_CASES if args.quick
                                                                             else DEFAULT_CASES)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    runs = []
    for spec in cases:
        for round_ in range(rounds):
            for setting in SETTINGS:
                run = _run_child(spec, setting, calls, args.threads)
                runs.append({**run, "round": round_})
                print(f"{spec.key:28s} {setting:8s} round {round_ + 1}: {run['ms_per_item']:.4g} ms/item, "
                      f"{run['faults_per_call']:.0f} page faults per call", file=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = harness.machine_info("cpu")
    rows = summarize(runs)
    stem = "allocator-" + harness.device_slug("cpu") + ("-quick" if args.quick else "")
    payload = {"machine": info, "rounds": rounds, "calls": calls, "cases": rows, "runs": runs}
    json_path, md_path = harness.write_results(args.out, stem, payload, _markdown(info, rows, rounds, calls))
    print(_markdown(info, rows, rounds, calls))
    print(f"wrote {md_path} and {json_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
