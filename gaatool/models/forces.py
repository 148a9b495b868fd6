"""Conservative force field (paper Listing 2): per-atom energies, E = sum, F = -dE/dr."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

from ..nn import Geometry
from ..nn.chunks import piece_randomness, run_in_pieces
from ..nn.compiled import CompiledEnergyForces
from ..nn.frozen import frozen_parameters
from ..nn.threads import serial_when_small
from .blocks import AttentionSettings, ResidualAttentionBlock, make_vector_attention
from ..nn.mlp import activation
from .registry import register

__all__ = ["ForceField", "pair_inputs"]

def pair_inputs(positions: torch.Tensor, type_onehot: torch.Tensor):
    """Atom-centred clouds: r_ij = r_j - r_i (B, N, N, 3) and [t_i - t_j, t_i + t_j] (B, N, N, 2T)."""
    r_ij = positions.unsqueeze(-3) - positions.unsqueeze(-2)
    t_i, t_j = type_onehot.unsqueeze(-2), type_onehot.unsqueeze(-3)
    t_i, t_j = torch.broadcast_tensors(t_i, t_j)
    return r_ij, torch.cat([t_i - t_j, t_i + t_j], dim=-1)


@register
class ForceField(nn.Module):
    """Energy and forces of molecules.

    positions (B, N, 3) in Å, types (B, N) int indices into ``config.atomic_numbers``,
    mask (B, N) bool -> energy (B,) and forces (B, N, 3) in ``config.energy_unit``
    (per Å). Energies are invariant to rotation, translation and permutation of
    like atoms; forces rotate with the molecule and are exactly conservative.
    """

    name = "forces-gaa"

    @dataclass
    class Config:
        atomic_numbers: list = field(default_factory=lambda: [1, 6, 8])
        n_dim: int = 32
        n_blocks: int = 6
        activation: str = "swish"
        attention: dict = field(default_factory=lambda: {"merge": "concat", "join": "concat", "score_activation": "swish"})
        energy_scale: float = 1.0      # model output unit -> energy_unit
        atom_energy_shift: list = field(default_factory=list)  # per type, in energy_unit
        energy_unit: str = "kcal/mol"
        length_unit: str = "A"

    def __init__(self, config: "ForceField.Config"):
        super().__init__()
        self.config = config
        settings = AttentionSettings(**config.attention)
        d, n_types = config.n_dim, len(config.atomic_numbers)
        self.embed = nn.Linear(2 * n_types, d)
        self.blocks = nn.ModuleList(ResidualAttentionBlock(d, settings, config.activation) for _ in range(config.n_blocks))
        self.reduce = make_vector_attention(d, settings, reduce=True)
        self.head = nn.Sequential(nn.Linear(d, 2 * d), activation(config.activation), nn.Linear(2 * d, 1, bias=False))
        shift = config.atom_energy_shift or [0.0] * n_types
        self.register_buffer("atom_energy_shift", torch.tensor(shift, dtype=torch.float64), persistent=False)

    def atomic_energies(self, positions: torch.Tensor, types: torch.Tensor, mask: torch.Tensor | None = None,
                        include_shift: bool = True):
        """Per-atom energies (B, N) in energy_unit (zero on padded atoms).

        ``include_shift=False`` leaves out the constant per-type shift: molecular
        energies are ~1e5 kcal/mol, so in float32 the shifted sum keeps only
        ~0.01 kcal/mol; callers that need exact energies add the shift in float64.
        """
        if mask is not None:  # whatever padded atoms hold (NaN, a type -1) must not reach a real atom's energy
            positions = torch.where(mask.unsqueeze(-1), positions, positions.new_zeros(()))
            types = torch.where(mask, types, types.new_zeros(()))
        onehot = nn.functional.one_hot(types.long(), len(self.config.atomic_numbers)).to(positions.dtype)
        r_ij, type_pairs = pair_inputs(positions, onehot)
        neighbor_mask = None
        if mask is not None:
            neighbor_mask = mask.unsqueeze(-2).expand(*mask.shape, mask.shape[-1])
        geometry = Geometry(r_ij, neighbor_mask)  # invariants computed once, shared by every layer
        values = self.embed(type_pairs)
        for block in self.blocks:
            values = block(geometry, values, neighbor_mask)
        atomic = self.head(self.reduce(geometry, values, neighbor_mask)).squeeze(-1) * self.config.energy_scale
        if include_shift:
            atomic = atomic + self.atom_energy_shift.to(atomic.dtype)[types.long()]
        if mask is not None:
            atomic = atomic * mask.to(atomic.dtype)
        return atomic

    def energy(self, positions, types, mask=None, include_shift: bool = True) -> torch.Tensor:
        """Total energy (B,); see :meth:`atomic_energies` for ``include_shift``."""
        return self.atomic_energies(positions, types, mask, include_shift).sum(-1)

    def compiled_energy_forces(self) -> CompiledEnergyForces:
        """(positions, types) -> (energy without the per-type shift, forces) through torch.compile,
        for inference; see :class:`~gaatool.nn.compiled.CompiledEnergyForces`."""
        return CompiledEnergyForces(lambda positions, types: self.energy(positions, types, include_shift=False), self)

    def forward(self, positions: torch.Tensor, types: torch.Tensor, mask: torch.Tensor | None = None,
                compute_forces: bool = True, create_graph: bool | None = None, include_shift: bool = True):
        """Returns (energy (B,), forces (B, N, 3) or None). Forces = -dE/dr by autograd.

        The per-type energy shift is constant, so it never changes the forces.
        """
        if create_graph is None:
            create_graph = self.training
        tuples_per_molecule = positions.shape[-2] ** 3  # N atom-centred clouds of N^2 pairs
        if create_graph:  # training differentiates the forces again: one piece
            with serial_when_small(positions.shape[:-2].numel() * tuples_per_molecule, positions.device):
                return self._energy_forces(positions, types, mask, compute_forces, True, include_shift)

        # inference: molecules are independent; cache-sized pieces run faster and bound the memory
        def piece(positions, types, mask):
            return self._energy_forces(positions, types, mask, compute_forces, False, include_shift)
        # Forces without create_graph free their graph, so nothing can reach the parameters'
        # gradients afterwards: leave the parameters out of autograd (energies alone keep them).
        frozen = frozen_parameters(self._parameter_list()) if compute_forces else nullcontext()
        with frozen:
            return run_in_pieces(piece, (positions, types, mask), tuples_per_molecule, **piece_randomness(self))

    def _parameter_list(self) -> list[nn.Parameter]:
        """This model's parameters, listed once instead of walking the module tree on every call. A parameter replaced later (not copied into) would only stay out of
        the freeze, which costs time, never a wrong force."""
        listed = self.__dict__.get("_listed_parameters")
        if listed is None:
            listed = self.__dict__["_listed_parameters"] = list(self.parameters())
        return listed

    def _energy_forces(self, positions, types, mask, compute_forces: bool, create_graph: bool, include_shift: bool):
        if not compute_forces:
            return self.energy(positions, types, mask, include_shift), None
        with torch.enable_grad():
            if not positions.requires_grad:
                positions = positions.detach().requires_grad_(True)
            energy = self.energy(positions, types, mask, include_shift)
            (gradient,) = torch.autograd.grad(energy.sum(), positions, create_graph=create_graph)
        return energy, -gradient
