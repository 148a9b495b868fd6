"""Run big batches in cache-sized pieces.

Between their matrix products the models do elementwise work (activations,
layer norms, sums of tuple terms) on tensors of 64 values per tuple. For a big
batch those tensors are far larger than the CPU caches and that work runs at
memory speed: 1024 crystal environments take ~3x longer in one piece than in
pieces of ~256 (benchmarks/). Items of a batch are independent, so a model
can split its batch into pieces of about :data:`CPU_CHUNK_TUPLES` tuples and
concatenate the results: the same operations per item, the same outputs.
Autograd follows the pieces too, so backward passes also run piece by piece.

The pieces also run side by side, one per CPU core, each on one torch thread
(``parallel=True``; in training the backward pass too): the per-operation
thread wake-ups of torch's own (intra-op) parallelism cost more than they
bring at these tensor sizes (crystal classifier at batch 1024 on 2 cores:
~3x faster; backmapping training step ~1.5x; benchmarks/). Training with
dropout draws its masks piece by piece from random streams of their own
(``random_streams=True``, :mod:`gaatool.nn.streams`), so that the draws do not
depend on which thread runs first and runs stay reproducible.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Callable, Sequence

import torch
from torch.autograd.function import once_differentiable

from .mlp import FastDropout
from .streams import in_piece_streams
from .threads import serial_when_small, single_threaded

__all__ = ["CPU_CHUNK_TUPLES", "CUDA_CHUNK_TUPLES", "MIN_PARALLEL_TUPLES", "chunk_items", "draws_random_numbers",
           "draws_unstreamed_random_numbers", "gradients_side_by_side", "map_chunks", "piece_randomness",
           "run_in_pieces"]

#: Tuples per piece on a CPU: ~8 MiB per 64-wide float32 hidden layer, cache-sized
#: (1-2 MiB of L2 per core plus a shared L3 on the machines measured).
CPU_CHUNK_TUPLES = 32768
#: On a GPU small pieces would leave it idle between kernel launches.
CUDA_CHUNK_TUPLES = 1 << 22


#: Smallest piece worth a CPU core of its own when pieces run side by side: smaller
#: ones spend their time in Python, one thread at a time (ethanol at batch 16 in two
#: pieces of 5832 tuples ran 15% slower than in one piece on one thread).
MIN_PARALLEL_TUPLES = 16384


def draws_random_numbers(module: torch.nn.Module) -> bool:
    """Whether a forward pass of ``module`` draws random numbers (dropout while training).

    Its pieces then draw from random streams of their own (``random_streams``
    of :func:`run_in_pieces`), in the same order every time (reproducible,
    resumable training).
    """
    return module.training and any(isinstance(m, (torch.nn.Dropout, FastDropout)) and m.p > 0
                                   for m in module.modules())


def draws_unstreamed_random_numbers(module: torch.nn.Module) -> bool:
    """Whether a training pass draws from torch's global generator (torch's own dropout, which knows no
    piece streams): then its pieces must run one after another, in a fixed order."""
    return module.training and any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in module.modules())


def piece_randomness(module: torch.nn.Module) -> dict:
    """``run_in_pieces`` keywords for ``module``'s pass: pieces side by side unless torch's own dropout draws
    (:func:`draws_unstreamed_random_numbers`), random streams per piece where dropout draws at all."""
    return {"parallel": not draws_unstreamed_random_numbers(module), "random_streams": draws_random_numbers(module)}


def chunk_items(tuples_per_item: int, device: torch.device | str, cpu_budget: int | None = None) -> int:
    """Items per piece so that a piece holds about the device's tuple budget (at least one item).

    ``cpu_budget`` replaces :data:`CPU_CHUNK_TUPLES` (a model with many small
    operations per piece amortises their fixed cost over bigger pieces).

    >>> chunk_items(144, "cpu")
    227
    """
    if torch.device(device).type == "cpu":
        budget = CPU_CHUNK_TUPLES if cpu_budget is None else cpu_budget
    else:
        budget = CUDA_CHUNK_TUPLES
    return max(1, budget // max(1, int(tuples_per_item)))


def map_chunks(fn: Callable, inputs: Sequence[torch.Tensor | None], size: int, parallel: bool = False,
               parameters: Sequence[torch.Tensor] = (), random_streams: bool = False):
    """``fn(*inputs)`` computed on pieces of ``size`` items along axis 0 and concatenated.

    ``inputs`` share their first (batch) axis; None entries are passed as None.
    ``fn`` returns a tensor or a tuple of tensors (or None), each with the batch
    as its first axis. Runs in one piece when the batch fits, and while
    torch.compile traces (a compiled graph is built for one batch size).
    ``parallel``: on a CPU with several torch threads, run the pieces on that
    many worker threads, one torch thread each. Only for work that draws no
    random numbers from torch's global generator. ``random_streams``: each
    piece draws its random numbers (dropout masks) from a stream of its own,
    seeded in piece order (:func:`~gaatool.nn.streams.in_piece_streams`), side
    by side or not. ``parameters``: what ``fn`` trains; when gradients are
    being recorded for them (training), the backward pass runs side by side
    too (:class:`_SideBySide`).
    """
    first = next(x for x in inputs if x is not None)
    n = first.shape[0]
    if n <= size or torch.compiler.is_compiling():
        return fn(*inputs)
    size = -(-n // -(-n // size))  # as few pieces as before, evened out (256 items by 227: 128 + 128)
    pieces = [tuple(None if x is None else x[start:start + size] for x in inputs) for start in range(0, n, size)]
    if random_streams:
        fn, pieces = in_piece_streams(fn, pieces)
    workers = min(len(pieces), torch.get_num_threads())
    if parallel and workers > 1 and first.device.type == "cpu" and not torch.is_autocast_enabled("cpu"):
        trained = [p for p in parameters if p.requires_grad] if torch.is_grad_enabled() else []
        if trained and not any(x is not None and x.requires_grad for x in inputs):
            return _SideBySide.apply(fn, pieces, workers, *trained)
        results = _run_side_by_side(fn, pieces, workers)
    else:
        results = [fn(*piece) for piece in pieces]
    if isinstance(results[0], tuple):
        return tuple(None if parts[0] is None else torch.cat(parts) for parts in zip(*results))
    return torch.cat(results)


def _run_side_by_side(fn: Callable, pieces: list[tuple], workers: int) -> list:
    """fn on every piece, ``workers`` at a time, each on one torch thread; results in order."""
    # grad and inference modes are per thread in torch: carry the caller's into the workers
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def work(piece: tuple):
        with (torch.inference_mode() if inference else nullcontext()), torch.set_grad_enabled(grad):
            return fn(*piece)

    with single_threaded():
        return list(_worker_pool(workers).map(work, pieces))


_POOLS: dict[int, ThreadPoolExecutor] = {}
if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads: start its own
    os.register_at_fork(after_in_child=_POOLS.clear)


def _worker_pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``workers`` threads, kept between calls.

    Fresh threads for every call made the split force training step ~1.3x and
    crystal inference ~1.2x slower on 2 cores (each new thread set up its torch
    and allocator state again; ``python -m benchmarks.ab_switches kept-workers``).
    """
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="gaatool-piece")
    return _POOLS[workers]


