"""torch.compile for inference, where it pays, with a safe fallback.

On the CPU, compiling the crystal classifier fuses its elementwise work and
runs it ~4x faster (benchmarks/), but compiling costs ~10-20 s once per
process (less with torch's on-disk cache) and needs a C++ compiler. So
callers compile only big jobs, at a few fixed batch sizes (shorter batches
are padded: few recompilations), and fall back to eager mode, with one
warning, if compilation fails for any reason.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError
from .chunks import map_chunks
from .frozen import frozen_parameters
from .threads import single_threaded

__all__ = ["COMPILE_MODES", "CPU_COMPILED_BATCH", "CPU_CPP_WRAPPER", "CompiledEnergyForces", "FixedBatchCompiled",
           "check_compile_mode", "compiled_batch_size", "should_compile"]

COMPILE_MODES = ("auto", "on", "off")

#: ``auto`` compiles CPU jobs of at least this many items (environments): compiling costs 10-20 s and then
#: saves ~10% of the eager time (identify: 38 instead of 42 µs per particle on 2 cores,
#: benchmarks/results/identify-cpu-amd-epyc*.md), which pays from a few million on.
AUTO_MIN_ITEMS = 5_000_000
#: Largest compiled batch on a CPU: a compiled graph of 512 environments ran ~1.8x faster per
#: environment than one of 2048, whose tensors no longer fit in the caches (139 vs 246 ms per 2048
#: environments, one thread of a 2-core machine with other jobs running; see nn/chunks.py).
CPU_COMPILED_BATCH = 512
#: Whether :class:`CompiledEnergyForces` calls its CPU graphs through inductor's C++ wrapper (default).
CPU_CPP_WRAPPER = True


def check_compile_mode(mode: str) -> None:
    """ConfigError unless ``mode`` is one of auto, on, off."""
    if mode not in COMPILE_MODES:
        raise ConfigError(f"--compile must be one of {', '.join(COMPILE_MODES)} (got {mode!r})")


def should_compile(mode: str, items: int, device: torch.device, auto_min_items: int = AUTO_MIN_ITEMS) -> bool:
    """Whether a job of ``items`` model inputs on ``device`` is compiled under ``mode`` (auto, on, off).

    ``auto`` compiles CPU jobs of at least ``auto_min_items`` items.
    """
    check_compile_mode(mode)
    if mode == "auto":
        return device.type == "cpu" and items >= auto_min_items
    return mode == "on"


def compiled_batch_size(chunk: int, device: torch.device) -> int:
    """The batch to compile for calls of up to ``chunk`` items on ``device``."""
    return min(int(chunk), CPU_COMPILED_BATCH) if device.type == "cpu" else int(chunk)


class FixedBatchCompiled:
    """``model(*inputs)`` through torch.compile at a fixed leading batch size; eager if compiling fails.

    Inputs are tensors whose first axis is the batch; shorter batches are
    zero-padded to one of a few sizes (:meth:`padded_size`) and the outputs cut
    back, so a handful of compiled graphs serve every call; longer ones run in
    pieces of ``batch_size``. Items must be independent of each other (true of
    per-environment models).
    """

    def __init__(self, model: nn.Module, batch_size: int):
        self.model, self.batch_size = model, int(batch_size)
        # one graph per padded size; 16 sizes cover 256 .. 2^23 items
        self._compiled: Callable | None = torch.compile(model, dynamic=False)
        self._warmed = False
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 16)

    def padded_size(self, n: int) -> int:
        """The batch a call of ``n`` items runs at: the next power of two (at least 256), at most ``batch_size``.

        A few sizes keep compilations few (one per size) and padding below 2x.
        """
        return min(self.batch_size, max(256, 1 << max(0, n - 1).bit_length()))

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        n = inputs[0].shape[0]
        if self._compiled is None:
            return self.model(*inputs)
        if n > self.batch_size:
            return map_chunks(self, inputs, self.batch_size)
        size = self.padded_size(n)
        padded = [nn.functional.pad(x, [0, 0] * (x.dim() - 1) + [0, size - n]) for x in inputs]
        try:
            if not self._warmed:
                self._warmed = _warm_caches(self.model, inputs)
            return self._compiled(*padded)[:n]
        except Exception as err:  # noqa: BLE001 - any compiler failure must leave a working (eager) model
            _warn_eager(err)
            self._compiled = None
            return self.model(*inputs)


def _dense(x: torch.Tensor) -> torch.Tensor:
    """``x`` with the row-major strides of its shape (a copy only where they differ)."""
    strides, step = [], 1
    for size in reversed(x.shape):
        strides.append(step)
        step *= size
    return x if x.stride() == tuple(reversed(strides)) else x.clone(memory_format=torch.contiguous_format)


def _warm_caches(function: Callable, inputs: tuple) -> bool:
    """One eager call on the first item, so that per-size caches the model fills on first use (the
    attention's pair layouts) exist before tracing: a cache miss inside the traced graph would make
    torch.compile compile everything again on the next call (a second 15-35 s wait). Returns True."""
    with torch.no_grad():
        function(*(x[:1] if isinstance(x, torch.Tensor) else x for x in inputs))
    return True


def _warn_eager(err: Exception) -> None:
    warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                  "running without it", RuntimeWarning, stacklevel=3)


class CompiledEnergyForces:
    """Energies and forces (-dE/dr) with the energy function compiled; eager if compiling fails.

    ``energy(positions, *rest)`` -> (B,) is compiled with torch.compile, whose
    AOT autograd also compiles its backward pass, so forces (one plain
    ``torch.autograd.grad``) run compiled too: far fewer, fused kernels
    instead of ~1000 small operations per call (ethanol, one frame per call,
    float64, 2 cores: 5.4-5.8 ms per step against 8.3-8.8 eager,
    ``python -m benchmarks.bench_md_loop``; at batch 16 and more the eager
    model, in pieces side by side on the cores, was faster in the benchmark).
    Inference only: no graph for further differentiation is kept (training
    differentiates forces again, which compiled graphs do not support).
    ``module`` (the model behind ``energy``) has its parameters left out of
    autograd during each call (:func:`~gaatool.nn.frozen.frozen_parameters`).
    One graph per input shape and dtype (molecular dynamics: one). On the CPU
    it compiles and runs on one torch thread: the compiled kernels of these
    small tensors, built for two threads, synchronised so often that ethanol at
    batch 1 ran 21 ms per call (a 2-core benchmark run of the two-thread version).
    Also on the CPU, the graphs are called through inductor's C++ wrapper
    (``cpp_wrapper``) instead of from Python, which saves part of the launch
    overhead of a small molecule's ~100 kernels: ethanol at batch 1 3.3-3.5
    instead of 3.5-3.6 ms (``python -m benchmarks.ab_switches cpp-wrapper``).
    Compiling cold then takes ~29 s (``bench_md_loop``), a few seconds from
    torch's on-disk cache.
    """

    def __init__(self, energy: Callable[..., torch.Tensor], module: nn.Module, cpp_wrapper: bool | None = None):
        self.energy = energy
        self.cpp_wrapper = CPU_CPP_WRAPPER if cpp_wrapper is None else cpp_wrapper
        self._parameters = list(module.parameters())
        # compiled on the first call, when the device is known; None after a failure
        self._compiled: Callable | None = None
        self._failed = self._warmed = False
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 16)

    def _compiled_for(self, device: torch.device) -> Callable | None:
        if self._compiled is None and not self._failed:
            options = {"cpp_wrapper": True} if self.cpp_wrapper and device.type == "cpu" else None
            self._compiled = torch.compile(self.energy, dynamic=False, options=options)
        return self._compiled

    def __call__(self, positions: torch.Tensor, *rest) -> tuple[torch.Tensor, torch.Tensor]:
        # dense strides: graphs are specialised on them, and a batch of one frame may come with any
        # stride on its first axis (numpy's a[None] has 0), which would compile everything again
        positions = _dense(positions.detach())
        rest = tuple(_dense(x) if isinstance(x, torch.Tensor) else x for x in rest)
        with frozen_parameters(self._parameters), single_threaded(positions.device), torch.enable_grad():
            positions = positions.requires_grad_(True)
            compiled = self._compiled_for(positions.device)
            if compiled is not None:
                try:
                    if not self._warmed:
                        self._warmed = _warm_caches(self.energy, (positions,) + rest)
                    return _energy_and_forces(compiled, positions, rest)
                except Exception as err:  # noqa: BLE001 - any compiler failure must leave a working (eager) model
                    _warn_eager(err)
                    self._compiled, self._failed = None, True
            return _energy_and_forces(self.energy, positions, rest)


def _energy_and_forces(energy_of: Callable, positions: torch.Tensor, rest: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    energy = energy_of(positions, *rest)
    (gradient,) = torch.autograd.grad(energy.sum(), positions)
    return energy.detach(), -gradient
