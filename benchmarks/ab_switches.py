"""A/B timings of single speed changes: one benchmark case, one switch flipped, alternating in one process.

    python -m benchmarks.ab_switches fused-layernorm      # training steps (ethanol batch 32, crystal 256) and
                                                          # inference (crystal 1024, ethanol 128)
    python -m benchmarks.ab_switches pair-incidence       # crystal inference 1024 and training 256, ethanol
                                                          # energy+forces 128: symmetric pair values summed by
                                                          # one batched product with the pair-point incidence
                                                          # matrix, or by two row gathers and two sums
    python -m benchmarks.ab_switches backmap-pieces       # backmapping inference (256) and training (64):
                                                          # on = 131072 tuples per inference piece, 32768 per
                                                          # training piece; off = the other way round
    python -m benchmarks.ab_switches crystal-pieces       # crystal inference 1024 and 256: on = 131072 tuples per
                                                          # piece, off = 32768 (the nn/chunks.py default)
    python -m benchmarks.ab_switches piece-size           # backmapping (256, training 64), crystal (1024, training
                                                          # 256), ethanol energy+forces 128: the shipped CPU piece
                                                          # sizes, or 8192 tuples per piece everywhere
    python -m benchmarks.ab_switches derived-weights      # ethanol and aspirin energy+forces, batch 1: weights folded
                                                          # once while frozen (nn/frozen.py), or on every call
    python -m benchmarks.ab_switches workspace            # crystal inference 1024 and 256, backmapping inference 256:
                                                          # the big no-grad products into reused per-thread buffers
                                                          # (nn/workspace.py), or fresh tensors from malloc
    python -m benchmarks.ab_switches tuple-workspace      # backmapping inference 256: the tuple values and hidden
                                                          # layers of non-symmetric tuple sums (translation,
                                                          # refinements, concat-merge blocks) into reused
                                                          # per-thread buffers, or fresh tensors
    python -m benchmarks.ab_switches broadcast-shape      # ethanol and aspirin energy+forces, batch 1: broadcast shapes
                                                          # by gaatool.nn.shapes (~2 us) or torch.broadcast_shapes (~20 us)
    python -m benchmarks.ab_switches fuse-min-rows        # ethanol and aspirin energy+forces batch 1, ethanol training 8:
                                                          # Linear + LayerNorm fused from 1024 rows on, or at any size
    python -m benchmarks.ab_switches dropout-mask         # crystal training 256, backmapping training 64: dropout as
                                                          # one product with a float mask holding the scale, or
                                                          # x * keep * scale (before session 15)
    python -m benchmarks.ab_switches dropout-streams      # crystal training 256 (dropout 0.5): pieces side by side,
                                                          # masks from per-piece random streams, or one after
                                                          # another (before session 16)
    python -m benchmarks.ab_switches pair-weights-buffer  # crystal inference 1024, backmapping 256: pair weights
                                                          # scattered into a reused zeroed buffer, or fresh zeros
                                                          # scattered out of place (before session 16)
    python -m benchmarks.ab_switches norm-stats-once      # crystal inference 1024, backmapping 256: the value nets'
                                                          # fused layer norm statistics once per piece, or once per
                                                          # block of rows (before session 16)
    python -m benchmarks.ab_switches linear-relu --keep-freed-memory
                                                          # crystal inference 1024, backmapping 256, with freed
                                                          # memory kept as the gaatool command runs: Linear + ReLU
                                                          # as one oneDNN product (nn/fused.py), or the product in a
                                                          # reused buffer and a ReLU in place (before session 17)
    python -m benchmarks.ab_switches relu-bias-fold       # crystal inference 1024, backmapping 256: the score and
                                                          # scale nets' first bias and the value nets' layer-norm
                                                          # bias moved through their ReLU into the next Linear's
                                                          # bias (no-grad), or added by the first product (before
                                                          # session 17)
    python -m benchmarks.ab_switches stats-channels-first
                                                          # crystal inference 1024, backmapping 256: the value nets'
                                                          # layer-norm row statistics (no-grad) on inputs laid out
                                                          # channels first, or rows first (before session 17)
    python -m benchmarks.ab_switches row-blocks           # backmapping inference 256, crystal inference 1024: score
                                                          # and scale nets in blocks of 8192 rows (hidden layer in
                                                          # cache), or each piece's rows at once
    python -m benchmarks.ab_switches short-softmax        # crystal inference 1024 and training 256: softmax over
                                                          # sets of < 32 from elementwise ops, or torch's kernel
    python -m benchmarks.ab_switches frozen-parameters    # ethanol energy+forces, batch 1 and 128
    python -m benchmarks.ab_switches train-side-by-side   # force training steps (ethanol 8 and 32, aspirin 16):
                                                          # batch pieces on the CPU cores, or the batch whole
    python -m benchmarks.ab_switches kept-workers         # crystal inference 1024, ethanol training 32: side-by-side
                                                          # workers kept between calls, or fresh threads per call
    python -m benchmarks.ab_switches cpp-wrapper          # compiled ethanol energy+forces, batch 1: graphs called
                                                          # through inductor's C++ wrapper, or from Python

``--threads N`` sets torch's CPU threads (default: torch's choice, all cores); ``A+B`` flips several
switches together; ``--keep-freed-memory`` first calls :func:`gaatool.allocator.keep_freed_memory`,
as the ``gaatool`` command does (changes that apply only then: linear-relu); ``--alternate CALLS`` times single calls alternating on/off call by call and prints
medians and quartiles (for noisy machines). Each case is prepared once per state (switches read when
a model is built take effect there); each round times it with the change on, then off (median of 7 calls after 2 warm-ups); printed: ms per
item of every round. Compiled cases (cpp-wrapper) compile in the warm-ups. Same machine caveats
as benchmarks/run.py (idle machine).
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from . import harness
from .bench_models_reference import CaseSpec, prepare

import gaatool.nn.attention as attention
import gaatool.nn.chunks as chunks
import gaatool.nn.compiled as compiled
import gaatool.models.backmap as backmap_model
import gaatool.models.crystal as crystal_model
import gaatool.models.forces as forces_model
import gaatool.nn.masking as masking
import gaatool.nn.mlp as mlp
import gaatool.nn.workspace as workspace
import gaatool.nn.frozen as frozen
import gaatool.nn.fused as fused
import gaatool.tasks.forces.train as forces_train


def _fused_layernorm(on: bool) -> None:
    mlp.FUSE_MAX_INPUTS = 8 if on else 0


_MATERIALIZE = attention.PairSum.materialize


def _gathered_pairs(self: attention.PairSum) -> torch.Tensor:
    # the code before session 9
    if self._values is None:
        layout = self.layout
        self._values = (self.core + self.point_term.index_select(-2, layout.first)
                        + self.point_term.index_select(-2, layout.second))
    return self._values


def _pair_incidence(on: bool) -> None:
    attention.PairSum.materialize = _MATERIALIZE if on else _gathered_pairs


def _backmap_pieces(on: bool) -> None:
    # on: the shipped sizes (inference 131072 tuples per piece, training the 32768 default); off: swapped
    backmap_model.CPU_CHUNK_TUPLES = 131072 if on else 32768
    backmap_model.TRAIN_CPU_CHUNK_TUPLES = None if on else 131072


def _crystal_pieces(on: bool) -> None:
    crystal_model.CPU_CHUNK_TUPLES = 131072 if on else None


_SHIPPED_PIECES = (chunks.CPU_CHUNK_TUPLES, backmap_model.CPU_CHUNK_TUPLES, backmap_model.TRAIN_CPU_CHUNK_TUPLES,
                   crystal_model.CPU_CHUNK_TUPLES)
SMALL_PIECE_TUPLES = 8192


def _worker_budget(on: bool) -> None:
    # off: pieces side by side share the crystal model's budget, as before session 18
    crystal_model.BUDGET_PER_WORKER = on


def _piece_size(on: bool) -> None:
    # on: the shipped CPU piece sizes; off: SMALL_PIECE_TUPLES (2 MiB per 64-wide float32 hidden layer,
    # an L2's worth) for every model, inference and training
    sizes = _SHIPPED_PIECES if on else (SMALL_PIECE_TUPLES,) * 4
    (chunks.CPU_CHUNK_TUPLES, backmap_model.CPU_CHUNK_TUPLES, backmap_model.TRAIN_CPU_CHUNK_TUPLES,
     crystal_model.CPU_CHUNK_TUPLES) = sizes


def _derived_weights(on: bool) -> None:
    frozen.KEEP_DERIVED = on


def _workspace(on: bool) -> None:
    workspace.ENABLED = on
    if not on:
        workspace.release()  # buffers held while "off" runs would change its heap


_TUPLE_SUM = (attention.TupleSum.materialize, attention.TupleSum.through)


def _fresh_tuple_values(self: attention.TupleSum) -> torch.Tensor:
    # the code before session 15: tuple values and hidden layers as fresh tensors
    if self._values is None:
        self._values = attention._broadcast_sum([self.expand(self.core, None), *self.terms])
    return self._values


def _fresh_through(self: attention.TupleSum, net) -> torch.Tensor:
    first = attention._leading_linear(net)
    if first is None or not self._terms_widen():
        return net(self.materialize())
    hidden = [self.expand(torch.nn.functional.linear(self.core, first.weight, first.bias), None)]
    hidden += [torch.nn.functional.linear(term, first.weight) for term in self.terms]
    return net[1:](attention._broadcast_sum(hidden))


def _tuple_workspace(on: bool) -> None:
    attention.TupleSum.materialize, attention.TupleSum.through = (
        _TUPLE_SUM if on else (_fresh_tuple_values, _fresh_through))


_DROPOUT = mlp.FastDropout.forward


def _dropout_before_session15(self: mlp.FastDropout, x: torch.Tensor) -> torch.Tensor:
    if not self.training or self.threshold == 0:
        return x
    if x.device.type != "cpu":
        return torch.nn.functional.dropout(x, self.p, training=True)
    keep = mlp.random_bytes(x.shape) >= self.threshold
    return x * keep * (256.0 / (256 - self.threshold))


_DRAWS_UNSTREAMED = chunks.draws_unstreamed_random_numbers


def _dropout_streams(on: bool) -> None:
    # off: training with dropout runs its pieces one after another, as before session 16 (the models ask
    # chunks.piece_randomness, which looks this rule up in chunks)
    chunks.draws_unstreamed_random_numbers = _DRAWS_UNSTREAMED if on else chunks.draws_random_numbers


_PAIR_WEIGHTS = attention.scattered_pair_weights


def _fresh_pair_weights(weights: torch.Tensor, layout: attention.PairLayout) -> torch.Tensor:
    # the code before session 16: fresh zeros, an out-of-place scatter
    index = layout.grid.reshape(layout.n, layout.n).expand(weights.shape)
    return weights.new_zeros(*weights.shape[:-1], layout.pairs).scatter(-1, index, weights)


def _pair_weights_buffer(on: bool) -> None:
    attention.scattered_pair_weights = _PAIR_WEIGHTS if on else _fresh_pair_weights


def _norm_stats_once(on: bool) -> None:
    mlp.ROW_STATS_ONCE = on


def _relu_bias_fold(on: bool) -> None:
    attention.FOLD_RELU_BIAS = on


def _stats_channels_first(on: bool) -> None:
    mlp.STATS_CHANNELS_FIRST = on


def _linear_relu(on: bool) -> None:
    fused.ENABLED = on


def _float_mask(on: bool) -> None:
    mlp.FastDropout.forward = _DROPOUT if on else _dropout_before_session15


_BROADCAST_SHAPE = attention.broadcast_shape


def _broadcast_shape(on: bool) -> None:
    # off: torch.broadcast_shapes, as before session 15
    attention.broadcast_shape = workspace.broadcast_shape = _BROADCAST_SHAPE if on else torch.broadcast_shapes


def _fuse_min_rows(on: bool) -> None:
    # off: fused at any size, as before session 15
    mlp.FUSE_MIN_ROWS = 1024 if on else 0


def _row_blocks(on: bool) -> None:
    attention.BLOCK_ROWS = 8192 if on else 1 << 62


def _short_softmax(on: bool) -> None:
    masking.SHORT_SET = 32 if on else 0


_FROZEN = forces_model.frozen_parameters


def _frozen_parameters(on: bool) -> None:
    forces_model.frozen_parameters = _FROZEN if on else (lambda module: contextlib.nullcontext())


_MIN_PIECE_TUPLES = forces_train.MIN_PIECE_TUPLES


def _train_side_by_side(on: bool) -> None:
    # off: no piece is ever big enough, so every training batch stays whole
    forces_train.MIN_PIECE_TUPLES = _MIN_PIECE_TUPLES if on else 1 << 62


_WORKER_POOL = chunks._worker_pool


def _kept_workers(on: bool) -> None:
    # off: a fresh pool of threads for every call, as before session 6
    chunks._worker_pool = _WORKER_POOL if on else (lambda workers: ThreadPoolExecutor(workers))


def _cpp_wrapper(on: bool) -> None:
    compiled.CPU_CPP_WRAPPER = on


# switch name -> (switch function, cases, prepare's compile argument)
SWITCHES = {
    "fused-layernorm": (_fused_layernorm, [CaseSpec("ethanol", "train", 32), CaseSpec("crystal", "train", 256),
                                           CaseSpec("crystal", "inference", 1024),
                                           CaseSpec("ethanol", "inference", 128)], False),
    "pair-incidence": (_pair_incidence, [CaseSpec("crystal", "inference", 1024), CaseSpec("crystal", "train", 256),
                                         CaseSpec("ethanol", "inference", 128)], False),
    "backmap-pieces": (_backmap_pieces, [CaseSpec("backmap", "inference", 256), CaseSpec("backmap", "train", 64)],
                       False),
    "crystal-pieces": (_crystal_pieces, [CaseSpec("crystal", "inference", 1024),
                                         CaseSpec("crystal", "inference", 256)], False),
    "worker-budget": (_worker_budget, [CaseSpec("crystal", "inference", 1024), CaseSpec("crystal", "inference", 256)],
                      False),
    "piece-size": (_piece_size, [CaseSpec("backmap", "inference", 256), CaseSpec("backmap", "train", 64),
                                 CaseSpec("crystal", "inference", 1024), CaseSpec("crystal", "train", 256),
                                 CaseSpec("ethanol", "inference", 128)], False),
    "derived-weights": (_derived_weights, [CaseSpec("ethanol", "inference", 1), CaseSpec("aspirin", "inference", 1)],
                        False),
    "workspace": (_workspace, [CaseSpec("crystal", "inference", 1024), CaseSpec("crystal", "inference", 256),
                               CaseSpec("backmap", "inference", 256)], False),
    "tuple-workspace": (_tuple_workspace, [CaseSpec("backmap", "inference", 256)], False),
    "broadcast-shape": (_broadcast_shape, [CaseSpec("ethanol", "inference", 1), CaseSpec("aspirin", "inference", 1)],
                        False),
    "fuse-min-rows": (_fuse_min_rows, [CaseSpec("ethanol", "inference", 1), CaseSpec("aspirin", "inference", 1),
                                       CaseSpec("ethanol", "train", 8)], False),
    "dropout-streams": (_dropout_streams, [CaseSpec("crystal", "train", 256)], False),
    "pair-weights-buffer": (_pair_weights_buffer, [CaseSpec("crystal", "inference", 1024),
                                                   CaseSpec("backmap", "inference", 256)], False),
    "norm-stats-once": (_norm_stats_once, [CaseSpec("crystal", "inference", 1024),
                                           CaseSpec("backmap", "inference", 256)], False),
    "relu-bias-fold": (_relu_bias_fold, [CaseSpec("crystal", "inference", 1024), CaseSpec("backmap", "inference", 256)],
                       False),
    "stats-channels-first": (_stats_channels_first, [CaseSpec("crystal", "inference", 1024),
                                                     CaseSpec("backmap", "inference", 256)], False),
    "linear-relu": (_linear_relu, [CaseSpec("crystal", "inference", 1024), CaseSpec("backmap", "inference", 256)],
                    False),
    "dropout-mask": (_float_mask, [CaseSpec("crystal", "train", 256), CaseSpec("backmap", "train", 64)], False),
    "row-blocks": (_row_blocks, [CaseSpec("backmap", "inference", 256), CaseSpec("crystal", "inference", 1024)],
                   False),
    "short-softmax": (_short_softmax, [CaseSpec("crystal", "inference", 1024), CaseSpec("crystal", "train", 256)],
                      False),
    "frozen-parameters": (_frozen_parameters, [CaseSpec("ethanol", "inference", 1),
                                               CaseSpec("ethanol", "inference", 128)], False),
    "train-side-by-side": (_train_side_by_side, [CaseSpec("ethanol", "train", 8), CaseSpec("ethanol", "train", 32),
                                                 CaseSpec("aspirin", "train", 16)], False),
    "kept-workers": (_kept_workers, [CaseSpec("crystal", "inference", 1024), CaseSpec("ethanol", "train", 32)], False),
    "cpp-wrapper": (_cpp_wrapper, [CaseSpec("ethanol", "inference", 1)], True),
}


def _median_ms_per_item(step, batch: int) -> float:
    for _ in range(2):
        step()
    times = []
    for _ in range(7):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[3] * 1e3 / batch


def _combined(names: list[str]):
    """One switch flipping every named one; the cases of all of them (each once), compile if any does."""
    entries = [SWITCHES[name] for name in names]
    cases = list({spec.key: spec for _, specs, _ in entries for spec in specs}.values())

    def switch(on: bool) -> None:
        for function, _, _ in entries:
            function(on)

    return switch, cases, any(compile for _, _, compile in entries)


def _alternating(steps: dict, switch, calls: int, batch: int) -> dict[str, list[float]]:
    """ms per item of single calls, the states alternating call by call (on, off, off, on, ...)."""
    for state, step in steps.items():
        switch(state == "on")
        step(), step()
    times = {"on": [], "off": []}
    for call in range(calls):
        for state in (("on", "off") if call % 2 == 0 else ("off", "on")):
            switch(state == "on")
            start = time.perf_counter()
            steps[state]()
            times[state].append((time.perf_counter() - start) * 1e3 / batch)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("switch", help=f"one of {', '.join(sorted(SWITCHES))}, or several joined by + (all on / all off)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--alternate", type=int, default=0, metavar="CALLS",
                        help="instead of rounds: this many single calls per state, alternating call by call")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    harness.add_keep_freed_memory_option(parser)
    args = parser.parse_args(argv)
    harness.apply_keep_freed_memory_option(parser, args)
    names = args.switch.split("+")
    unknown = [name for name in names if name not in SWITCHES]
    if unknown:
        parser.error(f"unknown switch {unknown[0]!r}; choose from {', '.join(sorted(SWITCHES))}")
    if args.threads:
        torch.set_num_threads(args.threads)
    switch, cases, compile = SWITCHES[names[0]] if len(names) == 1 else _combined(names)
    for spec in cases:
        steps = {}
        for state in ("on", "off"):
            switch(state == "on")
            steps[state] = prepare(spec, implementations=("gaatool",), compile=compile).steps["gaatool"]
        label = f"{args.switch} {spec.key} ({torch.get_num_threads()} threads), ms/item"
        if args.alternate:
            times = _alternating(steps, switch, args.alternate, spec.batch)
            switch(True)
            print(label + ": " + ", ".join(
                f"{state} median {statistics.median(t):.4f} (quartiles {' - '.join(f'{q:.4f}' for q in statistics.quantiles(t, n=4)[::2])})"
                for state, t in times.items()))
            continue
        times = {"on": [], "off": []}
        for _ in range(args.rounds):
            for state in ("on", "off"):
                switch(state == "on")
                times[state].append(round(_median_ms_per_item(steps[state], spec.batch), 4))
        switch(True)
        print(f"{label}: on {times['on']}, off {times['off']}")


if __name__ == "__main__":
    main()
