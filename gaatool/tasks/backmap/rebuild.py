"""Apply a backmapping checkpoint: coarse-grained structures or trajectories -> heavy-atom structures.

Input: one bead per residue (any bead atom name; the residue names give the
identities), any number of chains and models, as PDB/mmCIF (``-`` reads
stdin), or a DCD/XTC trajectory with a PDB/mmCIF topology of its beads.
Residues that are not standard amino acids are skipped with a warning that
names them; chain breaks (residue-number gaps, beads too far apart:
:func:`.coarse_grain.chain_breaks`) are reported, and the residues around them
simply get no peptide-bond partner. Every residue gets the heavy atoms of its
type, plus OXT at the last residue of each chain. Disulfides that the input
records (SSBOND, ``struct_conn``) or implies (cysteines named CYX:
:func:`.coarse_grain.bead_disulfides`) are bonded in the relaxation.

Output: PDB or mmCIF (by extension, or ``fmt``) with standard atom names and
elements, the input's chain ids and residue numbers, one model per input
model or frame, the disulfides (SSBOND, ``struct_conn``) and, in PDB, a TER
record at each chain break; written only once everything is computed.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import numpy as np
import torch

from ...checkpoint import load_model
from ...errors import CheckpointError, ConfigError, InputFileError
from ...io.atomic import check_output_path
from ...io.structure import MD_RESIDUE_ALIASES, ProteinStructure, output_format, read_structure, write_structure
from ...io.trajectory import is_trajectory, read_trajectory
from ...train.device import resolve_device
from .coarse_grain import (CA_MEDIAN_A, bead_disulfides, bead_spacing, chain_breaks, chain_segments,
                           check_coarse_grained, listed, max_bonded_distance, named_ca, neighborhoods,
                           residue_types_of, sequence_offsets, spaced_like_ca_trace)
from .residues import MAX_ATOMS, atom_element, residue_labels
from .train import check_vocabulary, predict_atoms

__all__ = ["PRETRAINED_NAME", "PRETRAINED_CA_NAME", "pretrained_checkpoint", "input_bead_kind", "BackmapResult",
           "read_coarse_grained", "backmap_structure", "backmap_file"]

#: File name of the pretrained model (see :mod:`gaatool.tasks.pretrained`).
PRETRAINED_NAME = "backmap.safetensors"
#: The pretrained model for CA beads, chosen for inputs that are C-alpha traces (:func:`input_bead_kind`).
PRETRAINED_CA_NAME = "backmap-ca.safetensors"


def pretrained_checkpoint(bead: str = "centroid") -> Path:
    """The pretrained backmapping checkpoint for ``bead`` (``centroid`` or ``ca``), from
    ``$GAATOOL_PRETRAINED``, then ``gaatool/pretrained``.

    Raises CheckpointError when none is installed.
    """
    from ..pretrained import pretrained_path

    return pretrained_path(PRETRAINED_CA_NAME if bead == "ca" else PRETRAINED_NAME)


def input_bead_kind(beads: ProteinStructure) -> str:
    """``ca`` for a C-alpha trace, else ``centroid`` (centroid and centre-of-mass beads sit alike).

    Told by the spacing of consecutive beads (:func:`~.coarse_grain.spaced_like_ca_trace`), or by
    the atom names (all CA) when the chains have fewer than 8 peptide-bonded pairs.
    """
    like = spaced_like_ca_trace(beads)
    if like is None:
        return "ca" if named_ca(beads) else "centroid"
    return "ca" if like else "centroid"


def _bead_notes(beads: ProteinStructure) -> list[str]:
    """A note when the bead names and their spacing disagree (the spacing decides; with too few consecutive
    beads for that, the names do, and the note says when those few are spaced unlike C-alpha atoms)."""
    like = spaced_like_ca_trace(beads)
    if like is None and named_ca(beads):
        few = bead_spacing(beads, min_pairs=1)
        if few is not None and few[0] > CA_MEDIAN_A:
            return [f"{beads.source}: the beads are named CA, so taken for a C-alpha trace (too few consecutive "
                    f"beads for their spacing to decide), but consecutive ones are {few[0]:.2f} Å "
                    "apart, not 3.8 Å like C-alpha atoms; centroid beads named otherwise (e.g. BB) get the "
                    "centroid model"]
        return []
    if like is None or like == named_ca(beads):
        return []
    median, spread = bead_spacing(beads)
    what = "C-alpha atoms" if like else "residue centroids, not C-alpha atoms"
    named = "are not all named CA" if like else "are named CA"
    return [f"{beads.source}: the beads {named} but are spaced like {what} (consecutive beads {median:.2f} Å apart, "
            f"interquartile range {spread:.2f} Å); taken for {'a C-alpha trace' if like else 'centroid beads'}"]


def _bead_warning(beads: ProteinStructure, model_bead: str, checkpoint: Path) -> list[str]:
    kind = input_bead_kind(beads)
    if (kind == "ca") == (model_bead == "ca"):
        return []
    if kind == "ca":
        return [f"{beads.source}: the beads are C-alpha atoms but {checkpoint.name} was trained on {model_bead} beads, "
                "so the atoms will sit off; use a model trained with --bead ca"]
    return [f"{beads.source}: the beads are not C-alpha atoms but {checkpoint.name} was trained on C-alpha beads, "
            "so the atoms will sit off; use a model trained with --bead centroid"]


@dataclass
class BackmapResult:
    """What :func:`backmap_file` produced."""

    structure: ProteinStructure
    checkpoint: str
    output: str | None
    warnings: list[str] = field(default_factory=list)
    skipped: dict = field(default_factory=dict)
    relax: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.structure.source, "output": self.output, "checkpoint": self.checkpoint,
                "frames": self.structure.n_models, "chains": len(self.structure.chains()),
                "residues": self.structure.n_residues, "atoms": self.structure.n_atoms,
                "relax": self.relax, "warnings": self.warnings, "skipped": self.skipped}


def _reading_notes(structure: ProteinStructure) -> list[str]:
    notes = []
    if structure.renamed:
        parts = ", ".join(f"{what} x{count}" for what, count in sorted(structure.renamed.items()))
        notes.append(f"{structure.source}: read {parts} (force-field names of standard residues)")
    notes += [f"{structure.source}: {note}" for note in structure.notes]
    skipped = {k: v for k, v in structure.skipped.items() if k != "hydrogen atoms"}
    if skipped:
        parts = ", ".join(f"{reason} x{count}" for reason, count in sorted(skipped.items()))
        notes.append(f"{structure.source}: skipped {parts}")
    return notes


def read_coarse_grained(path: str | os.PathLike, top: str | os.PathLike | None = None, frames: slice | None = None,
                        stdin: BinaryIO | None = None) -> tuple[ProteinStructure, list[str]]:
    """The beads (one atom per residue, F frames) of a CG structure or trajectory, and warnings. Their
    ``disulfides`` are those the file records or implies (:func:`.coarse_grain.bead_disulfides`).

    Raises
    ------
    InputFileError
        Unreadable input, a residue with more than one atom, no standard
        residues left, a trajectory that does not fit its topology.
    ConfigError
        A trajectory without ``top``, or ``top`` given for a structure file.
    """
    if is_trajectory(path):
        if top is None:
            raise ConfigError(f"{path}: a trajectory needs --top, the PDB/mmCIF file of its beads")
        topology = read_structure(top, heavy_only=False, residue_aliases=MD_RESIDUE_ALIASES)
        _check_beads(topology)
        xyz = read_trajectory(path, n_atoms=topology.file_atom_count, frames=frames)
        structure = topology.with_positions(xyz[:, topology.file_atom_index])
        structure.source = str(path)
    else:
        if top is not None:
            raise ConfigError(f"--top is for .dcd/.xtc trajectories; {path} holds its own coordinates")
        structure = read_structure(path, all_models=True, heavy_only=False, stdin=stdin,
                                   residue_aliases=MD_RESIDUE_ALIASES)
        _check_beads(structure)
        if frames is not None:
            structure = structure.with_positions(structure.positions[frames])
            if structure.n_models == 0:
                raise ConfigError(f"{path}: the frame selection is empty")
    if not np.all(np.isfinite(structure.positions)):
        raise InputFileError(f"{structure.source}: bead coordinates are not finite")
    warnings = _reading_notes(structure)
    breaks = chain_breaks(structure)
    if breaks:
        shown = listed([f"{structure.residue_label(a)}-{structure.residue_label(b)}" for a, b in breaks])
        warnings.append(f"{structure.source}: {len(breaks)} chain break(s) (residue-number gaps, or beads more than "
                        f"{max_bonded_distance(structure):.1f} Å apart) at {shown}; "
                        "no peptide bond is implied across them")
    disulfides, notes = bead_disulfides(structure)
    return replace(structure, disulfides=disulfides), warnings + notes


def _check_beads(structure: ProteinStructure) -> None:
    if structure.n_residues == 0:
        skipped = ", ".join(sorted(structure.skipped)) or "nothing readable"
        raise InputFileError(f"{structure.source}: no standard amino-acid residues to backmap (found: {skipped})")
    check_coarse_grained(structure)


def backmap_structure(beads: ProteinStructure, model: torch.nn.Module, neighbors: int,
                      device: str | torch.device = "cpu", batch_size: int = 1024,
                      relax: bool = True) -> ProteinStructure:
    """Heavy atoms (F frames) of every residue of a bead structure, predicted by ``model``.

    ``beads`` has one atom per residue; ``neighbors`` must be the K the model
    was trained with. Memory is bounded by ``batch_size`` residues per step.
    ``relax``: relax every frame to ideal covalent geometry, clashes pushed apart (:func:`.relax.relax_structure`),
    the cysteines of ``beads.disulfides`` bonded. The atoms record the beads' chain breaks and disulfides,
    which the relaxation and the writer use (TER and SSBOND records).
    """
    check_coarse_grained(beads)
    types = residue_types_of(beads)
    last = np.zeros(beads.n_residues, dtype=bool)
    for _, residues in beads.chains():
        last[residues[-1]] = True
    names, labels = [], np.zeros((beads.n_residues, MAX_ATOMS), dtype=np.int64)
    mask = np.zeros((beads.n_residues, MAX_ATOMS), dtype=bool)
    for r in range(beads.n_residues):
        atom_names, atom_labels = residue_labels(str(beads.residue_names[r]), terminal=bool(last[r]))
        names.append(atom_names)
        labels[r, :len(atom_labels)] = atom_labels
        mask[r, :len(atom_labels)] = True
    device = torch.device(device)
    dtype = next(model.parameters()).dtype
    frames, segments = [], chain_segments(beads)  # the chain layout is the same in every frame
    for f in range(beads.n_models):
        positions = beads.positions[f]
        env = neighborhoods(positions, types, neighbors)
        inputs = {
            "neighbor_positions": torch.as_tensor(env["neighbor_positions"], dtype=dtype),
            "neighbor_types": torch.as_tensor(env["neighbor_types"]),
            "neighbor_mask": torch.as_tensor(env["neighbor_mask"]),
            "neighbor_offsets": torch.as_tensor(sequence_offsets(beads, env["neighbor_index"], segments)),
            "residue_types": torch.as_tensor(types),
            "atom_labels": torch.as_tensor(labels),
            "atom_mask": torch.as_tensor(mask),
        }
        # residues of similar size share a batch, so little padding goes through the model
        order = torch.argsort(inputs["atom_mask"].sum(-1), stable=True)
        relative = np.zeros((beads.n_residues, MAX_ATOMS, 3))
        with torch.no_grad():
            for start in range(0, beads.n_residues, batch_size):
                rows = order[start:start + batch_size]
                batch = {k: v[rows].to(device) for k, v in inputs.items()}
                relative[rows.numpy()] = predict_atoms(model, batch).double().cpu().numpy()
        frames.append((relative + positions[:, None])[mask])
    atom_names = [n for group in names for n in group]
    atoms = ProteinStructure(
        residue_names=beads.residue_names, residue_numbers=beads.residue_numbers,
        insertion_codes=beads.insertion_codes, chain_ids=beads.chain_ids, atom_names=atom_names,
        elements=[atom_element(n) for n in atom_names],
        atom_residues=np.repeat(np.arange(beads.n_residues), mask.sum(1)), positions=np.stack(frames),
        entry_id=beads.entry_id, source=beads.source, skipped=dict(beads.skipped), disulfides=beads.disulfides,
        breaks=chain_breaks(beads))
    if relax:
        from .relax import relax_structure

        atoms = relax_structure(atoms)
    return atoms


def backmap_file(path: str | os.PathLike, out: str | os.PathLike | None, checkpoint: str | os.PathLike | None = None,
                 top: str | os.PathLike | None = None, frames: slice | None = None, fmt: str | None = None,
                 device: str = "auto", batch_size: int = 1024, stdin: BinaryIO | None = None,
                 stdout: TextIO | None = None, relax: bool = True) -> BackmapResult:
    """Backmap a CG structure or trajectory file and write the heavy-atom structure to ``out``.

    Parameters
    ----------
    path : path-like or ``"-"``
        PDB/mmCIF (gzipped or not; ``-`` = stdin) or ``.dcd``/``.xtc`` with ``top``.
    out : path-like, ``"-"`` or None
        ``.pdb``/``.cif`` (optionally ``.gz``), ``-`` for stdout, None to write nothing.
    checkpoint : path-like, optional
        A ``backmap`` checkpoint; default :func:`pretrained_checkpoint`.
    fmt : str, optional
        ``pdb`` or ``cif``; default from ``out``'s extension (stdout: pdb).
    relax : bool
        Relax the network's atoms to ideal covalent geometry and push clashing atoms apart (see :mod:`.relax`).
    """
    fmt = output_format(out, fmt)  # a bad output name fails before any work
    check_output_path(out, inputs=(path, top))
    beads, warnings = read_coarse_grained(path, top=top, frames=frames, stdin=stdin)
    if checkpoint is None:  # a C-alpha trace gets the model trained on CA beads, where one is installed
        try:
            checkpoint = pretrained_checkpoint(input_bead_kind(beads))
        except CheckpointError:
            checkpoint = pretrained_checkpoint()
    checkpoint = Path(checkpoint)
    model, metadata = load_model(checkpoint, task="backmap")
    check_vocabulary(metadata, str(checkpoint))
    warnings += _bead_notes(beads) + _bead_warning(beads, str(metadata.get("bead", "centroid")), checkpoint)
    target = resolve_device(device)
    atoms = backmap_structure(beads, model.to(target), int(metadata.get("neighbors", 16)), target, batch_size,
                              relax=relax)
    if out is not None:
        warnings += write_structure(atoms, out, fmt=fmt, stdout=stdout)
    skipped = Counter(beads.skipped)
    return BackmapResult(structure=atoms, checkpoint=str(checkpoint), output=None if out is None else str(out),
                         warnings=warnings, skipped=dict(skipped), relax=bool(relax))
