"""gaatool against the reference library (geometric-algebra-attention 0.5.1), one command.

    python -m benchmarks.run [--quick] [--device cpu|cuda] [--out benchmarks/results]
                             [--threads N] [--cases KEYS] [--no-memory]

Times the paper's three models built with gaatool and with the reference
library at equal architecture and weights (:mod:`benchmarks.reference`), in
the same process and alternately, in float32: ms per item (median), the
speed-up reference/gaatool, peak memory of one call, matrix-product FLOPs
per item and the achieved GFLOP/s against a dense float32 matmul measured in
the same run. Writes ``<out>/<device>.md`` and ``.json`` (``-quick`` appended
for ``--quick``) and prints their paths.

``--cases`` takes comma-separated case keys (``aspirin-inference-b64``, any
batch), models (``ethanol``) or model-modes (``crystal-train``).
"""
from __future__ import annotations

import os

# as the gaatool CLI does: spinning OpenMP waits slow torch down badly on shared cores
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from . import harness  # noqa: E402
from .bench_models_reference import FULL_CASES, IMPLEMENTATIONS, QUICK_CASES, CaseSpec, prepare  # noqa: E402
from .reference import load_reference_library, reference_version  # noqa: E402

__all__ = ["main", "run_case", "select_cases", "ISSUE_REFERENCE_MS", "render_markdown"]

#: The reference library's ms per item in issue 6 (idle 2-core CPU, torch 2.13, float32), for orientation only:
#: a different run on a shared machine, so only same-run ratios count.
ISSUE_REFERENCE_MS = {
    "crystal-inference-b1024": 0.41, "crystal-train-b256": 1.6,
    "ethanol-inference-b1": 22.6, "ethanol-inference-b128": 5.6,
    "aspirin-inference-b1": 90.0, "aspirin-inference-b16": 80.0, "aspirin-inference-b128": 169.0,
    "ethanol-train-b32": 22.0, "backmap-inference-b256": 13.0,
}
#: Peak memory of the reference in issue 6, GB.
ISSUE_REFERENCE_GB = {"ethanol-inference-b128": 1.4, "aspirin-inference-b16": 1.9, "aspirin-inference-b128": 8.5}

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _quiet_reference_warnings() -> None:
    # gala 0.5.1 indexes with lists (deprecated in torch); one warning per call would drown the output
    warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing")


def select_cases(text: str | None, quick: bool = False) -> list[CaseSpec]:
    """Cases named by ``--cases`` (see module doc); all default cases when ``text`` is empty."""
    defaults = list(QUICK_CASES if quick else FULL_CASES)
    if not text:
        return defaults
    chosen: list[CaseSpec] = []
    for token in (t.strip() for t in text.split(",") if t.strip()):
        parts = token.split("-")
        if len(parts) == 3 and parts[2].startswith("b") and parts[2][1:].isdigit():
            matches = [CaseSpec(parts[0], parts[1], int(parts[2][1:]))]
        else:
            matches = [c for c in defaults if token in (c.model, f"{c.model}-{c.mode}")]
        if not matches:
            known = sorted({c.model for c in defaults} | {f"{c.model}-{c.mode}" for c in defaults})
            raise ValueError(f"--cases: {token!r} matches no case; use MODEL-MODE-bBATCH or one of {known}")
        chosen += [c for c in matches if c not in chosen]
    return chosen


def _memory(spec: CaseSpec, implementation: str, device: torch.device, threads: int, prepared,
            compile: bool = False) -> dict:
    if device.type == "cuda":
        return {"peak_memory_bytes": harness.cuda_peak_growth(prepared.steps[implementation], device)}
    arguments = ["--memory-child", json.dumps(spec.to_dict()), "--impl", implementation,
                 "--device", str(device), "--threads", str(threads)] + (["--compile"] if compile else [])
    child = harness.run_child("benchmarks.run", arguments)
    # the whole child's peak (torch libraries included) is what a process-level figure like the issue's counts
    return {"peak_memory_bytes": int(child["peak_bytes"]), "process_peak_bytes": int(child["process_peak_bytes"])}


