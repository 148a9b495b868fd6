"""Training of conservative force fields (paper Listing 2) on a forces dataset.

Normalisation, fitted on the training split and stored in the model config so
that inference needs nothing else:

* ``atom_energy_shift``: per-type energies from a least-squares fit of the
  training energies against the atom counts (for one molecule: the mean
  energy divided by the number of atoms, the same for every type);
* ``energy_scale``: the standard deviation of the training force components,
  so the network's outputs are of order one.

Loss (per batch): ``mean(((F_pred - F_ref) / s)^2)`` over force components,
plus, if ``energy_weight > 0``, ``energy_weight * mean(((E_pred - E_ref) / (n s))^2)``
over frames (n atoms, s = energy_scale). The paper trains on forces only
(``energy_weight = 0``). Forces-only training leaves the energy offset
undetermined, so after training the offset of ``best.safetensors`` is refitted
to the mean training residual (``energy_offset_refit`` in its metadata).

Metrics: ``force_mae_mev_per_a`` (and ``energy_mae_mev`` with an energy term).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...checkpoint import load_checkpoint, save_checkpoint
from ...errors import ConfigError
from ...io.xyz import ELEMENTS
from ...models import registry
from ...models.blocks import AttentionSettings, make_vector_attention
from ...models.forces import ForceField
from ...train.array_task import ArrayTask
from ...train.engine import BEST_NAME, FitResult, TrainConfig, TrainingDiverged, TrainingInterrupted, fit
from ...units import KCAL_PER_MOL_IN_MEV
from .dataset import UNITS, ForcesDataset, ForcesSplit, load_forces_dataset

__all__ = [
    "ForcesModelOptions",
    "ForcesTrainTask",
    "forces_train_config",
    "fit_energy_normalisation",
    "train_forces",
    "split_frames",
    "MIN_PIECE_TUPLES",
    "DATASET_NAME",
]

#: Name of the dataset copy that ``train_forces`` writes next to the checkpoints when given one in memory.
DATASET_NAME = "dataset.npz"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class ForcesModelOptions:
    """Architecture and loss choices; defaults are the paper's (Listing 2, forces-only loss).

    Attributes
    ----------
    n_dim : int
        Working dimension (32).
    n_blocks : int
        Attention blocks (6).
    energy_weight : float
        Weight of the energy term of the loss (0: forces only).
    dtype : str
        ``float32`` or ``float64`` for the weights and inputs.
    attention : dict
        Overrides of the attention settings (see :class:`gaatool.models.blocks.AttentionSettings`).
    """

    n_dim: int = 32
    n_blocks: int = 6
    energy_weight: float = 0.0
    dtype: str = "float32"
    # "settings": the keys and types a --config may give (gaatool.cli.options checks them)
    attention: dict = field(default_factory=dict, metadata={"settings": AttentionSettings})

    def __post_init__(self) -> None:
        # 0 blocks trained the final reduction alone, a model nobody asks for on purpose
        for name in ("n_dim", "n_blocks"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (self.energy_weight >= 0 and np.isfinite(self.energy_weight)):
            raise ConfigError(f"energy_weight must be a number >= 0 (got {self.energy_weight})")
        if self.dtype not in _DTYPES:
            raise ConfigError(f"dtype {self.dtype!r} is not float32 or float64")
        known = {f.name for f in fields(AttentionSettings)}
        if not isinstance(self.attention, dict) or set(self.attention) - known:
            raise ConfigError(f"attention must be an object of the settings {sorted(known)} (got {self.attention!r})")
        try:  # an attention layer of these settings: bad choices fail now, not in the first epoch
            make_vector_attention(4, AttentionSettings(**{**ForceField.Config().attention, **self.attention}), True)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"attention settings {self.attention}: {err}") from None


def forces_train_config(**overrides: Any) -> TrainConfig:
    """The paper's schedule for force fields (after Batzner et al.): lr x0.8 after 1000 epochs
    without validation improvement, stop after 2500, at most 50000 epochs; ``overrides`` win.

    >>> forces_train_config(epochs=3).lr_patience
    1000
    """
    values: dict[str, Any] = {"epochs": 50000, "lr_factor": 0.8, "lr_patience": 1000, "stop_patience": 2500}
    values.update(overrides)
    return TrainConfig.from_dict(values)


def fit_energy_normalisation(types: np.ndarray, n_types: int, energies: np.ndarray,
                             forces: np.ndarray) -> tuple[list[float], float]:
    """(per-type energy shift (T,) in kcal/mol, energy_scale in kcal/mol/Å) from training labels.

    types (M, n) int type indices, energies (M,) kcal/mol, forces (M, n, 3) kcal/mol/Å.

    >>> types = np.array([[0, 1], [0, 1]])
    >>> shift, scale = fit_energy_normalisation(types, 2, np.array([-3.0, -5.0]), np.ones((2, 2, 3)))
    >>> round(sum(shift), 6), scale
    (-4.0, 1.0)
    """
    counts = (np.asarray(types)[..., None] == np.arange(n_types)).sum(axis=-2).astype(np.float64)  # (M, T)
    energies = np.asarray(energies, dtype=np.float64)
    # The mean energy per atom first, then the minimum-norm least-squares correction per type: with one
    # composition (one molecule) the correction is zero and every atom carries the same shift.
    per_atom = energies.sum() / counts.sum()
    correction, *_ = np.linalg.lstsq(counts, energies - counts.sum(axis=1) * per_atom, rcond=None)
    shift = per_atom + correction
    scale = float(np.std(forces))
    if not scale > 0:
        scale = 1.0  # all-zero training forces: keep the network's own scale
    return [float(s) for s in shift], scale


#: Smallest piece of a training batch worth a CPU core of its own: frames x atoms^3 rank-2 tuples.
#: Ethanol (729 tuples per frame) gained from batch 8 on (2 pieces of 4 frames), 2 cores.
MIN_PIECE_TUPLES = 2048


def split_frames(batch: dict[str, torch.Tensor], parts: int) -> list[tuple[dict[str, torch.Tensor], float]] | None:
    """A batch of frames of one molecule in up to ``parts`` near-equal pieces, weighted by their share of frames.

    The force loss is a mean over frames, atoms and components (and the
    energy term over frames), so the weighted piece losses sum to the batch's.
    None when the pieces would be too small to pay (:data:`MIN_PIECE_TUPLES`).

    >>> batch = {"positions": torch.zeros(10, 9, 3), "types": torch.zeros(10, 9, dtype=torch.long)}
    >>> [(len(piece["positions"]), weight) for piece, weight in split_frames(batch, 2)]
    [(5, 0.5), (5, 0.5)]
    >>> split_frames({"positions": torch.zeros(2, 9, 3)}, 2) is None
    True
    """
    frames, atoms = batch["positions"].shape[:2]
    parts = min(int(parts), frames, frames * atoms ** 3 // MIN_PIECE_TUPLES)
    if parts < 2:
        return None
    bounds = [round(k * frames / parts) for k in range(parts + 1)]
    return [({key: value[start:stop] for key, value in batch.items()}, (stop - start) / frames)
            for start, stop in zip(bounds[:-1], bounds[1:])]


class ForcesTrainTask(ArrayTask):
    """TrainTask for force fields: force MSE (+ energy MSE), force MAE in meV/Å."""

    task_name = "forces"
    # what the weights' inputs and outputs mean: --init-from needs the same values
    compatibility_keys = ("atomic_numbers", "units")
    # model config fields derived from the training data: a run continued from a checkpoint keeps its values
    data_config_keys = ("energy_scale", "atom_energy_shift")
    # the loss (energy_weight) and dtype as well as the architecture: --resume needs the same values
    resume_keys = ("model_options",)

    def __init__(self, dataset: ForcesDataset, options: ForcesModelOptions, batch_size: int):
        self.dataset, self.options = dataset, options
        for part in ("train", "val"):
            if dataset.splits[part].n_frames == 0:
                raise ConfigError(f"{dataset.path or dataset.name}: the {part} split is empty; "
                                  f"training needs train and validation frames (--n-{part})")
        self.type_map = sorted({int(z) for z in dataset.atomic_numbers})
        self.types = np.array([self.type_map.index(int(z)) for z in dataset.atomic_numbers], dtype=np.int64)
        train = dataset.splits["train"]
        self.shift, self.scale = fit_energy_normalisation(
            np.broadcast_to(self.types, (train.n_frames, dataset.n_atoms)), len(self.type_map),
            train.energies, train.forces)
        self.offset = float(np.asarray(self.shift)[self.types].sum())
        self.dtype = _DTYPES[options.dtype]
        # Small validation batches: on CPU, per-frame cost grows ~10x from 64 to 256 frames (cache misses).
        super().__init__(self._tensors(train), self._tensors(dataset.splits["val"]), batch_size, val_batch_size=64)

    def _tensors(self, part: ForcesSplit) -> dict[str, torch.Tensor]:
        frames = part.n_frames
        return {
            "positions": torch.as_tensor(part.positions, dtype=self.dtype),
            "types": torch.as_tensor(self.types).expand(frames, -1).contiguous(),
            "forces": torch.as_tensor(part.forces, dtype=self.dtype),
            # Relative to the shift, in float64 first: totals of ~1e5 kcal/mol would lose ~0.01 in float32.
            "energies": torch.as_tensor(part.energies - self.offset, dtype=self.dtype),
        }

    def model_config(self) -> ForceField.Config:
        o = self.options
        attention = ForceField.Config().attention
        attention.update(o.attention)
        return ForceField.Config(atomic_numbers=list(self.type_map), n_dim=o.n_dim, n_blocks=o.n_blocks,
                                 attention=attention, energy_scale=self.scale, atom_energy_shift=list(self.shift))

    def build_model(self) -> torch.nn.Module:
        return ForceField(self.model_config()).to(self.dtype)

    def split_batch(self, batch: dict[str, torch.Tensor], parts: int):
        """Pieces of a training batch for the CPU cores (:func:`split_frames`)."""
        return split_frames(batch, parts)

    def loss(self, model, batch, train: bool):
        # Validation runs under no_grad; forces need autograd, so switch it back on.
        with torch.enable_grad():
            energy, forces = model(batch["positions"], batch["types"], include_shift=False)
        error = forces - batch["forces"]
        loss = (error / self.scale).pow(2).mean()
        metrics = {"force_mae_mev_per_a": float(error.detach().abs().mean()) * KCAL_PER_MOL_IN_MEV}
        if self.options.energy_weight > 0:
            energy_error = energy - batch["energies"]
            n_atoms = batch["positions"].shape[1]
            loss = loss + self.options.energy_weight * (energy_error / (n_atoms * self.scale)).pow(2).mean()
            metrics["energy_mae_mev"] = float(energy_error.detach().abs().mean()) * KCAL_PER_MOL_IN_MEV
        return loss, metrics

    def metadata(self) -> dict[str, Any]:
        meta = self.dataset.metadata
        return {
            "molecule": self.dataset.name,
            "formula": self.dataset.formula,
            "atomic_numbers": list(self.type_map),
            "elements": [ELEMENTS[z] for z in self.type_map],
            "units": dict(UNITS),
            "energy_trained": self.options.energy_weight > 0,
            "model_options": asdict(self.options),
            "data": {
                "path": str(self.dataset.path) if self.dataset.path is not None else None,
                "split": meta.get("split", {}),
                "provenance": meta.get("provenance", {}),
                "n_train": self.dataset.splits["train"].n_frames,
                "n_val": self.dataset.splits["val"].n_frames,
            },
        }


def _keep_dataset(dataset: ForcesDataset, out_dir: Path) -> None:
    """Write an in-memory dataset next to the checkpoints, never replacing a different one."""
    path = out_dir / DATASET_NAME
    if path.exists():
        existing = load_forces_dataset(path)
        same = existing.atomic_numbers.tolist() == dataset.atomic_numbers.tolist() and all(
            np.array_equal(existing.splits[name].indices, part.indices)
            and np.array_equal(existing.splits[name].positions, part.positions)
            for name, part in dataset.splits.items())
        if not same:
            raise ConfigError(f"{path} holds another dataset; choose another output folder")
        dataset.path = path
        return
    dataset.save(path)


def _refit_energy_offset(best_path: Path, task: ForcesTrainTask) -> float:
    """Shift ``best``'s energies by the mean training residual; returns it (kcal/mol)."""
    from .predict import ForceFieldPredictor

    checkpoint = load_checkpoint(best_path, task="forces")
    model = registry.build_model(checkpoint.metadata["model"])
    model.load_state_dict(checkpoint.state_dict)
    train = task.dataset.splits["train"]
    predictor = ForceFieldPredictor(model, checkpoint.metadata, device="cpu", dtype=task.options.dtype)
    energies, _ = predictor.predict(train.positions, task.dataset.atomic_numbers, compute_forces=False)
    delta = float(np.mean(train.energies - energies))
    counts = np.bincount(task.types, minlength=len(task.type_map))
    config = model.config
    # Spread the constant over the atoms: sum_t counts_t * d_t = delta with equal d_t per atom.
    config.atom_energy_shift = [float(s) + (delta / counts.sum() if c else 0.0)
                                for s, c in zip(config.atom_energy_shift, counts)]
    refitted = ForceField(config).to(task.dtype)
    refitted.load_state_dict(checkpoint.state_dict)
    previous = float(checkpoint.metadata.get("energy_offset_refit", 0.0))
    save_checkpoint(best_path, refitted, {**checkpoint.metadata, "energy_offset_refit": previous + delta})
    return delta


