"""Single steps of the attention layers in isolation, old way against new, one torch thread.

    python -m benchmarks.bench_kernels [--environments 256] [--repeats 200]

* pair sums: ``core_p + m[first_p] + m[second_p]`` over the unordered pairs of 12 neighbours, as two
  row gathers and two sums (before session 9) against one batched product with the pair-point
  incidence matrix added in place (``PairSum.materialize``);
* softmax over sets of 12 (the crystal blocks' per-neighbour attention): torch's kernel against
  elementwise ops (``gaatool.nn.masking``), and over sets of 144 (the reduction) for comparison;
* Linear + LayerNorm of the 2 pair invariants to 64 channels: torch's two kernels against the fused
  narrow product (``gaatool.nn.mlp.linear_layer_norm``).

Each line: median microseconds per call of each variant and their ratio. Tensors are reused between
calls (hot caches), so these are the kernels' own costs, not what they cost inside a model.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import torch
from torch import nn

from gaatool.nn.attention import PairLayout, PairSum

from .ab_switches import _gathered_pairs  # the pair sums as before session 9
from gaatool.nn.masking import _short_softmax
from gaatool.nn.mlp import linear_layer_norm

NEIGHBORS = 12


def median_us(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[repeats // 2] * 1e6


def cases(environments: int) -> list[tuple[str, Callable, Callable]]:
    """(name, old, new) callables on synthetic tensors of the crystal classifier's shapes."""
    g = torch.Generator().manual_seed(0)
    layout = PairLayout(NEIGHBORS, torch.device("cpu"))
    core = torch.randn(environments, layout.pairs, 32, generator=g)
    term = torch.randn(environments, NEIGHBORS, 32, generator=g)

    def gathered():
        return _gathered_pairs(PairSum(core, term, layout))

    def incidence():
        return PairSum(core.clone(), term, layout).materialize()  # the clone stands for the fresh product

    scores12 = torch.randn(environments, NEIGHBORS, NEIGHBORS, generator=g)
    scores144 = torch.randn(environments, NEIGHBORS * NEIGHBORS, generator=g)
    invariants = torch.randn(environments, layout.pairs, 2, generator=g)
    linear, norm = nn.Linear(2, 64), nn.LayerNorm(64)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    return [
        ("pair sums (P = 78, 32 channels)", gathered, incidence),
        ("softmax over sets of 12", lambda: torch.softmax(scores12, -1), lambda: _short_softmax(scores12.clone())),
        ("softmax over sets of 144", lambda: torch.softmax(scores144, -1), lambda: _short_softmax(scores144.clone())),
        ("Linear(2, 64) + LayerNorm(64)", lambda: norm(linear(invariants)),
         lambda: linear_layer_norm(invariants, linear, norm)),
    ]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environments", type=int, default=256, help="crystal environments per call")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args(argv)
    if args.environments < 1 or args.repeats < 1:
        parser.error("--environments and --repeats must be at least 1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        with torch.no_grad():
            for name, old, new in cases(args.environments):
                torch.testing.assert_close(new(), old(), rtol=1e-5, atol=1e-5)
                before, after = median_us(old, args.repeats), median_us(new, args.repeats)
                rows.append({"step": name, "old_us": before, "new_us": after})
                print(f"{name}, {args.environments} environments: old {before:.0f} us, new {after:.0f} us, "
                      f"{before / after:.2f}x")
    finally:
        torch.set_num_threads(threads)
    return rows


if __name__ == "__main__":
    main()