class _SideBySide(torch.autograd.Function):
    """Pieces side by side in the forward *and* the backward pass (training without dropout).

    Each worker records its piece's graph; the backward pass differentiates
    every piece in its worker and sums the parameter gradients over the
    pieces in order, so results do not depend on which thread finished first.
    Outputs must be one tensor; differentiable once (what training needs).
    """

    @staticmethod
    def forward(ctx, fn: Callable, pieces: list[tuple], workers: int, *parameters: torch.Tensor) -> torch.Tensor:
        def recorded(*piece):
            with torch.enable_grad():  # Function.forward itself runs without autograd
                return fn(*piece)

        outputs = _run_side_by_side(recorded, pieces, workers)
        ctx.outputs, ctx.workers = outputs, workers
        ctx.save_for_backward(*parameters)
        return torch.cat([out.detach() for out in outputs])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        parameters, outputs = ctx.saved_tensors, ctx.outputs
        grads = grad.split([out.shape[0] for out in outputs])

        def differentiate(out: torch.Tensor, upstream: torch.Tensor):
            with torch.enable_grad():
                if not out.requires_grad:
                    return [None] * len(parameters)
                # the pieces' graphs live as long as this node (retain_graph=True on the outer graph works)
                return torch.autograd.grad(out, parameters, upstream, retain_graph=True, allow_unused=True)

        per_piece = _run_side_by_side(differentiate, list(zip(outputs, grads)), ctx.workers)
        sums = []
        for index in range(len(parameters)):
            parts = [piece[index] for piece in per_piece if piece[index] is not None]
            total = None
            for part in parts:  # in piece order: deterministic
                total = part if total is None else total + part
            sums.append(total)
        return (None, None, None, *sums)


