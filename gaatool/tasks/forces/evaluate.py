"""Evaluation of force fields: force MAE per component (paper Table 1), RMSE, energy MAE, cosine similarity."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...data.splits import SPLIT_NAMES
from ...errors import ConfigError
from ...io.xyz import ELEMENTS
from ...units import KCAL_PER_MOL_IN_MEV, in_kcal_per_mol
from ..plots import save_parity_plot
from .dataset import ForcesDataset, load_frames_or_dataset
from .md17 import LABEL_SETS, has_md17_labels, trained_labels
from .predict import ForceFieldPredictor, geometry_warnings

__all__ = ["ForcesEvaluation", "evaluate_forces", "force_metrics", "unit_warnings"]


@dataclass
class ForcesEvaluation:
    """Errors of a force field on one split of a dataset, in meV and meV/Å.

    Attributes
    ----------
    force_mae_mev_per_a
        Mean absolute error over every force component of every frame (paper Table 1).
    force_rmse_mev_per_a
        Root mean square error over the force components.
    force_cosine_similarity
        Mean over atoms of cos(F_pred, F_ref).
    energy_mae_mev, energy_rmse_mev
        Errors of the total energy per frame.
    energy_trained
        Whether the loss had an energy term. If not, only the energy offset was
        fitted (to the training energies), and the energy errors say how well
        the potential's shape matches, not that energies were learned.
    per_element_force_mae_mev_per_a
        Force MAE over the components of each element's atoms.
    """

    checkpoint: str
    dataset: str
    split: str
    molecule: str
    n_frames: int
    n_atoms: int
    force_mae_mev_per_a: float
    force_rmse_mev_per_a: float
    force_cosine_similarity: float
    energy_mae_mev: float
    energy_rmse_mev: float
    energy_trained: bool
    per_element_force_mae_mev_per_a: dict[str, float]
    parity_plot: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        result = {key: getattr(self, key) for key in self.__dataclass_fields__ if key != "extra"}
        result.update(self.extra)
        return result


def force_metrics(reference: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, RMSE (same unit as the input) and mean per-atom cosine similarity of forces (..., 3).

    >>> m = force_metrics(np.array([[1.0, 0, 0], [0, 2, 0]]), np.array([[1.0, 1, 0], [0, 2, 0]]))
    >>> round(m["mae"], 4), round(m["rmse"], 4), round(m["cosine"], 4)
    (0.1667, 0.4082, 0.8536)
    """
    error = predicted - reference
    norms = np.linalg.norm(reference, axis=-1) * np.linalg.norm(predicted, axis=-1)
    cosine = np.sum(reference * predicted, axis=-1) / np.maximum(norms, np.finfo(np.float64).tiny)
    return {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error**2))),
            "cosine": float(np.mean(cosine))}


#: Reference / predicted ratios of labels in other units than the model's kcal/mol and kcal/mol/Å (for warnings):
#: one over the unit in kcal/mol (:func:`gaatool.units.in_kcal_per_mol`).
_OTHER_UNITS = {
    "forces": {name: 1.0 / in_kcal_per_mol(name, forces=True) for name in ("eV/Å", "Hartree/bohr", "kJ/mol/Å",
                                                                           "meV/Å")},
    "energies": {name: 1.0 / in_kcal_per_mol(name) for name in ("eV", "Hartree", "kJ/mol", "meV")},
}


def unit_warnings(where: str, reference: dict[str, np.ndarray], predicted: dict[str, np.ndarray]) -> list[str]:
    """Warnings when the labels look like the model's predictions in another unit (``forces`` (..., 3) by their
    least-squares scale where the directions agree, ``energies`` by their ratio).

    >>> unit_warnings("f", {"forces": np.ones((2, 3)) * 0.0434}, {"forces": np.ones((2, 3))})[0][:60]
    'f: the reference forces are 0.0434 times the predicted ones '
    """
    warnings = []
    for name in ("forces", "energies"):
        ref, pred = reference.get(name), predicted.get(name)
        if ref is None or pred is None or not np.any(pred):
            continue
        ref, pred = np.asarray(ref, np.float64).ravel(), np.asarray(pred, np.float64).ravel()
        agree = float(ref @ pred) / max(float(np.linalg.norm(ref) * np.linalg.norm(pred)), np.finfo(np.float64).tiny)
        scale = float(ref @ pred) / float(pred @ pred)
        if agree < 0.9 or 0.5 <= scale <= 2.0:
            continue
        factors = _OTHER_UNITS[name]
        unit = min(factors, key=lambda u: abs(np.log(factors[u] / scale)))
        guess = f" (as {unit} would be)" if abs(np.log(factors[unit] / scale)) < 0.1 else ""
        warnings.append(f"{where}: the reference {name} are {scale:.3g} times the predicted ones{guess}; labels "
                        "must be in kcal/mol and kcal/mol/Å (MD17's units): convert them, or these errors are "
                        "meaningless")
    return warnings


