"""The small MLPs of the paper's Listings 1-3: score (S), value (V) and scale (R) nets."""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..errors import ConfigError
from . import fused, workspace
from .frozen import derived_while_frozen
from .streams import current_generator
from .swish import Swish

import torch

__all__ = ["ACTIVATIONS", "activation", "score_net", "value_net", "scale_net", "FastDropout", "ReLU", "ValueMLP",
           "linear_layer_norm", "relu_then_identities"]

class ReLU(nn.ReLU):
    """nn.ReLU that works in place in eval mode.

    The tuple hidden layers are the biggest tensors of every model; a fresh
    output per ReLU made inference ~1.5-2.5x slower (allocation and first-touch
    page faults: crystal classifier, backmapping). In training the plain
    version measured faster. Safe: every ReLU follows a Linear, LayerNorm or
    sum, whose backward never reads its output.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.relu(x, inplace=not self.training)


# swish: torch's SiLU with a fused second derivative (force training differentiates twice)
ACTIVATIONS = {"relu": ReLU, "swish": Swish, "silu": Swish, "gelu": nn.GELU, "tanh": nn.Tanh}


def activation(name: str) -> nn.Module:
    """An activation module by name (relu, swish/silu, gelu, tanh)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


def random_bytes(shape: torch.Size) -> torch.Tensor:
    """Uniform random uint8 of ``shape`` (CPU), drawn 8 at a time as int64: ~5x faster than uint8 sampling."""
    count = shape.numel()
    # a batch piece running on a worker thread draws from its own stream (gaatool.nn.streams)
    words = torch.empty((count + 7) // 8, dtype=torch.int64).random_(-2**63, 2**63 - 1, generator=current_generator())
    return words.view(torch.uint8)[:count].reshape(shape)


class FastDropout(nn.Module):
    """Dropout whose CPU mask comes from random bytes: same distribution, ~4x faster.

    torch's CPU Bernoulli sampling dominated training time of the tuple MLPs
    (dropout acts on (B, N, N, 64) tensors). Keeping an element when a uniform
    random byte is >= round(256 p) quantises p to multiples of 1/256 (exact
    for the paper's 0.5); the bytes come from 64-bit random words. On CUDA the
    standard kernel is used.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {p}")
        self.p = p
        self.threshold = int(round(256 * p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, training=True)
        # the kept elements' scale folded into a float mask: one product forward and one backward, where
        # x * keep * scale took two each and a bool-to-float promotion (``python -m benchmarks.ab_switches
        # dropout-mask``)
        mask = (random_bytes(x.shape) >= self.threshold).to(x.dtype).mul_(256.0 / (256 - self.threshold))
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.threshold / 256:g}"


def _dropout(p: float) -> list[nn.Module]:
    return [FastDropout(p)] if p > 0 else []


def relu_then_identities(modules: list[nn.Module]) -> bool:
    """Whether ``modules`` are an eval-mode ReLU and then only eval-mode dropouts (identities): what a
    Linear's bias may be moved through (``max(h, -b) + b = relu(h + b)``)."""
    return (bool(modules) and fused.fuses(modules[0])
            and all(isinstance(m, (FastDropout, nn.Dropout)) and not m.training for m in modules[1:]))


def score_net(n_dim: int, hidden: int = 64, act: str = "relu", dropout: float = 0.0) -> nn.Sequential:
    """S: Dense(hidden, act) [Dropout] Dense(1). (..., n_dim) -> (..., 1) attention logits."""
    return nn.Sequential(nn.Linear(n_dim, hidden), activation(act), *_dropout(dropout), nn.Linear(hidden, 1))


#: Linear + LayerNorm are fused (:func:`linear_layer_norm`) for inputs at most this wide.
FUSE_MAX_INPUTS = 8
#: ... and, outside training, at least this many rows: the fused form is ~11 operator calls where torch's
#: modules are 2, which costs more than it saves on small inputs (one ethanol molecule, 405 pair rows:
#: energy+forces 9.2 instead of 9.9 ms; ``python -m benchmarks.ab_switches fuse-min-rows``). Training
#: fuses at any size: force training differentiates twice, and with torch's LayerNorm double backward
#: (a first try that applied the row rule to training too) ethanol steps at batch 8 took 13.3 instead
#: of 11.2 ms.
FUSE_MIN_ROWS = 1024
#: :func:`layer_norm_operands` computes the row statistics on the inputs laid out channels first (the A/B switch
#: of ``benchmarks.ab_switches stats-channels-first``).
STATS_CHANNELS_FIRST = True
#: :meth:`ValueMLP.hidden_rows` computes a fused layer's row statistics once for all blocks (the A/B switch
#: of ``benchmarks.ab_switches norm-stats-once``).
ROW_STATS_ONCE = True


def linear_layer_norm(x: torch.Tensor, linear: nn.Linear, norm: nn.LayerNorm, out_slot: str | None = None) -> torch.Tensor:
    """``norm(linear(x))`` in one matrix product, for narrow inputs x (..., I).

    h = [x, 1] W~^T is affine in x, so its mean over the H channels is too:
    with W~ = [W, b] centred over the channels (C), h - mean(h) = [x, 1] C^T and
    var(h) = [x, 1] M [x, 1]^T with M = C^T C / H, an (I+1)-square form. So
    LayerNorm(h) = (s [x, 1]) (C diag(gamma))^T + beta with s = 1 / sqrt(var + eps)
    per row: the per-row statistics cost O(I^2) instead of two passes over H
    values, and no H-wide intermediate is normalised (the value nets see
    I = 2 invariants and H = 64). Its derivatives are those of a few small
    products: torch's LayerNorm double backward was ~15% of a force training
    step. Equal up to rounding. With ``out_slot`` the result may be that :mod:`.workspace` slot's
    reused buffer (no-grad CPU inference), for callers that consume it before the slot's next use.
    """
    scaled, kernel = layer_norm_operands(x, linear, norm)
    if out_slot is None:
        return nn.functional.linear(scaled, kernel, norm.bias)
    return workspace.linear(scaled, kernel, norm.bias, out_slot)


def layer_norm_operands(x: torch.Tensor, linear: nn.Linear, norm: nn.LayerNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(s [x, 1], C diag(gamma)) of :func:`linear_layer_norm`, whose product plus beta is ``norm(linear(x))``.
    Row by row: the rows of a block of ``x`` give the rows of the block's result."""
    def folded():
        weight, bias = linear.weight, linear.bias
        if bias is None:
            bias = weight.new_zeros(weight.shape[0])
        extended = torch.cat([weight, bias.unsqueeze(-1)], dim=-1)  # (H, I + 1)
        centred = extended - extended.mean(dim=0, keepdim=True)
        form = centred.t() @ centred / centred.shape[0]  # (I + 1, I + 1)
        return form, (centred if norm.weight is None else centred * norm.weight.unsqueeze(-1))

    form, kernel = derived_while_frozen(linear, "layer_norm", [*linear.parameters(), *norm.parameters()], folded)
    if not (STATS_CHANNELS_FIRST and not torch.is_grad_enabled()):  # (training steps measured slower with it)
        x1 = torch.cat([x, x.new_ones(*x.shape[:-1], 1)], dim=-1)
        variance = ((x1 @ form) * x1).sum(dim=-1, keepdim=True).clamp_min(0.0)
        return x1 * torch.rsqrt(variance + norm.eps), kernel
    # channels first, (I + 1, rows): every operation runs along contiguous rows, where on (rows, I + 1)
    # the concatenation and the row sums over 3 values each were most of the statistics' time
    width = x.shape[-1] + 1
    rows = x.numel() // (width - 1)
    x1 = torch.cat([x.reshape(rows, width - 1).t(), x.new_ones(1, rows)])
    products = (x1.unsqueeze(1) * x1.unsqueeze(0)).reshape(width * width, rows)
    variance = (form.reshape(1, -1) @ products).clamp_min(0.0)  # [x, 1] M [x, 1]^T per row
    scaled = (x1 * torch.rsqrt(variance + norm.eps)).t()  # (rows, I + 1), a transposed view
    return scaled.reshape(*x.shape[:-1], width), kernel


class ValueMLP(nn.Sequential):
    """The value net V as an nn.Sequential (same parameters and state-dict keys); a leading
    Linear + LayerNorm on narrow inputs is computed by :func:`linear_layer_norm`.

    The fused Linear + LayerNorm made ethanol force training steps ~7-10% faster and crystal
    training the same (``python -m benchmarks.ab_switches fused-layernorm``, 2-core AMD EPYC).
    Since session 9 inference uses it too: on a 2-core Intel Xeon it ran 1.6-3.8x faster than
    torch's two kernels for a crystal piece (``python -m benchmarks.bench_kernels``), crystal
    inference at batch 1024 0.042-0.051 instead of 0.046-0.055 ms per environment
    (``ab_switches fused-layernorm``). Slices (``net[:-1]``) are ValueMLPs too.
    """

    def forward(self, x: torch.Tensor, out_slot: str | None = None) -> torch.Tensor:
        """``out_slot``: the fused first layer's output may go to that :mod:`.workspace` buffer, for a
        caller that consumes the result before the slot's next use; a later Linear (whose output is
        fresh) allows the "hidden" slot by itself."""
        return self._run(list(self), x, out_slot, self.training)

    def hidden(self, x: torch.Tensor, out_slot: str | None = None) -> torch.Tensor:
        """``self[:-1](x, out_slot)``, every layer but the last, without making the slice (a new module
        on every call)."""
        return self._run(list(self)[:-1], x, out_slot, self.training)

    def hidden_rows(self, x: torch.Tensor) -> Callable[[int, int], torch.Tensor]:
        """For x (rows, I): a function (start, stop) -> ``self.hidden(x[start:stop], "hidden")``.

        A fused first layer's per-row statistics (a dozen small operations) are computed once for all
        rows rather than once per block (``python -m benchmarks.ab_switches norm-stats-once``).
        """
        return self._hidden_rows(x, move_relu_bias=False)[0]

    def hidden_rows_bias_moved(self, x: torch.Tensor) -> tuple[Callable[[int, int], torch.Tensor], torch.Tensor | None]:
        """:meth:`hidden_rows`, and where a fused layer's ReLU follows it in no-grad eval, its bias b moved
        through that ReLU: blocks are max(h, -b) = relu(h + b) - b, written by a product without a bias
        (no copy of b into the output to be read back), and the caller adds W b to the next Linear's
        bias. Returns (the function, b or None when nothing was moved)."""
        return self._hidden_rows(x, move_relu_bias=True)

    def _hidden_rows(self, x: torch.Tensor, move_relu_bias: bool):
        modules = list(self)[:-1]
        if not (ROW_STATS_ONCE and self._fuses(modules, x, self.training)):
            return (lambda start, stop: self._run(modules, x[start:stop], "hidden", self.training)), None
        linear, norm, rest = modules[0], modules[1], modules[2:]
        scaled, kernel = layer_norm_operands(x, linear, norm)
        relu = bool(rest) and fused.fuses(rest[0]) and fused.applies(scaled, kernel)
        moved = (move_relu_bias and not relu and norm.bias is not None and relu_then_identities(rest)
                 and workspace.applies(scaled))
        if relu or moved:  # the activation goes with the product (gaatool.nn.fused), or becomes the floor -b
            rest = rest[1:]
        floor = -norm.bias if moved else None

        def block(start: int, stop: int) -> torch.Tensor:
            if relu:
                h = fused.linear_relu(scaled[start:stop], kernel, norm.bias)
            elif moved:
                h = workspace.linear(scaled[start:stop], kernel, None, "hidden").clamp_min_(floor)
            else:
                h = workspace.linear(scaled[start:stop], kernel, norm.bias, "hidden")
            for module in rest:
                h = module(h)
            return h

        return block, (norm.bias if moved else None)

    @staticmethod
    def _fuses(modules: list[nn.Module], x: torch.Tensor, training: bool) -> bool:
        """Whether modules start with a Linear + LayerNorm that :func:`linear_layer_norm` computes for x."""
        return (len(modules) >= 2 and isinstance(modules[0], nn.Linear) and isinstance(modules[1], nn.LayerNorm)
                and modules[0].in_features <= FUSE_MAX_INPUTS and (training or x.numel() >= FUSE_MIN_ROWS * x.shape[-1])
                and tuple(modules[1].normalized_shape) == (modules[0].out_features,))

    @staticmethod
    def _run(modules: list[nn.Module], x: torch.Tensor, out_slot: str | None, training: bool) -> torch.Tensor:
        if ValueMLP._fuses(modules, x, training):
            linear, norm, rest = modules[0], modules[1], modules[2:]
            if rest and fused.fuses(rest[0]) and fused.applies(x, linear.weight):  # the ReLU too (gaatool.nn.fused)
                scaled, kernel = layer_norm_operands(x, linear, norm)
                x, modules = fused.linear_relu(scaled, kernel, norm.bias), rest[1:]
            else:
                if out_slot is None and any(isinstance(module, nn.Linear) for module in rest):
                    out_slot = "hidden"
                x, modules = linear_layer_norm(x, linear, norm, out_slot), rest
        for module in modules:
            x = module(x)
        return x


def value_net(n_in: int, n_dim: int, hidden: int = 64, act: str = "relu", dropout: float = 0.0) -> ValueMLP:
    """V: Dense(hidden) LayerNorm act [Dropout] Dense(n_dim). (..., n_in invariants) -> (..., n_dim)."""
    return ValueMLP(nn.Linear(n_in, hidden), nn.LayerNorm(hidden), activation(act), *_dropout(dropout),
                    nn.Linear(hidden, n_dim))


def scale_net(n_dim: int, hidden: int = 64, act: str = "relu") -> nn.Sequential:
    """R: Dense(hidden, act) Dense(1). (..., n_dim) -> (..., 1) vector rescaling."""
    return nn.Sequential(nn.Linear(n_dim, hidden), activation(act), nn.Linear(hidden, 1))
