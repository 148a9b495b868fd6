"""The small MLPs of the paper's Listings 1-3: score (S), value (V) and scale (R) nets."""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError

__all__ = ["ACTIVATIONS", "activation", "score_net", "value_net", "scale_net"]

ACTIVATIONS = {"relu": nn.ReLU, "swish": nn.SiLU, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def activation(name: str) -> nn.Module:
    """An activation module by name (relu, swish/silu, gelu, tanh)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


def _dropout(p: float) -> list[nn.Module]:
    return [nn.Dropout(p)] if p > 0 else []


def score_net(n_dim: int, hidden: int = 64, act: str = "relu", dropout: float = 0.0) -> nn.Sequential:
    """S: Dense(hidden, act) [Dropout] Dense(1). (..., n_dim) -> (..., 1) attention logits."""
    return nn.Sequential(nn.Linear(n_dim, hidden), activation(act), *_dropout(dropout), nn.Linear(hidden, 1))


def value_net(n_in: int, n_dim: int, hidden: int = 64, act: str = "relu", dropout: float = 0.0) -> nn.Sequential:
    """V: Dense(hidden) LayerNorm act [Dropout] Dense(n_dim). (..., n_in invariants) -> (..., n_dim)."""
    return nn.Sequential(nn.Linear(n_in, hidden), nn.LayerNorm(hidden), activation(act), *_dropout(dropout),
                         nn.Linear(hidden, n_dim))


def scale_net(n_dim: int, hidden: int = 64, act: str = "relu") -> nn.Sequential:
    """R: Dense(hidden, act) Dense(1). (..., n_dim) -> (..., 1) vector rescaling."""
    return nn.Sequential(nn.Linear(n_dim, hidden), activation(act), nn.Linear(hidden, 1))
