"""Crystal structure identification (paper, "Crystal structure identification").

* :mod:`.prototypes`: the 8 AFLOW prototype cells and user unit cells (CIF, POSCAR, GSD);
* :mod:`.dataset`: noisy replicated crystals -> per-particle environments, saved as one file;
* :mod:`.steinhardt`: the spherical-harmonic baseline features;
* :mod:`.train`, :mod:`.evaluate`: training and scoring classifiers on such a dataset;
* :mod:`.identify`: labelling particles of simulation snapshots with a checkpoint
  (:class:`Identifier` for frames in memory, :func:`identify_file` for files).
"""
from .dataset import (
    TASK,
    CrystalDataset,
    CrystalDatasetConfig,
    CrystalSystem,
    build_crystal_dataset,
    environments,
    type_pair_encoding,
)
from .evaluate import CrystalEvaluation, evaluate_crystal
from .identify import FrameLabels, Identifier, IdentifyResult, identify_file
from .prototypes import PROTOTYPE_NAMES, UnitCell, load_unit_cell, prototype_cell, prototype_cells
from .steinhardt import steinhardt_feature_names, steinhardt_features, steinhardt_features_from_bonds
from .train import CrystalModelOptions, train_crystal

__all__ = [
    "TASK",
    "CrystalDataset",
    "CrystalDatasetConfig",
    "CrystalSystem",
    "build_crystal_dataset",
    "environments",
    "type_pair_encoding",
    "PROTOTYPE_NAMES",
    "UnitCell",
    "load_unit_cell",
    "prototype_cell",
    "prototype_cells",
    "steinhardt_feature_names",
    "steinhardt_features",
    "steinhardt_features_from_bonds",
    "CrystalModelOptions",
    "train_crystal",
    "CrystalEvaluation",
    "evaluate_crystal",
    "FrameLabels",
    "Identifier",
    "IdentifyResult",
    "identify_file",
]
