"""LabeledVectorAttention: translate a point cloud into labelled points (Eq. 3)."""
from __future__ import annotations

import torch

from .attention import AttentionOutput, TupleAttentionBase, clean_padding, tuple_mask
from .vector2vector import CovariantMixin

__all__ = ["LabeledVectorAttention"]


class LabeledVectorAttention(CovariantMixin, TupleAttentionBase):
    """One output vector per label: v_l,ijk = J(c_l, V(q_ijk), M(v_i, v_j, ...)) (Eq. 3).

    labels (..., L, F), positions (..., N, 3), values (..., N, F),
    mask (..., N), label_mask (..., L) -> (..., L, 3) with ``reduce=True``
    (softmax over all tuples per label), else (..., L, N, 3).
    """

    n_join_inputs = 3

    def __init__(self, n_dim: int, score_net=None, value_net=None, scale_net=None, *, reduce: bool = True,
                 covariant_mode: str = "partial", convex_covariants: bool = False, **kwargs):
        super().__init__(n_dim, score_net, value_net, reduce=reduce, **kwargs)
        self._init_vector_output(n_dim, scale_net, covariant_mode, convex_covariants,
                                 kwargs.get("hidden", 64), kwargs.get("activation", "relu"))

    def forward(self, labels: torch.Tensor, positions: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor | None = None, label_mask: torch.Tensor | None = None,
                return_attention: bool = False):
        geometry, values = clean_padding(positions, values, mask)
        rank = self.rank
        # label axis goes right before the tuple axes: (..., L, 1, ..., 1, F)
        label_values = labels.reshape(*labels.shape[:-1], *([1] * rank), labels.shape[-1])
        tuple_values = self.tuple_values(geometry, values, label_values, tuple_axis_offset=1)
        covariants = self.combined_covariants(geometry.positions).unsqueeze(-2 - rank)
        vectors = covariants * tuple_values.through(self.scale_net)
        scores = tuple_values.through(self.score_net).squeeze(-1)
        valid = tuple_mask(mask, rank)
        valid = None if valid is None else valid.unsqueeze(-1 - rank)
        if label_mask is not None:
            lm = label_mask.reshape(*label_mask.shape, *([1] * rank))
            valid = lm if valid is None else valid & lm
        output, weights = self.attend(scores, vectors, valid)
        if label_mask is not None:
            keep = label_mask.reshape(*label_mask.shape, *([1] * (output.dim() - label_mask.dim())))
            output = output * keep.to(output.dtype)
        return AttentionOutput(output, weights) if return_attention else output
