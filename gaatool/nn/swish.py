"""Swish (SiLU) whose second derivative is one fused kernel.

Force fields train on forces, which are already a gradient, so every
activation is differentiated twice. torch composes the second derivative of
SiLU from about a dozen elementwise operations, each a pass over the tuple
hidden layers ((B, N, N, N, 64) for the force model); they took ~40% of an
ethanol training step. Here the first derivative is torch's fused
``silu_backward`` and the second is one pointwise function compiled by
torch.compile (a single loop; ~2.5x faster), with a fallback to the same
formula in eager mode, and one warning, where compiling is not possible.
Values equal ``torch.nn.SiLU`` up to rounding.
"""
from __future__ import annotations

import threading
import warnings

import torch
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["Swish", "swish"]


def _second_derivative_terms(upstream: torch.Tensor, grad_output: torch.Tensor, x: torch.Tensor):
    """Gradients of ``silu_backward(grad_output, x)`` given ``upstream``: w.r.t. grad_output and x."""
    s = torch.sigmoid(x)
    first = s * (1 + x * (1 - s))  # silu'(x)
    second = s * (1 - s) * (2 + x * (1 - 2 * s))  # silu''(x)
    return upstream * first, upstream * grad_output * second


class _FusedTerms:
    """``_second_derivative_terms`` through torch.compile on first use; eager if that fails.

    The kernel sees flat tensors, so that one compiled graph serves every shape (per dtype and torch
    thread count, which compiled graphs are guarded on) where hidden layers of each rank compiled
    their own, and the first call of each such kind compiles under a lock, so that two threads never
    compile it at once. Compiling while another thread computes still changed that thread's last bits
    (the first side-by-side force training step then differed from every later one): that step runs
    its pieces one after another (:func:`~gaatool.nn.chunks.gradients_side_by_side`).
    """

    def __init__(self):
        self.compiled = None
        self.failed = False
        self.ready: set = set()
        self.lock = threading.Lock()

    def __call__(self, upstream: torch.Tensor, grad_output: torch.Tensor, x: torch.Tensor):
        if not self.failed:
            try:
                return self._compiled(upstream, grad_output, x)
            except Exception as err:  # noqa: BLE001 - no compiler, unsupported device...: stay correct
                self.failed = True
                warnings.warn(f"torch.compile of the swish second derivative failed ({type(err).__name__}); "
                              "using the slower eager formula", RuntimeWarning, stacklevel=2)
        return _second_derivative_terms(upstream, grad_output, x)

    def _compiled(self, upstream: torch.Tensor, grad_output: torch.Tensor, x: torch.Tensor):
        shape = torch.broadcast_shapes(upstream.shape, grad_output.shape, x.shape)
        flat = [t.expand(shape).reshape(-1) for t in (upstream, grad_output, x)]
        kind = (x.dtype, x.device, torch.get_num_threads())
        if kind in self.ready:
            terms = self.compiled(*flat)
        else:
            with self.lock:
                if self.compiled is None:
                    self.compiled = torch.compile(_second_derivative_terms, dynamic=True)
                terms = self.compiled(*flat)
                self.ready.add(kind)
        return terms[0].view(shape), terms[1].view(shape)


_fused_terms = _FusedTerms()


class _SwishGrad(torch.autograd.Function):
    """silu'(x) * grad_output, differentiable once more (what force training needs)."""

    @staticmethod
    def forward(ctx, grad_output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(grad_output, x)
        return torch.ops.aten.silu_backward(grad_output, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, upstream: torch.Tensor):
        grad_output, x = ctx.saved_tensors
        if upstream.device.type == "cpu" and not torch.compiler.is_compiling():
            return _fused_terms(upstream, grad_output, x)
        return _second_derivative_terms(upstream, grad_output, x)


class _Swish(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return nn.functional.silu(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return _SwishGrad.apply(grad_output, x)


def swish(x: torch.Tensor) -> torch.Tensor:
    """x * sigmoid(x), differentiable twice with fused kernels.

    >>> round(float(swish(torch.tensor(1.0))), 6)
    0.731059
    """
    if torch.compiler.is_compiling():
        return nn.functional.silu(x)  # a compiled graph fuses the derivatives itself
    return _Swish.apply(x)


class Swish(nn.Module):
    """Module form of :func:`swish` (a drop-in for ``nn.SiLU``).

    In training mode :func:`swish`; in eval mode torch's SiLU, whose single
    fused backward is all that inference (forces) needs, without the Python
    overhead of a custom autograd function (it matters for one molecule).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():
            return swish(x)
        return nn.functional.silu(x)