def train_forces(data: str | os.PathLike | ForcesDataset, out_dir: str | os.PathLike,
                 options: ForcesModelOptions | None = None, config: TrainConfig | None = None,
                 resume: bool = False, quiet: bool = False, console=None,
                 init_from: str | os.PathLike | None = None) -> FitResult:
    """Train a force field on a forces dataset; see :func:`gaatool.train.fit`.

    Parameters
    ----------
    data
        A dataset file from ``gaatool data md17`` or a :class:`ForcesDataset`
        (e.g. from :func:`gaatool.tasks.forces.build_md17_dataset`), which is
        then also written to ``out_dir/dataset.npz`` for ``gaatool evaluate forces``.
    out_dir
        Folder for ``best.safetensors``, ``last.safetensors`` and the metrics.
    options
        Architecture, loss and dtype (default: the paper's).
    config
        Training settings (default: :func:`forces_train_config`).
    init_from
        Start from this checkpoint's weights (same model options and elements);
        see :func:`gaatool.train.fit`.

    Returns
    -------
    FitResult
    """
    options = options or ForcesModelOptions()
    config = config or forces_train_config()
    out_dir = Path(out_dir)
    if isinstance(data, ForcesDataset):
        dataset = data
        if resume or not ((out_dir / "best.safetensors").exists() or (out_dir / "last.safetensors").exists()):
            _keep_dataset(dataset, out_dir)
    else:
        dataset = load_forces_dataset(data)
    task = ForcesTrainTask(dataset, options, config.batch_size)
    try:
        result = fit(task, config, out_dir, resume=resume, quiet=quiet, console=console, init_from=init_from)
    except (TrainingInterrupted, TrainingDiverged):
        # a run stopped by its scheduler's time limit (SIGTERM) or by a diverging loss still leaves a best
        # whose energies are right; the refit is one energies-only pass over the training frames (seconds)
        if (Path(out_dir) / BEST_NAME).exists():
            _refit_energy_offset(Path(out_dir) / BEST_NAME, task)
        raise
    _refit_energy_offset(result.best_path, task)
    return result