def run_case(spec: CaseSpec, device: str | torch.device = "cpu", *, quick: bool = False, memory: bool = True,
             target_seconds: float | None = None, peak_gflops: float | None = None, compile: bool = False) -> dict:
    """Time (and measure) both implementations of one case; a JSON-ready dict."""
    device = torch.device(device)
    threads = torch.get_num_threads()
    prepared = prepare(spec, device, compile=compile)
    samples = harness.time_alternating(
        prepared.steps, warmup=1, min_repeats=2 if quick else 3, max_repeats=3 if quick else 20,
        target_seconds=target_seconds if target_seconds is not None else (0.2 if quick else 2.0))
    result = {"case": spec.key, "title": spec.title, **spec.to_dict(), "item": spec.item,
              "parameters": prepared.parameter_counts}
    # FLOPs do not depend on the batch size per item; count a small batch
    counting = prepare(CaseSpec(spec.model, spec.mode, min(spec.batch, 2)), device)
    for name in IMPLEMENTATIONS:
        seconds = harness.median(samples[name])
        flops = harness.count_flops(counting.steps[name]) / counting.spec.batch
        entry = {"ms_per_item": 1e3 * seconds / spec.batch, "ms_per_call": 1e3 * seconds,
                 "samples_s": samples[name], "flops_per_item": flops,
                 "gflops": flops * spec.batch / seconds / 1e9}
        if peak_gflops:
            entry["percent_of_peak"] = 100.0 * entry["gflops"] / peak_gflops
        result[name] = entry
    del counting
    if memory:
        for name in IMPLEMENTATIONS:
            result[name].update(_memory(spec, name, device, threads, prepared, compile))
    result["speedup"] = result["reference"]["ms_per_item"] / result["gaatool"]["ms_per_item"]
    if memory and result["reference"]["peak_memory_bytes"] > 0:
        result["memory_ratio"] = result["gaatool"]["peak_memory_bytes"] / result["reference"]["peak_memory_bytes"]
    if spec.key in ISSUE_REFERENCE_MS:
        result["issue_reference_ms_per_item"] = ISSUE_REFERENCE_MS[spec.key]
    del prepared
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.0f}"


def _mib(entry: dict) -> float | None:
    value = entry.get("peak_memory_bytes")
    return None if value is None else value / 2**20


def render_markdown(payload: dict) -> str:
    """The results as Markdown: run facts, then one table row per case."""
    info, peak = payload["machine"], payload["matmul_peak"]
    lines = [f"# gaatool vs geometric-algebra-attention {payload['reference_version']} on {payload['device_name']}",
             "",
             f"{info['date']} · host {info['hostname']} · {info['cpu_model']} · torch {info['torch_version']} · "
             f"{info['torch_threads']} threads · float32" + (" · **quick run (small batches)**"
                                                           if payload["quick"] else "")
             + "".join(f" · {key}={value}" for key, value in info.get("malloc_env", {}).items()),
             "",
             f"Dense float32 matmul peak ({peak['size']}²): **{peak['gflops']:.1f} GFLOP/s**. "
             "Times are medians of alternating calls in one process; speed-up = reference ÷ gaatool "
             "(> 1: gaatool faster); memory ratio = gaatool ÷ reference (< 1: gaatool smaller). "
             "FLOPs are matrix products only (torch FlopCounterMode), per item, each implementation its own.",
             ""]
    header = ["case", "batch", "gaatool ms/item", "reference ms/item", "speed-up", "gaatool peak MiB",
              "reference peak MiB", "memory ratio", "MFLOP/item (gaatool / ref)", "gaatool GFLOP/s (% peak)",
              "reference GFLOP/s (% peak)", "issue ref ms/item"]
    rows = []
    for case in payload["cases"]:
        g, r = case["gaatool"], case["reference"]
        rows.append([
            case["title"], case["batch"], _fmt(g["ms_per_item"]), _fmt(r["ms_per_item"]),
            f"{case['speedup']:.2f}x", _fmt(_mib(g)), _fmt(_mib(r)),
            _fmt(case.get("memory_ratio"), 2), f"{g['flops_per_item'] / 1e6:.3g} / {r['flops_per_item'] / 1e6:.3g}",
            f"{g['gflops']:.2f} ({g.get('percent_of_peak', 0):.1f}%)",
            f"{r['gflops']:.2f} ({r.get('percent_of_peak', 0):.1f}%)",
            _fmt(case.get("issue_reference_ms_per_item"))])
    lines.append(harness.markdown_table(header, rows))
    lines += ["", f"Peak memory: {payload['memory_method']}", ""]
    if payload.get("notes"):
        lines += [f"- {note}" for note in payload["notes"]]
    return "\n".join(lines)


