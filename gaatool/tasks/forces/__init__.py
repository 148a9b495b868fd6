"""Force-field task: per-atom energies, F = -dE/dr, trained on MD17 / rMD17.

:mod:`gaatool.tasks.forces.md17` holds the data layer (download, verification,
readers, splits).
"""
from .md17 import (
    MOLECULES,
    MolecularData,
    load_md17,
    paper_split,
    published_split,
    read_molecular_file,
    sgdml_fingerprint,
)

__all__ = [
    "MOLECULES",
    "MolecularData",
    "load_md17",
    "paper_split",
    "published_split",
    "read_molecular_file",
    "sgdml_fingerprint",
]
