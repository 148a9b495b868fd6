"""Geometric algebra attention layers (PyTorch modules)."""
from .attention import AttentionOutput, VectorAttention
from .geometry import Geometry
from .labeled import LabeledVectorAttention
from .masking import masked_mean, masked_softmax
from .merge import Join, TupleMerge
from .mlp import scale_net, score_net, value_net
from .vector2vector import Vector2VectorAttention

__all__ = ["VectorAttention", "Vector2VectorAttention", "Geometry", "LabeledVectorAttention", "AttentionOutput",
           "masked_softmax", "masked_mean", "TupleMerge", "Join", "score_net", "value_net", "scale_net"]
