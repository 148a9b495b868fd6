"""VectorAttention: geometric algebra attention producing values (Eq. 1).

Shapes: B... batch axes, N points, F working dimension, R rank. Inputs are
padded clouds with an optional boolean mask (..., N); padded points never
change any output and padded outputs are zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..ga.invariants import invariant_count, tuple_invariants
from ..ga.products import slot_view
from .masking import masked_softmax
from .merge import Join, TupleMerge
from .mlp import score_net as make_score_net, value_net as make_value_net

__all__ = ["VectorAttention", "AttentionOutput", "TupleAttentionBase"]


@dataclass
class AttentionOutput:
    """What a layer computed: output and attention weights (for interpretation)."""

    output: torch.Tensor
    attention: torch.Tensor


def tuple_mask(mask: torch.Tensor | None, rank: int) -> torch.Tensor | None:
    """Point mask (..., N) -> tuple mask (..., N, ..., N): a tuple is valid if all its points are."""
    if mask is None:
        return None
    result = None
    for slot in range(rank):
        part = slot_view(mask.unsqueeze(-1), slot, rank).squeeze(-1)
        result = part if result is None else result & part
    return result


def clean_padding(positions: torch.Tensor, values: torch.Tensor | None, mask: torch.Tensor | None):
    """Zero padded points so garbage (even NaN) in the padding cannot reach any output."""
    if mask is None:
        return positions, values
    keep = mask.unsqueeze(-1)
    positions = torch.where(keep, positions, torch.zeros_like(positions))
    if values is not None:
        values = torch.where(keep, values, torch.zeros_like(values))
    return positions, values


class TupleAttentionBase(nn.Module):
    """Shared machinery: invariants -> V, merge M, join J, scores S (Eq. 1, first four lines)."""

    n_join_inputs = 2

    def __init__(self, n_dim: int, score_net: nn.Module | None = None, value_net: nn.Module | None = None, *,
                 reduce: bool = False, merge: str = "mean", join: str = "mean", rank: int = 2,
                 invariant_mode: str = "single", include_normalized_products: bool = False, o3: bool = False,
                 hidden: int = 64, activation: str = "relu", dropout: float = 0.0):
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self.n_dim, self.rank, self.reduce = n_dim, rank, reduce
        self.invariant_mode, self.include_normalized_products, self.o3 = invariant_mode, include_normalized_products, o3
        self.n_invariants = invariant_count(rank, invariant_mode, include_normalized_products)
        self.score_net = score_net if score_net is not None else make_score_net(n_dim, hidden, activation, dropout)
        self.value_net = value_net if value_net is not None else make_value_net(
            self.n_invariants, n_dim, hidden, activation, dropout)
        self.merge = TupleMerge(n_dim, rank, merge)
        self.join = Join(n_dim, self.n_join_inputs, join)

    def invariants(self, positions: torch.Tensor) -> torch.Tensor:
        """q: (..., N, 3) -> (..., N, ..., N, I)."""
        return tuple_invariants(positions, self.rank, self.invariant_mode, self.include_normalized_products, self.o3)

    def tuple_values(self, positions: torch.Tensor, values: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        """v_ijk = J(*extra, V(q_ijk), M(v_i, v_j, ...)) -> (..., N, ..., N, F)."""
        invariant_values = self.value_net(self.invariants(positions))
        return self.join(*extra, invariant_values, self.merge(values))

    def reduction_dims(self) -> int:
        """How many trailing tuple axes the softmax and sum run over."""
        return self.rank if self.reduce else self.rank - 1

    def attend(self, scores: torch.Tensor, tuple_values: torch.Tensor, valid: torch.Tensor | None):
        """Masked softmax of scores (..., tuple axes) and weighted sum of values (..., tuple axes, C)."""
        dims = self.reduction_dims()
        weights = masked_softmax(scores, valid, dims)
        tuple_values = tuple_values.expand(*weights.shape, tuple_values.shape[-1])
        output = (weights.unsqueeze(-1) * tuple_values).flatten(-1 - dims, -2).sum(dim=-2) if dims else \
            weights.unsqueeze(-1) * tuple_values
        return output, weights

    def extra_repr(self) -> str:
        return (f"n_dim={self.n_dim}, rank={self.rank}, reduce={self.reduce}, invariant_mode={self.invariant_mode!r}, "
                f"normalized={self.include_normalized_products}, o3={self.o3}")


class VectorAttention(TupleAttentionBase):
    """Rotation-invariant, permutation-covariant (or invariant with ``reduce``) attention, Eq. 1.

    positions (..., N, 3), values (..., N, F), mask (..., N) bool ->
    (..., N, F), or (..., F) with ``reduce=True``.

    >>> layer = VectorAttention(8).double()
    >>> layer(torch.randn(2, 5, 3, dtype=torch.float64), torch.randn(2, 5, 8, dtype=torch.float64)).shape
    torch.Size([2, 5, 8])
    """

    def forward(self, positions: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None,
                return_attention: bool = False):
        positions, values = clean_padding(positions, values, mask)
        tuple_values = self.tuple_values(positions, values)
        scores = self.score_net(tuple_values).squeeze(-1)
        valid = tuple_mask(mask, self.rank)
        output, weights = self.attend(scores, tuple_values, valid)
        if mask is not None and not self.reduce:
            output = output * mask.unsqueeze(-1).to(output.dtype)
        return AttentionOutput(output, weights) if return_attention else output
