"""Force-field task: per-atom energies, F = -dE/dr, trained on MD17 / rMD17.

:mod:`~gaatool.tasks.forces.md17` holds the data layer (download, verification,
readers, splits), :mod:`~gaatool.tasks.forces.dataset` builds train/val/test
datasets, :mod:`~gaatool.tasks.forces.train`, :mod:`~gaatool.tasks.forces.evaluate`
and :mod:`~gaatool.tasks.forces.predict` train, score and apply models, and
:mod:`~gaatool.tasks.forces.calculator` is an ASE calculator (needs ``ase``;
``GaaCalculator`` is imported on first use).
"""
from .dataset import ForcesDataset, ForcesSplit, build_md17_dataset, load_forces_dataset
from .evaluate import ForcesEvaluation, evaluate_forces, force_metrics
from .md17 import (
    MOLECULES,
    MolecularData,
    load_md17,
    paper_split,
    published_split,
    read_molecular_file,
    sgdml_fingerprint,
)
from .predict import ForceFieldPredictor, ForcesPrediction, default_checkpoint, predict_file, read_structures
from .train import ForcesModelOptions, ForcesTrainTask, fit_energy_normalisation, forces_train_config, train_forces

__all__ = [
    "MOLECULES",
    "MolecularData",
    "load_md17",
    "paper_split",
    "published_split",
    "read_molecular_file",
    "sgdml_fingerprint",
    "ForcesDataset",
    "ForcesSplit",
    "build_md17_dataset",
    "load_forces_dataset",
    "ForcesModelOptions",
    "ForcesTrainTask",
    "fit_energy_normalisation",
    "forces_train_config",
    "train_forces",
    "ForcesEvaluation",
    "evaluate_forces",
    "force_metrics",
    "ForceFieldPredictor",
    "ForcesPrediction",
    "default_checkpoint",
    "predict_file",
    "read_structures",
    "GaaCalculator",
]


def __getattr__(name: str):
    # GaaCalculator subclasses ase's Calculator; ase is optional, so it is imported on first use.
    if name == "GaaCalculator":
        from .calculator import GaaCalculator

        return GaaCalculator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