def evaluate_forces(checkpoint: str | os.PathLike | ForceFieldPredictor, dataset: str | os.PathLike | ForcesDataset,
                    split: str = "test", device: str = "auto", batch_size: int = 64,
                    parity_png: str | os.PathLike | None = None, labels: str = "auto") -> ForcesEvaluation:
    """Evaluate a force field on ``split`` of a forces dataset, or on every frame of a file of frames with
    energies and forces (MD17 / rMD17 npz, sGDML or extended XYZ; see
    :func:`~.dataset.load_frames_or_dataset`); optionally write a force parity plot (PNG).

    ``labels`` (an rMD17 npz of frames): ``rmd17`` its own, ``md17`` the original MD17 labels it keeps,
    ``auto`` those the checkpoint was trained on where the file has them (:func:`~.md17.trained_labels`).

    Raises
    ------
    ConfigError
        Unknown split.
    InputFileError
        Damaged dataset, or atoms the model does not know.
    CheckpointError
        Damaged checkpoint, or one of another task.
    """
    if split not in SPLIT_NAMES:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_NAMES)}")
    predictor = checkpoint if isinstance(checkpoint, ForceFieldPredictor) else \
        ForceFieldPredictor.from_checkpoint(checkpoint, device=device, batch_size=batch_size)
    if labels not in ("auto", *LABEL_SETS):
        raise ConfigError(f"--labels must be auto, {' or '.join(LABEL_SETS)}, got {labels!r}")
    if labels == "auto":  # the model's labels where the file has them; else the file's own
        has_old = not isinstance(dataset, ForcesDataset) and has_md17_labels(dataset)
        labels = "md17" if trained_labels(predictor.metadata) == "md17" and has_old else "rmd17"
    data = dataset if isinstance(dataset, ForcesDataset) else load_frames_or_dataset(dataset, labels)
    where = str(data.path) if data.path is not None else data.name
    if data.metadata.get("frames_file") and split != "test":
        raise ConfigError(f"{where}: a file of frames, not a dataset of `gaatool data md17`: all its frames are "
                          "evaluated, as the test split (leave out --split)")
    part = data.splits[split]
    if part.n_frames == 0:
        raise ConfigError(f"{where}: the {split} split is empty; choose another split")
    energies, forces = predictor.predict(part.positions, data.atomic_numbers, where=f"{where} ({split})")
    metrics = force_metrics(part.forces, forces)
    energy_error = energies - part.energies
    per_element = {}
    for z in sorted({int(z) for z in data.atomic_numbers}):
        atoms = data.atomic_numbers == z
        per_element[ELEMENTS[z]] = float(np.mean(np.abs(forces[:, atoms] - part.forces[:, atoms]))) * KCAL_PER_MOL_IN_MEV
    meta = predictor.metadata
    result = ForcesEvaluation(
        checkpoint=str(meta.get("checkpoint", "<model>")), dataset=where, split=split, molecule=data.name,
        n_frames=part.n_frames, n_atoms=data.n_atoms,
        force_mae_mev_per_a=metrics["mae"] * KCAL_PER_MOL_IN_MEV,
        force_rmse_mev_per_a=metrics["rmse"] * KCAL_PER_MOL_IN_MEV,
        force_cosine_similarity=metrics["cosine"],
        energy_mae_mev=float(np.mean(np.abs(energy_error))) * KCAL_PER_MOL_IN_MEV,
        energy_rmse_mev=float(np.sqrt(np.mean(energy_error**2))) * KCAL_PER_MOL_IN_MEV,
        energy_trained=bool(meta.get("energy_trained", False)),
        per_element_force_mae_mev_per_a=per_element,
        extra={"model_molecule": meta.get("molecule"), "model_formula": meta.get("formula"), "formula": data.formula,
               "epoch": meta.get("epoch"),
               "labels": data.metadata.get("provenance", {}).get("labels"),
               "warnings": geometry_warnings(f"{where} ({split})", np.asarray(part.positions, np.float64),
                                              np.asarray(data.atomic_numbers), list(range(part.n_frames)))
               + unit_warnings(where, {"forces": part.forces, "energies": part.energies},
                               {"forces": forces, "energies": energies})},
    )
    if parity_png is not None:
        save_parity_plot(part.forces * KCAL_PER_MOL_IN_MEV, forces * KCAL_PER_MOL_IN_MEV, parity_png,
                         xlabel="reference force component (meV/Å)", ylabel="predicted force component (meV/Å)",
                         title=f"{Path(result.checkpoint).name} on {data.name} {split}: "
                               f"MAE {result.force_mae_mev_per_a:.3g} meV/Å")
        result.parity_plot = str(parity_png)
    return result