def run_in_pieces(fn: Callable, inputs: Sequence[torch.Tensor | None], tuples_per_item: int, parallel: bool,
                  parameters: Sequence[torch.Tensor] = (), cpu_budget: int | None = None,
                  random_streams: bool = False, budget_per_worker: bool = False):
    """A model's batch ``fn(*inputs)`` the fast way for its size and device.

    The first input is a batch of point clouds (B, N, 3); inputs with other
    batch axes (or none) run in one piece. Small inputs run in one piece on one thread (:func:`serial_when_small`);
    big ones in cache-sized pieces (:func:`chunk_items`). With ``parallel``
    (inference) on a multi-core CPU, inputs big enough for several pieces of at
    least :data:`MIN_PARALLEL_TUPLES` tuples are split so that every core gets
    one and the pieces run side by side (in training, given the model's
    ``parameters``, the backward pass too). ``cpu_budget``: tuples per piece
    on a CPU instead of :data:`CPU_CHUNK_TUPLES` (see :func:`chunk_items`).
    ``random_streams``: pieces draw random numbers from streams of their own
    (training with dropout; :func:`map_chunks`). ``budget_per_worker``: pieces side
    by side get the whole budget each instead of sharing it (for a model whose
    pieces are small in memory but pay a fixed cost per piece).
    """
    first = next(x for x in inputs if x is not None)
    device, threads = first.device, torch.get_num_threads()
    total = first.shape[:-2].numel() * tuples_per_item
    if first.dim() != 3:  # not one batch of point clouds (B, N, 3): one piece
        with serial_when_small(total, device):
            return fn(*inputs)
    n, size = first.shape[0], chunk_items(tuples_per_item, device, cpu_budget)
    if parallel and device.type == "cpu" and threads > 1 and total >= 2 * MIN_PARALLEL_TUPLES:
        # the pieces in flight together share the budget (memory stays where one piece at a time had it),
        # unless each gets it whole (budget_per_worker), and come in a multiple of the core count, so that
        # no core idles in the last round
        size = max(chunk_items(tuples_per_item * (1 if budget_per_worker else threads), device, cpu_budget),
                   -(-MIN_PARALLEL_TUPLES // tuples_per_item))
        count = -(-n // size)
        count = -(-count // threads) * threads
        size = -(-n // count)
        if size < n:
            return map_chunks(fn, inputs, size, parallel=True, parameters=parameters, random_streams=random_streams)
    with serial_when_small(total, device):
        return map_chunks(fn, inputs, size, random_streams=random_streams)


#: (dtype, device) of the parameters of every :func:`gradients_side_by_side` call so far (its first one runs serially).
_STEPPED_KINDS: set = set()


def gradients_side_by_side(loss_fn: Callable, pieces: Sequence[tuple[object, float]],
                           parameters: Sequence[torch.Tensor], random_streams: bool = False):
    """The weighted sum of ``loss_fn(piece)`` over ``pieces`` and its gradients, the pieces on all CPU cores.

    For training steps whose loss differentiates twice (forces by autograd
    inside the loss), which :class:`_SideBySide` cannot: each worker thread
    (one torch thread each) computes its piece's loss and its gradients with
    respect to ``parameters``; the gradients are summed in piece order, so the
    result does not depend on thread timing. ``pieces``: (piece, weight), the
    weights making the pieces' mean losses the batch's. ``loss_fn(piece)``
    returns (loss, metrics dict). Returns (loss, [metrics per piece], gradients;
    None where no piece reached a parameter). Equal to the whole batch's
    loss and gradients up to rounding. ``random_streams``: each piece draws its
    random numbers (dropout) from a stream of its own (:func:`map_chunks`).
    """
    def work(piece, weight: float):
        loss, metrics = loss_fn(piece)
        weighted = loss * weight
        grads = torch.autograd.grad(weighted, parameters, allow_unused=True)
        return weighted.detach(), metrics, grads

    work_items: list[tuple] = list(pieces)
    if random_streams:
        work, work_items = in_piece_streams(work, work_items)
    workers = min(len(pieces), torch.get_num_threads())
    kind = (parameters[0].dtype, parameters[0].device) if parameters else None
    first = kind not in _STEPPED_KINDS
    if first:
        # The first step of a kind runs its pieces one after another (still on a worker, one torch
        # thread): kernels compiled on first use (swish's second derivative, torch.compile) must not
        # compile while another piece computes; that piece's results then differed in their last
        # bits from every later step (tests/train/test_side_by_side.py failed about one run in four).
        workers = 1
    results = _run_side_by_side(work, work_items, workers)
    if first:
        _STEPPED_KINDS.add(kind)
    total, sums = None, []
    for weighted, _, _ in results:
        total = weighted if total is None else total + weighted
    for index in range(len(parameters)):
        grad = None
        for _, _, grads in results:  # in piece order: deterministic
            if grads[index] is not None:
                grad = grads[index] if grad is None else grad + grads[index]
        sums.append(grad)
    return total, [metrics for _, metrics, _ in results], sums
