"""Protein coarse-grain backmapping (paper, "Protein coarse-grain backmapping"; Listing 3).

* :mod:`.residues`: the fixed vocabulary of (residue, heavy atom) labels;
* :mod:`.coarse_grain`: one bead per residue, bead neighbourhoods, chain breaks;
* :mod:`.dataset`: PDB/mmCIF files (or RCSB ids) -> residue neighbourhoods and atom targets, split by entry;
* :mod:`.train`: loss, metric and the training task (GAA model or transformer baseline);
* :mod:`.evaluate`: RMSD (all, backbone, side chain, per residue), bond deviations, clashes;
* :mod:`.rebuild`: apply a checkpoint to CG structures and trajectories;
* :mod:`.relax`: relax predicted atoms to ideal covalent geometry, no clashes;
* :mod:`.covalent`: ideal covalent geometry (bonds, angles, chirality, planar peptides, disulfides);
* :mod:`.sterics`: what counts as a clash, and which atom pairs may clash.
"""
from .coarse_grain import BEAD_KINDS, bead_positions, chain_breaks, coarse_grain, neighborhoods
from .dataset import (
    PAPER_ENTRIES,
    TASK,
    BackmapDataset,
    BackmapDatasetConfig,
    build_backmap_dataset,
    fetch_entries,
)
from .evaluate import BackmapEvaluation, evaluate_backmap
from .rebuild import BackmapResult, backmap_file, backmap_structure, read_coarse_grained
from .relax import relax_structure
from .residues import LABELS, RESIDUE_ATOMS, RESIDUE_NAMES
from .train import BackmapModelOptions, BackmapTrainTask, train_backmap

__all__ = [
    "TASK",
    "PAPER_ENTRIES",
    "BEAD_KINDS",
    "LABELS",
    "RESIDUE_ATOMS",
    "RESIDUE_NAMES",
    "BackmapDataset",
    "BackmapDatasetConfig",
    "BackmapEvaluation",
    "BackmapModelOptions",
    "BackmapResult",
    "BackmapTrainTask",
    "backmap_file",
    "backmap_structure",
    "bead_positions",
    "build_backmap_dataset",
    "chain_breaks",
    "coarse_grain",
    "evaluate_backmap",
    "fetch_entries",
    "neighborhoods",
    "read_coarse_grained",
    "relax_structure",
    "train_backmap",
]
