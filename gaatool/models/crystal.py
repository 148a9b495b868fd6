"""Crystal-structure classifiers: the GAA network of Listing 1 and the Steinhardt-MLP baseline."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..nn import Geometry
from ..nn.chunks import piece_randomness, run_in_pieces
from .blocks import AttentionSettings, ResidualAttentionBlock, make_vector_attention
from .registry import register

__all__ = ["CrystalClassifier", "SteinhardtMLP", "CPU_CHUNK_TUPLES"]

#: Tuples per inference piece on a CPU (4x the nn/chunks.py default, as for backmapping): each piece
#: runs ~700 small operations (~1.3 ms on one core of a 2-core Xeon), whose fixed cost bigger pieces
#: amortise. On a 2-core Xeon (``python -m benchmarks.ab_switches crystal-pieces``): batch 256 0.047-0.058
#: instead of 0.071-0.084 ms per environment; batch 1024 (4 pieces of 256 side by side instead of 10 of
#: ~103) mixed in that run, faster in two development runs before it. Training keeps the default.
CPU_CHUNK_TUPLES = 131072
#: Pieces side by side (inference on several cores) get that budget each rather than sharing it: a batch of
#: 1024 on 2 cores runs as 2 pieces of 512, not 4 of 256 (each piece pays ~700 operations' fixed cost; its
#: tensors are a few MiB). 2-core Xeon, ms per environment on / off: 0.0418 / 0.0486, 0.0298 / 0.0356 (freed
#: memory kept), 0.0332 / 0.0377 (library defaults); batch 256 unchanged (``python -m benchmarks.ab_switches
#: worker-budget --alternate 30 --threads 2 [--keep-freed-memory]``,
#: ``benchmarks/results/ab-switches-cpu-intel-xeon-session18.txt``).
BUDGET_PER_WORKER = True


@register
class CrystalClassifier(nn.Module):
    """Per-particle environment classifier (paper Listing 1).

    r_ij (B, K, 3) bond vectors to the K nearest neighbours (lengths in units
    of the nearest-neighbour distance), type_pairs (B, K, 2T) = [t_i - t_j, t_i + t_j],
    mask (B, K) -> logits (B, C). Rotation-, translation- (bond vectors) and
    neighbour-permutation-invariant.
    """

    name = "crystal-gaa"

    @dataclass
    class Config:
        n_classes: int = 8
        n_type_features: int = 4
        n_dim: int = 32
        n_blocks: int = 2
        activation: str = "relu"
        attention: dict = field(default_factory=lambda: {"dropout": 0.5})

    def __init__(self, config: "CrystalClassifier.Config"):
        super().__init__()
        self.config = config
        settings = AttentionSettings(**config.attention)
        d = config.n_dim
        self.embed = nn.Linear(config.n_type_features, d)
        self.blocks = nn.ModuleList(ResidualAttentionBlock(d, settings, config.activation) for _ in range(config.n_blocks))
        self.reduce = make_vector_attention(d, settings, reduce=True)
        self.head = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, config.n_classes))

    def forward(self, r_ij: torch.Tensor, type_pairs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        tuples_per_item = r_ij.shape[-2] ** 2  # rank-2 tuples of one environment
        return run_in_pieces(self._forward, (r_ij, type_pairs, mask), tuples_per_item,
                             parameters=list(self.parameters()),
                             cpu_budget=None if torch.is_grad_enabled() else CPU_CHUNK_TUPLES,
                             budget_per_worker=BUDGET_PER_WORKER and not torch.is_grad_enabled(),
                             **piece_randomness(self))

    def _forward(self, r_ij, type_pairs, mask):
        geometry = Geometry(r_ij, mask)  # invariants computed once, shared by every layer
        values = self.embed(type_pairs)
        for block in self.blocks:
            values = block(geometry, values, mask)
        return self.head(self.reduce(geometry, values, mask))


@register
class SteinhardtMLP(nn.Module):
    """Baseline of Appendix B: BatchNorm, two Dense(64)-ReLU-Dropout(0.5) blocks, class logits.

    features (B, F) rotation-invariant spherical-harmonic descriptors -> logits (B, C).
    """

    name = "crystal-steinhardt"

    @dataclass
    class Config:
        n_classes: int = 8
        n_features: int = 1
        hidden: int = 64
        dropout: float = 0.5

    def __init__(self, config: "SteinhardtMLP.Config"):
        super().__init__()
        self.config = config
        h = config.hidden
        self.net = nn.Sequential(
            nn.BatchNorm1d(config.n_features),
            nn.Linear(config.n_features, h), nn.ReLU(), nn.Dropout(config.dropout),
            nn.Linear(h, h), nn.ReLU(), nn.Dropout(config.dropout),
            nn.Linear(h, config.n_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)
