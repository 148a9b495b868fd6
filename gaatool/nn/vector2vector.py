"""Vector2VectorAttention: rotation-covariant vector outputs (Eq. 2)."""
from __future__ import annotations

import torch
from torch import nn

from ..ga.covariants import covariant_count, tuple_covariants
from .attention import AttentionOutput, TupleAttentionBase, clean_padding, tuple_mask
from .mlp import scale_net as make_scale_net

__all__ = ["Vector2VectorAttention", "CovariantMixin"]


class CovariantMixin(nn.Module):
    """Learned combination sum_n alpha_n vector(p_n) of a tuple's covariant vectors."""

    def _init_vector_output(self, n_dim: int, scale_net: nn.Module | None, covariant_mode: str,
                            convex_covariants: bool, hidden: int = 64, activation: str = "relu") -> None:
        """The scale net R (a tuple's value -> one weight per covariant sum) and the covariants' weights."""
        self.scale_net = scale_net if scale_net is not None else make_scale_net(n_dim, hidden, activation)
        self.covariant_mode, self.convex_covariants = covariant_mode, convex_covariants
        self.n_covariants = covariant_count(self.rank, covariant_mode, self.include_normalized_products, self.o3)
        # same init as the reference library (normal, std 0.05)
        self.vector_kernels = nn.Parameter(torch.randn(self.n_covariants) * 0.05) if self.n_covariants > 1 else None

    def combined_covariants(self, positions: torch.Tensor) -> torch.Tensor:
        """(..., N, 3) -> (..., N, ..., N, 3) (broadcastable)."""
        vectors = tuple_covariants(positions, self.rank, self.covariant_mode, self.include_normalized_products, self.o3)
        if self.vector_kernels is None:
            return vectors[0]
        weights = self.vector_kernels
        if self.convex_covariants:
            # convex combination that includes the origin (a zero vector)
            weights = torch.softmax(torch.cat([weights, weights.new_zeros(1)]), dim=0)[:-1]
        return sum(w * v for w, v in zip(weights.unbind(0), vectors))


class Vector2VectorAttention(CovariantMixin, TupleAttentionBase):
    """Attention whose output is a geometric vector that rotates with the input (Eq. 2).

    positions (..., N, 3), values (..., N, F), mask (..., N) ->
    (..., 3) with ``reduce=True`` (default, as in the reference), else (..., N, 3).

    r'_i = sum_jk w_ijk R(v_ijk) sum_n alpha_n vector(p_n)
    """

    def __init__(self, n_dim: int, score_net=None, value_net=None, scale_net=None, *, reduce: bool = True,
                 covariant_mode: str = "partial", convex_covariants: bool = False, **kwargs):
        super().__init__(n_dim, score_net, value_net, reduce=reduce, **kwargs)
        self._init_vector_output(n_dim, scale_net, covariant_mode, convex_covariants,
                                 kwargs.get("hidden", 64), kwargs.get("activation", "relu"))

    def forward(self, positions: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None,
                return_attention: bool = False):
        geometry, values = clean_padding(positions, values, mask)
        tuple_values = self.tuple_values(geometry, values)
        vectors = self.combined_covariants(geometry.positions) * tuple_values.full(tuple_values.through(self.scale_net))
        scores = tuple_values.full(tuple_values.through(self.score_net)).squeeze(-1)
        output, weights = self.attend(scores, vectors, tuple_mask(mask, self.rank))
        if mask is not None and not self.reduce:
            output = output * mask.unsqueeze(-1).to(output.dtype)
        return AttentionOutput(output, weights) if return_attention else output
