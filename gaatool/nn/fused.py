"""Linear + ReLU in one oneDNN product for float32 CPU inference.

The score and value nets' hidden layers (64 channels per tuple) are the biggest tensors of a crystal
or backmapping call. As ``torch.addmm`` and an in-place ReLU they cost three passes over that
memory: the bias copied into the output, the product reading it back (beta = 1), the ReLU. oneDNN's
linear with a ReLU post-op (the kernel torch.compile's inductor uses for the same pattern) adds the
bias and applies the ReLU while the product writes its result. Measured by ``python -m
benchmarks.ab_switches linear-relu``. The results are the same up to the product's rounding.

Only where nothing records a graph (no gradients, CPU, float32, not compiling): the kernel has no
derivative, and other dtypes and devices keep torch's own kernels. And only in a process whose freed
memory is kept (:func:`gaatool.allocator.keep_freed_memory`, as the ``gaatool`` command runs): the
kernel's output is a fresh tensor, where the unfused product writes a reused :mod:`.workspace` buffer,
and with glibc's defaults those fresh 2 MiB blocks fault in page by page (benchmarks/README.md,
"Session 17").
"""
from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn import functional

from .. import allocator
from . import workspace

__all__ = ["ENABLED", "applies", "fuses", "linear_relu", "linear_then"]

#: Use the fused kernel at all (the A/B switch of ``benchmarks.ab_switches linear-relu``).
ENABLED = True


@functools.lru_cache(maxsize=None)
def _kernel_available() -> bool:
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    try:  # a build may list the operator and still not run it (other CPUs, other oneDNN back ends)
        with torch.no_grad():
            result = torch.ops.mkldnn._linear_pointwise(torch.ones(2, 3), torch.ones(4, 3), torch.full((4,), -2.0),
                                                        "relu", [None], "")
        return bool(torch.equal(result, torch.ones(2, 4)))  # relu(3 - 2)
    except (RuntimeError, NotImplementedError):
        return False


def applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether relu(linear(x, weight, ...)) may run as one oneDNN call."""
    return (ENABLED and x.dtype == torch.float32 and weight.dtype == torch.float32 and workspace.applies(x)
            and weight.device == x.device and allocator.freed_memory_kept() and _kernel_available())


def fuses(module: nn.Module | None) -> bool:
    """Whether ``module``, following a Linear, is a ReLU that :func:`linear_relu` may take over (eval mode)."""
    return isinstance(module, nn.ReLU) and not module.training


def linear_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``relu(linear(x, weight, bias))``: one fused call where :func:`applies` (a fresh tensor), torch's
    two otherwise."""
    if applies(x, weight):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu", [None], "")
    return functional.relu(functional.linear(x, weight, bias))


def linear_then(linear: nn.Linear, after: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``after(linear(x))``, the two in one call when ``after`` is a ReLU that may be fused."""
    if fuses(after) and applies(x, linear.weight):
        return linear_relu(x, linear.weight, linear.bias)
    return after(linear(x))
