"""Building blocks shared by the task models: attention kwargs and residual blocks."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..nn import VectorAttention
from ..nn.fused import linear_then
from ..nn.mlp import activation, score_net, value_net

__all__ = ["AttentionSettings", "MAX_RANK", "ResidualAttentionBlock", "make_vector_attention"]

#: Highest tuple rank a task model's options accept: N^R tuples per cloud, and a tiny crystal training at
#: rank 4 over 12 neighbours was killed for memory on a 24 GiB machine (a scratch run of session 18's audit;
#: the CLI's --rank options say max=3 too).
MAX_RANK = 3


@dataclass
class AttentionSettings:
    """Hyperparameters of every attention layer in a model (paper defaults)."""

    rank: int = 2
    invariant_mode: str = "single"
    include_normalized_products: bool = False
    merge: str = "mean"
    join: str = "mean"
    hidden: int = 64
    score_activation: str = "relu"
    dropout: float = 0.0
    o3: bool = False


def make_vector_attention(n_dim: int, s: AttentionSettings, reduce: bool) -> VectorAttention:
    """A VectorAttention with the paper's S (Dense-act-[Dropout]-Dense) and V (Dense-LN-relu-[Dropout]-Dense) nets."""
    from ..ga.invariants import invariant_count

    n_inv = invariant_count(s.rank, s.invariant_mode, s.include_normalized_products)
    return VectorAttention(
        n_dim, score_net(n_dim, s.hidden, s.score_activation, s.dropout), value_net(n_inv, n_dim, s.hidden, "relu", s.dropout),
        reduce=reduce, merge=s.merge, join=s.join, rank=s.rank, invariant_mode=s.invariant_mode,
        include_normalized_products=s.include_normalized_products, o3=s.o3)


class ResidualAttentionBlock(nn.Module):
    """v <- v + Dense(F)(act(Dense(2F)(VectorAttention(r, v)))): one block of Listings 1-3."""

    def __init__(self, n_dim: int, settings: AttentionSettings, act: str):
        super().__init__()
        self.attention = make_vector_attention(n_dim, settings, reduce=False)
        self.expand = nn.Linear(n_dim, 2 * n_dim)
        self.act = activation(act)
        self.project = nn.Linear(2 * n_dim, n_dim)

    def forward(self, positions: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        update = self.project(linear_then(self.expand, self.act, self.attention(positions, values, mask)))
        if mask is not None:
            update = update * mask.unsqueeze(-1).to(update.dtype)
        return values + update
