"""Coarse-grain backmapping (paper Listing 3) and its dot-product transformer baseline (Appendix B).

Both models map the neighbourhood of one coarse-grained bead to the heavy
atoms of its residue:

* ``neighbor_positions`` (B, K, 3): ``r_j - r_i`` from the central bead i to
  its K nearest beads j, in Å;
* ``neighbor_types`` (B, K) and ``residue_types`` (B,): residue type indices
  of the neighbours and of the central residue;
* ``atom_labels`` (B, A): vocabulary indices of the atoms to produce
  (:mod:`gaatool.tasks.backmap.residues`);
* ``neighbor_mask`` (B, K), ``atom_mask`` (B, A): optional, True = real;

and return atom positions (B, A, 3) relative to the central bead, in Å
(zero for padded atoms).

The GAA model is rotation-covariant, invariant to the order of the
neighbour beads, and equivariant to the order of the atom labels by
construction. The transformer baseline is only permutation-symmetric; it
learns rotations from augmented data.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..nn import Geometry, LabeledVectorAttention, Vector2VectorAttention
from ..nn.chunks import piece_randomness, run_in_pieces
from ..nn.fused import linear_then
from ..nn.mlp import activation
from .blocks import AttentionSettings, ResidualAttentionBlock
from .registry import register

__all__ = ["Backmapper", "BackmapTransformer", "pair_differences", "pair_label_values"]

#: Tuples per inference piece on a CPU (4x the default, nn/chunks.py): a backmapping piece runs ~300
#: small operations, whose fixed cost bigger pieces amortise. Inference at batch 256 on 2 cores:
#: 1.21-1.29 ms per residue against 1.47-1.55 at 32768; session 5: 1.25-1.46 against 1.56-1.80
#: (``python -m benchmarks.ab_switches backmap-pieces``). Training keeps the default: with bigger
#: pieces its steps were slower in two A/B runs of three (5.6-5.8 vs 5.2-5.5 ms, then 5.1-5.3 vs
#: 4.6-5.0; the first had 4.1-4.4 vs 4.6-4.9), its backward pass holding the bigger pieces' graphs.
CPU_CHUNK_TUPLES = 131072
#: Tuples per training piece on a CPU (None: the nn/chunks.py default).
TRAIN_CPU_CHUNK_TUPLES = None


def pair_differences(vectors: torch.Tensor) -> torch.Tensor:
    """r_ab = r_b - r_a for every pair: (..., A, 3) -> (..., A, A, 3) (PairwiseDifference)."""
    return vectors.unsqueeze(-3) - vectors.unsqueeze(-2)


def pair_label_values(labels: torch.Tensor) -> torch.Tensor:
    """[c_b - c_a, c_b + c_a]: (..., A, F) -> (..., A, A, 2F) (PairwiseDifferenceSum)."""
    c_a, c_b = torch.broadcast_tensors(labels.unsqueeze(-2), labels.unsqueeze(-3))
    return torch.cat([c_b - c_a, c_b + c_a], dim=-1)


def _zero_padding(positions, mask):
    # padded inputs may hold anything (even NaN); zero them before any arithmetic
    if mask is None:
        return positions
    return torch.where(mask.unsqueeze(-1), positions, torch.zeros_like(positions))


@register
class Backmapper(nn.Module):
    """Geometric algebra attention backmapper (paper Listing 3).

    1. values of the neighbour beads: embeddings of the (central, neighbour)
       residue types, the learned linear map of Listing 3's pair encoding;
    2. ``n_blocks`` residual permutation-covariant VectorAttention blocks over
       the neighbourhood;
    3. a LabeledVectorAttention translating the neighbourhood into one vector
       per atom label (labels embedded);
    4. ``n_refine`` rotation-covariant refinements: Vector2VectorAttention over
       the differences between the current atom positions, with pair-label
       values, added as residual updates.

    With ``sequence_offsets = M > 0`` (not in the paper) each neighbour's value
    also gets an embedding of its place in the chain relative to the central
    residue: j - i for sequence neighbours within M residues of the same chain
    segment, one shared "other" embedding for the rest. Bead positions alone
    do not say which neighbours are bonded, nor in which direction the chain
    runs, which the backbone atoms depend on. The offsets are per-bead scalars:
    no symmetry changes.

    Coordinates enter divided by ``length_scale`` (Å) and leave multiplied by
    it, which keeps the invariants O(1) without breaking any symmetry.

    >>> model = Backmapper(Backmapper.Config(n_dim=8)).double()
    >>> out = model(torch.randn(2, 5, 3, dtype=torch.float64), torch.zeros(2, 5, dtype=torch.long),
    ...             torch.zeros(2, dtype=torch.long), torch.arange(4).expand(2, 4))
    >>> out.shape
    torch.Size([2, 4, 3])
    """

    name = "backmap-gaa"

    @dataclass
    class Config:
        n_residue_types: int = 20
        n_labels: int = 187
        n_dim: int = 32
        n_blocks: int = 2
        n_refine: int = 2
        activation: str = "relu"
        length_scale: float = 8.0  # Å
        attention: dict = field(default_factory=lambda: {"merge": "concat", "join": "concat"})
        translation_rank: int | None = None  # tuple rank of the translation; None: attention["rank"]
        refine_rank: int | None = None  # tuple rank of the refinements; None: attention["rank"]
        sequence_offsets: int = 0  # M: embed sequence offsets -M..M of the neighbours; 0: off (the paper)

    def __init__(self, config: "Backmapper.Config"):
        super().__init__()
        self.config = config
        settings = AttentionSettings(**config.attention)
        d = config.n_dim
        self.embed_neighbor = nn.Embedding(config.n_residue_types, d)
        self.embed_center = nn.Embedding(config.n_residue_types, d)
        self.embed_label = nn.Embedding(config.n_labels, d)
        if config.sequence_offsets < 0:
            raise ValueError(f"sequence_offsets must be >= 0, got {config.sequence_offsets}")
        # 2M + 1 rows: offsets -M..-1 and 1..M, and row M for 'not a sequence neighbour within M'
        self.embed_offset = (nn.Embedding(2 * config.sequence_offsets + 1, d) if config.sequence_offsets
                             else None)
        self.blocks = nn.ModuleList(ResidualAttentionBlock(d, settings, config.activation)
                                    for _ in range(config.n_blocks))
        kwargs = dict(merge=settings.merge, join=settings.join,
                      invariant_mode=settings.invariant_mode,
                      include_normalized_products=settings.include_normalized_products, o3=settings.o3,
                      hidden=settings.hidden, activation=settings.score_activation, dropout=settings.dropout)
        translation_rank = config.translation_rank or settings.rank
        refine_rank = config.refine_rank or settings.rank
        self.translate = LabeledVectorAttention(d, reduce=True, rank=translation_rank, **kwargs)
        self.pair_labels = nn.Linear(2 * d, d)
        self.refine = nn.ModuleList(Vector2VectorAttention(d, reduce=True, rank=refine_rank, **kwargs)
                                    for _ in range(config.n_refine))

    def forward(self, neighbor_positions: torch.Tensor, neighbor_types: torch.Tensor, residue_types: torch.Tensor,
                atom_labels: torch.Tensor, neighbor_mask: torch.Tensor | None = None,
                atom_mask: torch.Tensor | None = None, neighbor_offsets: torch.Tensor | None = None) -> torch.Tensor:
        """Atom vectors (B, A, 3) from the beads; ``neighbor_offsets`` (B, K) int: j - i along the chain,
        0 for beads of other chains or segments (needed when ``sequence_offsets`` > 0, else ignored)."""
        if self.embed_offset is not None and neighbor_offsets is None:
            raise ValueError("this backmapper embeds sequence offsets: give neighbor_offsets")
        inputs = (neighbor_positions, neighbor_types, residue_types, atom_labels, neighbor_mask, atom_mask,
                  neighbor_offsets if self.embed_offset is not None else None)
        tuples_per_residue = self.tuples_per_residue(neighbor_positions.shape[-2], atom_labels.shape[-1])
        budget = TRAIN_CPU_CHUNK_TUPLES if torch.is_grad_enabled() else CPU_CHUNK_TUPLES
        return run_in_pieces(self._forward, inputs, tuples_per_residue, parameters=list(self.parameters()),
                             cpu_budget=budget, **piece_randomness(self))

    def tuples_per_residue(self, n_neighbors: int, n_atoms: int) -> int:
        """Tuples of the widest layer for one residue: bead blocks, translation (per label) or refinement."""
        rank = self.blocks[0].attention.rank if len(self.blocks) else 1
        widest_refine = max((layer.rank for layer in self.refine), default=0)
        return max(n_neighbors ** rank, n_atoms * n_neighbors ** self.translate.rank,
                   n_atoms * n_atoms ** widest_refine)

    def _forward(self, neighbor_positions, neighbor_types, residue_types, atom_labels, neighbor_mask, atom_mask,
                 neighbor_offsets=None):
        scale = self.config.length_scale
        types = neighbor_types.long().clamp(0, self.config.n_residue_types - 1)
        values = self.embed_neighbor(types) + self.embed_center(residue_types.long()).unsqueeze(-2)
        if self.embed_offset is not None:
            m = self.config.sequence_offsets
            offsets = neighbor_offsets.long()
            near = (offsets != 0) & (offsets.abs() <= m)
            values = values + self.embed_offset(torch.where(near, offsets + m, torch.full_like(offsets, m)))
        if neighbor_mask is not None:
            values = values * neighbor_mask.unsqueeze(-1).to(values.dtype)
        # padding zeroed once, before the division; one Geometry (invariants computed once) for every layer
        geometry = Geometry(_zero_padding(neighbor_positions, neighbor_mask) / scale)
        for block in self.blocks:
            values = block(geometry, values, neighbor_mask)
        labels = self.embed_label(atom_labels.long().clamp(0, self.config.n_labels - 1))
        vectors = self.translate(labels, geometry, values, neighbor_mask, atom_mask)
        pair_values = self.pair_labels(pair_label_values(labels))
        pair_mask = None
        if atom_mask is not None:
            # atom a refines from the other real atoms b of its residue
            pair_mask = atom_mask.unsqueeze(-2).expand(*atom_mask.shape, atom_mask.shape[-1])
        for layer in self.refine:
            vectors = vectors + layer(pair_differences(vectors), pair_values, pair_mask)
        if atom_mask is not None:
            vectors = vectors * atom_mask.unsqueeze(-1).to(vectors.dtype)
        return vectors * scale


class _TransformerBlock(nn.Module):
    """v <- v + Dense(F)(act(Dense(2F)(MHA(v, v, v)))): the GAA block with dot-product attention."""

    def __init__(self, n_dim: int, n_heads: int, act: str):
        super().__init__()
        self.attention = nn.MultiheadAttention(n_dim, n_heads, batch_first=True)
        self.expand = nn.Linear(n_dim, 2 * n_dim)
        self.act = activation(act)
        self.project = nn.Linear(2 * n_dim, n_dim)

    def forward(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        padding = None if mask is None else ~mask
        attended, _ = self.attention(values, values, values, key_padding_mask=padding, need_weights=False)
        update = self.project(linear_then(self.expand, self.act, attended))
        if mask is not None:
            update = update * mask.unsqueeze(-1).to(update.dtype)
        return values + update


@register
class BackmapTransformer(nn.Module):
    """Geometrically naive baseline (Appendix B): dot-product attention on [coordinates, embeddings].

    Bead values are Dense([r_ij / length_scale, type embeddings]); ``n_blocks``
    residual self-attention blocks; a cross-attention translation whose
    queries are the atom-label embeddings, projected to one vector per atom;
    ``n_refine`` residual self-attention refinements over
    [atom positions, label embeddings]. Not rotation-covariant: train it with
    random rotations.
    """

    name = "backmap-transformer"

    @dataclass
    class Config:
        n_residue_types: int = 20
        n_labels: int = 187
        n_dim: int = 32
        n_heads: int = 4
        n_blocks: int = 2
        n_refine: int = 2
        activation: str = "relu"
        length_scale: float = 8.0  # Å

    def __init__(self, config: "BackmapTransformer.Config"):
        super().__init__()
        self.config = config
        d = config.n_dim
        self.embed_neighbor = nn.Embedding(config.n_residue_types, d)
        self.embed_center = nn.Embedding(config.n_residue_types, d)
        self.embed_label = nn.Embedding(config.n_labels, d)
        self.bead_in = nn.Linear(d + 3, d)
        self.blocks = nn.ModuleList(_TransformerBlock(d, config.n_heads, config.activation)
                                    for _ in range(config.n_blocks))
        self.translate = nn.MultiheadAttention(d, config.n_heads, batch_first=True)
        self.to_vector = nn.Linear(d, 3)
        self.atom_in = nn.ModuleList(nn.Linear(d + 3, d) for _ in range(config.n_refine))
        self.refine = nn.ModuleList(_TransformerBlock(d, config.n_heads, config.activation)
                                    for _ in range(config.n_refine))
        self.refine_out = nn.ModuleList(nn.Linear(d, 3) for _ in range(config.n_refine))

    def forward(self, neighbor_positions: torch.Tensor, neighbor_types: torch.Tensor, residue_types: torch.Tensor,
                atom_labels: torch.Tensor, neighbor_mask: torch.Tensor | None = None,
                atom_mask: torch.Tensor | None = None) -> torch.Tensor:
        scale = self.config.length_scale
        r = _zero_padding(neighbor_positions, neighbor_mask) / scale
        types = neighbor_types.long().clamp(0, self.config.n_residue_types - 1)
        embedded = self.embed_neighbor(types) + self.embed_center(residue_types.long()).unsqueeze(-2)
        values = self.bead_in(torch.cat([r, embedded], dim=-1))
        for block in self.blocks:
            values = block(values, neighbor_mask)
        labels = self.embed_label(atom_labels.long().clamp(0, self.config.n_labels - 1))
        padding = None if neighbor_mask is None else ~neighbor_mask
        translated, _ = self.translate(labels, values, values, key_padding_mask=padding, need_weights=False)
        vectors = self.to_vector(translated)
        for project_in, block, project_out in zip(self.atom_in, self.refine, self.refine_out):
            atoms = project_in(torch.cat([vectors, labels], dim=-1))
            vectors = vectors + project_out(block(atoms, atom_mask))
        if atom_mask is not None:
            vectors = vectors * atom_mask.unsqueeze(-1).to(vectors.dtype)
        return vectors * scale
