"""The paper's three architectures built from the reference library's layers.

The reference is geometric-algebra-attention 0.5.1, PyTorch backend
(``from geometric_algebra_attention import pytorch as gala``), the paper
author's library. Each reference model mirrors one gaatool model:

* the same modules under the same names (embeddings, residual blocks, heads),
  so the parameter count is equal and weights map one to one;
* the same score (S), value (V) and scale (R) MLPs, deep-copied from the
  gaatool layers, except that gaatool's ``FastDropout`` becomes torch's
  ``nn.Dropout`` with the same rate (same distribution; identical in eval
  mode), its ``Swish`` torch's ``nn.SiLU`` and its ReLU (in place in eval mode) ``nn.ReLU()``
  (same functions), which is what a user of the reference library writes
  (also in blocks and heads);
* every attention layer is the reference library's layer
  (``gala.VectorAttention``, ``gala.Vector2VectorAttention``,
  ``gala.LabeledVectorAttention``) called through its own API;
* the model-level code (pair inputs, residual updates, masking, forces by
  autograd) is a frozen copy of gaatool's as of this benchmark, so that
  speed-ups later made in gaatool's model code do not leak into the reference.

:func:`build_reference` makes the mirror of a gaatool model, holding the
same weights; :func:`copy_weights` copies a gaatool model's weights into an
existing mirror again (e.g. after training). After either, both compute the
same function (tests/test_benchmarks.py checks this to 1e-5 in float32).

Shapes follow gaatool's models: B batch, K neighbours, N atoms, A atoms of a
residue, F working dimension.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from gaatool.models.backmap import Backmapper
from gaatool.models.crystal import CrystalClassifier
from gaatool.models.forces import ForceField
from gaatool.models.blocks import ResidualAttentionBlock
from gaatool.nn import LabeledVectorAttention, Vector2VectorAttention, VectorAttention
from gaatool.nn.mlp import FastDropout, ReLU
from gaatool.nn.swish import Swish

__all__ = ["REFERENCE_VERSION", "load_reference_library", "reference_layer", "build_reference", "copy_weights",
           "parameter_count", "ReferenceCrystalClassifier", "ReferenceForceField", "ReferenceBackmapper"]

#: The reference library version the benchmarks were written against.
REFERENCE_VERSION = "0.5.1"


def load_reference_library():
    """The reference library's PyTorch backend, ``geometric_algebra_attention.pytorch``.

    Raises ImportError with the install command when it is missing.
    """
    try:
        from geometric_algebra_attention import pytorch as gala
    except ImportError as err:
        raise ImportError("the benchmarks need the reference library: "
                          f"pip install 'geometric-algebra-attention=={REFERENCE_VERSION}' "
                          "(or pip install -e '.[bench]')") from err
    return gala


def reference_version() -> str:
    """Installed version of geometric-algebra-attention (``"unknown"`` if it cannot be read)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("geometric-algebra-attention")
    except PackageNotFoundError:
        return "unknown"


def parameter_count(module: nn.Module) -> int:
    """Number of trainable scalars of ``module``."""
    return int(sum(p.numel() for p in module.parameters()))


def _reference_mlp(net: nn.Module) -> nn.Module:
    """A deep copy of a net (S/V/R MLP, activation, head) with torch's modules for gaatool's fast ones.

    FastDropout becomes nn.Dropout of the same rate, Swish nn.SiLU, gaatool's ReLU nn.ReLU.
    """
    plain = _plain_module(net)
    if plain is not None:
        return plain
    net = copy.deepcopy(net)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            plain = _plain_module(child)
            if plain is not None:
                setattr(parent, name, plain)
    return net


def _plain_module(module: nn.Module) -> nn.Module | None:
    """torch's plain module for one of gaatool's faster ones, else None."""
    if isinstance(module, FastDropout):
        return nn.Dropout(module.p)
    if isinstance(module, Swish):
        return nn.SiLU()
    if isinstance(module, ReLU):
        return nn.ReLU()
    return None