def _memory_method(device: torch.device, enabled: bool) -> str:
    if not enabled:
        return "not measured (--no-memory)."
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated during one call minus memory_allocated before it."
    return ("resident-set growth of one call after one warm-up, in a fresh subprocess per case and implementation "
            f"(glibc MALLOC_MMAP_THRESHOLD_={harness.MALLOC_MMAP_THRESHOLD}, VmHWM reset via /proc/self/clear_refs).")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batches and few repeats (smoke check)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the .md and .json results")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--cases", default=None, help="comma-separated case keys, models or model-modes")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    parser.add_argument("--target-seconds", type=float, default=None,
                        help="timed seconds per case and implementation (default 2, quick 0.2)")
    parser.add_argument("--compile", action="store_true",
                        help="gaatool crystal inference and molecular energies+forces through torch.compile, "
                             "as identify / predict forces --compile on")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--impl", choices=IMPLEMENTATIONS, default="gaatool", help=argparse.SUPPRESS)
    return parser


def _memory_child(spec_json: str, implementation: str, device: str, compile: bool = False) -> None:
    spec = CaseSpec(**json.loads(spec_json))
    prepared = prepare(spec, device, implementations=(implementation,), compile=compile)
    peak = harness.cpu_peak_growth(prepared.steps[implementation])
    print(json.dumps({"case": spec.key, "implementation": implementation, "peak_bytes": peak,
                      "process_peak_bytes": harness.peak_rss_bytes()}))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_reference_warnings()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        _memory_child(args.memory_child, args.impl, args.device, args.compile)
        return 0
    try:
        load_reference_library()
        cases = select_cases(args.cases, args.quick)
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: this torch has no CUDA device; use --device cpu")
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"--device {args.device}: use cpu, cuda or cuda:N")
    except (ImportError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    info = harness.machine_info(device)
    peak = harness.matmul_peak_gflops(device, size=1024 if args.quick else None, repeats=3 if args.quick else 10)
    print(f"matmul peak {peak['gflops']:.1f} GFLOP/s on {device}", file=sys.stderr)
    results = []
    for spec in cases:
        result = run_case(spec, device, quick=args.quick, memory=not args.no_memory,
                          target_seconds=args.target_seconds, peak_gflops=peak["gflops"], compile=args.compile)
        results.append(result)
        print(f"{spec.key}: gaatool {result['gaatool']['ms_per_item']:.3g} ms/item, reference "
              f"{result['reference']['ms_per_item']:.3g} ms/item, speed-up {result['speedup']:.2f}x", file=sys.stderr)
    slug = harness.device_slug(device)
    payload = {
        "benchmark": "gaatool-vs-reference", "quick": args.quick, "compiled": args.compile, "reference_version": reference_version(),
        "device_name": info.get("gpu_name", info["cpu_model"]), "machine": info, "matmul_peak": peak,
        "memory_method": _memory_method(device, not args.no_memory),
        "notes": ["Inputs are synthetic with realistic shapes (see benchmarks/bench_models_reference.py); "
                  "timings depend on shapes, not values.",
                  "Reference MLPs use torch nn.Dropout, nn.SiLU and nn.ReLU() where gaatool uses FastDropout, its "
                  "Swish (fused second derivative) and ReLU (in place in eval mode); same functions.",
                  "The 'issue ref' column is the reference library in issue 6 on another run, for orientation."],
        "cases": results,
    }
    stem = slug + ("-compiled" if args.compile else "") + ("-quick" if args.quick else "")
    paths = harness.write_results(args.out, stem, payload, render_markdown(payload))
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
