"""Crystal structure identification (paper, "Crystal structure identification").

* :mod:`.prototypes`: the 8 AFLOW prototype cells and user unit cells (CIF, POSCAR, GSD);
* :mod:`.dataset`: noisy replicated crystals -> per-particle environments, saved as one file;
* :mod:`.steinhardt`: the spherical-harmonic baseline features.
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
from .prototypes import PROTOTYPE_NAMES, UnitCell, load_unit_cell, prototype_cell, prototype_cells
from .steinhardt import steinhardt_feature_names, steinhardt_features, steinhardt_features_from_bonds

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
]