def reference_layer(layer: VectorAttention | Vector2VectorAttention | LabeledVectorAttention, gala=None) -> nn.Module:
    """The reference library's equivalent of one gaatool attention layer, with copied MLPs.

    The merge/join/vector kernels get the reference library's own random
    initialisation; :func:`copy_weights` (called by :func:`build_reference`)
    overwrites them with gaatool's.
    """
    gala = gala or load_reference_library()
    if layer.o3:
        raise ValueError("the reference library has no O(3) (reflection-invariant) option; cannot mirror o3=True")
    common = dict(reduce=layer.reduce, merge_fun=layer.merge.mode, join_fun=layer.join.mode, rank=layer.rank,
                  invariant_mode=layer.invariant_mode,
                  include_normalized_products=layer.include_normalized_products)
    score, value = _reference_mlp(layer.score_net), _reference_mlp(layer.value_net)
    # subclasses first: LabeledVectorAttention and Vector2VectorAttention share a base with VectorAttention
    if isinstance(layer, LabeledVectorAttention):
        return gala.LabeledVectorAttention(layer.n_dim, score, value, _reference_mlp(layer.scale_net),
                                           covariant_mode=layer.covariant_mode,
                                           convex_covariants=layer.convex_covariants, **common)
    if isinstance(layer, Vector2VectorAttention):
        return gala.Vector2VectorAttention(layer.n_dim, score, value, _reference_mlp(layer.scale_net),
                                           covariant_mode=layer.covariant_mode,
                                           convex_covariants=layer.convex_covariants, **common)
    if isinstance(layer, VectorAttention):
        return gala.VectorAttention(layer.n_dim, score, value, **common)
    raise TypeError(f"no reference equivalent for {type(layer).__name__}")


