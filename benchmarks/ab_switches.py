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
    python -m benchmarks.ab_switches short-softmax        # crystal inference 1024 and training 256: softmax over
                                                          # sets of < 32 from elementwise ops, or torch's kernel
    python -m benchmarks.ab_switches frozen-parameters    # ethanol energy+forces, batch 1 and 128
    python -m benchmarks.ab_switches train-side-by-side   # force training steps (ethanol 8 and 32, aspirin 16):
                                                          # batch pieces on the CPU cores, or the batch whole
    python -m benchmarks.ab_switches kept-workers         # crystal inference 1024, ethanol training 32: side-by-side
                                                          # workers kept between calls, or fresh threads per call
    python -m benchmarks.ab_switches cpp-wrapper          # compiled ethanol energy+forces, batch 1: graphs called
                                                          # through inductor's C++ wrapper, or from Python

Each case is prepared once per state (switches read when a model is built take effect there); each
round times it with the change on, then off (median of 7 calls after 2 warm-ups); printed: ms per
item of every round. Compiled cases (cpp-wrapper) compile in the warm-ups. Same machine caveats
as benchmarks/run.py (idle machine).
"""
from __future__ import annotations

import argparse
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

import torch

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
    "piece-size": (_piece_size, [CaseSpec("backmap", "inference", 256), CaseSpec("backmap", "train", 64),
                                 CaseSpec("crystal", "inference", 1024), CaseSpec("crystal", "train", 256),
                                 CaseSpec("ethanol", "inference", 128)], False),
    "derived-weights": (_derived_weights, [CaseSpec("ethanol", "inference", 1), CaseSpec("aspirin", "inference", 1)],
                        False),
    "workspace": (_workspace, [CaseSpec("crystal", "inference", 1024), CaseSpec("crystal", "inference", 256),
                               CaseSpec("backmap", "inference", 256)], False),
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("switch", choices=sorted(SWITCHES))
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    switch, cases, compile = SWITCHES[args.switch]
    for spec in cases:
        steps = {}
        for state in ("on", "off"):
            switch(state == "on")
            steps[state] = prepare(spec, implementations=("gaatool",), compile=compile).steps["gaatool"]
        times = {"on": [], "off": []}
        for _ in range(args.rounds):
            for state in ("on", "off"):
                switch(state == "on")
                times[state].append(round(_median_ms_per_item(steps[state], spec.batch), 4))
        switch(True)
        print(f"{args.switch} {spec.key} ({torch.get_num_threads()} threads), ms/item: "
              f"on {times['on']}, off {times['off']}")


if __name__ == "__main__":
    main()