class _ReferenceBlock(nn.Module):
    """v <- v + Dense(F)(act(Dense(2F)(gala.VectorAttention((r, v))))): ResidualAttentionBlock with the reference layer."""

    def __init__(self, block: ResidualAttentionBlock, gala):
        super().__init__()
        self.attention = reference_layer(block.attention, gala)
        self.expand = copy.deepcopy(block.expand)
        self.act = _reference_mlp(block.act)
        self.project = copy.deepcopy(block.project)

    def forward(self, positions: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        update = self.project(self.act(self.expand(self.attention((positions, values), mask=mask))))
        if mask is not None:
            update = update * mask.unsqueeze(-1).to(update.dtype)
        return values + update


class ReferenceCrystalClassifier(nn.Module):
    """CrystalClassifier (Listing 1) with reference layers: r_ij (B, K, 3), type_pairs (B, K, 2T), mask (B, K) -> logits (B, C)."""

    def __init__(self, model: CrystalClassifier, gala=None):
        super().__init__()
        gala = gala or load_reference_library()
        self.config = model.config
        self.embed = copy.deepcopy(model.embed)
        self.blocks = nn.ModuleList(_ReferenceBlock(block, gala) for block in model.blocks)
        self.reduce = reference_layer(model.reduce, gala)
        self.head = _reference_mlp(model.head)

    def forward(self, r_ij: torch.Tensor, type_pairs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        values = self.embed(type_pairs)
        for block in self.blocks:
            values = block(r_ij, values, mask)
        return self.head(self.reduce((r_ij, values), mask=mask))


def _pair_inputs(positions: torch.Tensor, type_onehot: torch.Tensor):
    # frozen copy of gaatool.models.forces.pair_inputs: r_ij (B, N, N, 3), [t_i - t_j, t_i + t_j] (B, N, N, 2T)
    r_ij = positions.unsqueeze(-3) - positions.unsqueeze(-2)
    t_i, t_j = torch.broadcast_tensors(type_onehot.unsqueeze(-2), type_onehot.unsqueeze(-3))
    return r_ij, torch.cat([t_i - t_j, t_i + t_j], dim=-1)


class ReferenceForceField(nn.Module):
    """ForceField (Listing 2) with reference layers; forces = -dE/dr by autograd.

    positions (B, N, 3) Å, types (B, N) int, mask (B, N) -> energy (B,), forces (B, N, 3).
    """

    def __init__(self, model: ForceField, gala=None):
        super().__init__()
        gala = gala or load_reference_library()
        self.config = model.config
        self.embed = copy.deepcopy(model.embed)
        self.blocks = nn.ModuleList(_ReferenceBlock(block, gala) for block in model.blocks)
        self.reduce = reference_layer(model.reduce, gala)
        self.head = _reference_mlp(model.head)
        self.register_buffer("atom_energy_shift", model.atom_energy_shift.detach().clone(), persistent=False)

    def atomic_energies(self, positions, types, mask=None, include_shift: bool = True) -> torch.Tensor:
        onehot = nn.functional.one_hot(types.long(), len(self.config.atomic_numbers)).to(positions.dtype)
        r_ij, type_pairs = _pair_inputs(positions, onehot)
        neighbor_mask = None
        if mask is not None:
            neighbor_mask = mask.unsqueeze(-2).expand(*mask.shape, mask.shape[-1])
        values = self.embed(type_pairs)
        for block in self.blocks:
            values = block(r_ij, values, neighbor_mask)
        atomic = self.head(self.reduce((r_ij, values), mask=neighbor_mask)).squeeze(-1) * self.config.energy_scale
        if include_shift:
            atomic = atomic + self.atom_energy_shift.to(atomic.dtype)[types.long()]
        if mask is not None:
            atomic = atomic * mask.to(atomic.dtype)
        return atomic

    def energy(self, positions, types, mask=None, include_shift: bool = True) -> torch.Tensor:
        return self.atomic_energies(positions, types, mask, include_shift).sum(-1)

    def forward(self, positions, types, mask=None, compute_forces: bool = True, create_graph: bool | None = None,
                include_shift: bool = True):
        if not compute_forces:
            return self.energy(positions, types, mask, include_shift), None
        with torch.enable_grad():
            if not positions.requires_grad:
                positions = positions.detach().requires_grad_(True)
            energy = self.energy(positions, types, mask, include_shift)
            if create_graph is None:
                create_graph = self.training
            (gradient,) = torch.autograd.grad(energy.sum(), positions, create_graph=create_graph)
        return energy, -gradient


def _pair_differences(vectors: torch.Tensor) -> torch.Tensor:
    # frozen copy of gaatool.models.backmap.pair_differences: (..., A, 3) -> (..., A, A, 3)
    return vectors.unsqueeze(-3) - vectors.unsqueeze(-2)


def _pair_label_values(labels: torch.Tensor) -> torch.Tensor:
    # frozen copy of gaatool.models.backmap.pair_label_values: (..., A, F) -> (..., A, A, 2F)
    c_a, c_b = torch.broadcast_tensors(labels.unsqueeze(-2), labels.unsqueeze(-3))
    return torch.cat([c_b - c_a, c_b + c_a], dim=-1)


class ReferenceBackmapper(nn.Module):
    """Backmapper (Listing 3) with reference layers.

    neighbor_positions (B, K, 3) Å, neighbor_types (B, K), residue_types (B,), atom_labels (B, A),
    neighbor_mask (B, K), atom_mask (B, A) -> atom positions (B, A, 3) Å.
    """

    def __init__(self, model: Backmapper, gala=None):
        super().__init__()
        gala = gala or load_reference_library()
        self.config = model.config
        self.embed_neighbor = copy.deepcopy(model.embed_neighbor)
        self.embed_center = copy.deepcopy(model.embed_center)
        self.embed_label = copy.deepcopy(model.embed_label)
        self.blocks = nn.ModuleList(_ReferenceBlock(block, gala) for block in model.blocks)
        self.translate = reference_layer(model.translate, gala)
        self.pair_labels = copy.deepcopy(model.pair_labels)
        self.refine = nn.ModuleList(reference_layer(layer, gala) for layer in model.refine)

    def forward(self, neighbor_positions, neighbor_types, residue_types, atom_labels, neighbor_mask=None,
                atom_mask=None) -> torch.Tensor:
        scale = self.config.length_scale
        r = neighbor_positions
        if neighbor_mask is not None:
            r = torch.where(neighbor_mask.unsqueeze(-1), r, torch.zeros_like(r))
        r = r / scale
        types = neighbor_types.long().clamp(0, self.config.n_residue_types - 1)
        values = self.embed_neighbor(types) + self.embed_center(residue_types.long()).unsqueeze(-2)
        if neighbor_mask is not None:
            values = values * neighbor_mask.unsqueeze(-1).to(values.dtype)
        for block in self.blocks:
            values = block(r, values, neighbor_mask)
        labels = self.embed_label(atom_labels.long().clamp(0, self.config.n_labels - 1))
        masks = None if neighbor_mask is None and atom_mask is None else (atom_mask, neighbor_mask)
        vectors = self.translate((labels, (r, values)), mask=masks)
        if atom_mask is not None:
            # the reference gives padded labels a uniform-attention vector; gaatool's layer gives zero
            vectors = vectors * atom_mask.unsqueeze(-1).to(vectors.dtype)
        pair_values = self.pair_labels(_pair_label_values(labels))
        pair_mask = None
        if atom_mask is not None:
            pair_mask = atom_mask.unsqueeze(-2).expand(*atom_mask.shape, atom_mask.shape[-1])
        for layer in self.refine:
            vectors = vectors + layer((_pair_differences(vectors), pair_values), mask=pair_mask)
        if atom_mask is not None:
            vectors = vectors * atom_mask.unsqueeze(-1).to(vectors.dtype)
        return vectors * scale


_MIRRORS = ((CrystalClassifier, ReferenceCrystalClassifier), (ForceField, ReferenceForceField),
            (Backmapper, ReferenceBackmapper))


def _reference_key(key: str) -> str:
    # gaatool keeps merge/join kernels in submodules; the reference keeps them as ParameterLists on the layer
    return key.replace("merge.kernels.", "merge_kernels.").replace("join.kernels.", "join_kernels.")


def copy_weights(model: nn.Module, reference: nn.Module) -> None:
    """Load every weight of a gaatool ``model`` into its reference mirror (same dtype and device as the mirror).

    Raises ValueError if the two do not have exactly the same parameters
    (names and shapes), i.e. if they are not the same architecture.
    """
    state = {_reference_key(key): value for key, value in model.state_dict().items()}
    target = reference.state_dict()
    missing, unexpected = sorted(set(target) - set(state)), sorted(set(state) - set(target))
    wrong = sorted(key for key in set(state) & set(target) if state[key].shape != target[key].shape)
    if missing or unexpected or wrong:
        raise ValueError(f"{type(model).__name__} and {type(reference).__name__} differ: reference-only "
                         f"{missing[:5]}, gaatool-only {unexpected[:5]}, shape mismatch {wrong[:5]}")
    reference.load_state_dict(state, strict=True)


def build_reference(model: nn.Module, gala=None) -> nn.Module:
    """The reference-library mirror of a gaatool CrystalClassifier, ForceField or Backmapper, with its weights.

    The mirror is on the model's device and dtype and in the model's
    train/eval mode.

    >>> from gaatool.models.crystal import CrystalClassifier
    >>> model = CrystalClassifier(CrystalClassifier.Config(n_dim=8))
    >>> parameter_count(build_reference(model)) == parameter_count(model)
    True
    """
    gala = gala or load_reference_library()
    for gaatool_cls, reference_cls in _MIRRORS:
        if isinstance(model, gaatool_cls):
            reference = reference_cls(model, gala)
            break
    else:
        raise TypeError(f"no reference mirror for {type(model).__name__}; known: "
                        f"{[cls.__name__ for cls, _ in _MIRRORS]}")
    parameter = next(model.parameters())
    reference = reference.to(device=parameter.device, dtype=parameter.dtype)
    copy_weights(model, reference)
    return reference.train(model.training)
