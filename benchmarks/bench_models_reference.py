"""The benchmark cases: the paper's three models, gaatool against the reference library.

A :class:`CaseSpec` names a model, a mode and a batch size; :func:`prepare`
builds the gaatool model at its default (paper) size, its reference mirror
with the same weights (:mod:`benchmarks.reference`), synthetic inputs of
realistic shape, and one zero-argument step per implementation, which runs
one inference or one training step and returns when the device is done.

Inputs are synthetic: the time of these models depends on shapes, not on the
coordinate values, so random but physically spaced geometries are used:

* crystal: the 12 nearest-neighbour bonds of fcc (unit nearest-neighbour
  distance) with Gaussian noise of 0.05 and a random rotation per
  environment, one particle type (K = 12, the dataset default);
* ethanol (C2H6O, 9 atoms) and aspirin (C9H8O4, 21 atoms): random molecules
  with every pair at least 1 Å apart in a sphere of liquid-like density;
* backmapping: 16 neighbour beads 3.5-10 Å from the central bead, random
  residue types; each residue's heavy atoms (without OXT) padded to 14, the
  size of tryptophan, with an atom mask.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from gaatool.ga.rotations import random_rotation
from gaatool.models.backmap import Backmapper
from gaatool.models.crystal import CrystalClassifier
from gaatool.models.forces import ForceField
from gaatool.tasks.forces.train import split_frames
from gaatool.train import training_step
from gaatool.tasks.backmap.residues import RESIDUE_ATOMS, RESIDUE_NAMES, residue_labels

from .reference import build_reference, parameter_count

__all__ = ["CaseSpec", "Prepared", "FULL_CASES", "QUICK_CASES", "IMPLEMENTATIONS", "MOLECULES", "build_model",
           "make_inputs", "prepare"]

IMPLEMENTATIONS = ("gaatool", "reference")

#: Element symbols of the benchmark molecules, MD17 atom counts.
MOLECULES = {"ethanol": "C" * 2 + "O" + "H" * 6, "aspirin": "C" * 9 + "O" * 4 + "H" * 8}
_ATOMIC_NUMBERS = {"H": 1, "C": 6, "O": 8}

CRYSTAL_NEIGHBORS = 12
BACKMAP_BEADS = 16
BACKMAP_ATOMS = max(len(atoms) for atoms in RESIDUE_ATOMS.values())  # 14 (TRP)


@dataclass(frozen=True)
class CaseSpec:
    """One benchmark case.

    Attributes
    ----------
    model : str
        ``crystal``, ``ethanol``, ``aspirin`` or ``backmap``.
    mode : str
        ``inference`` (for molecules: energy and forces) or ``train`` (one optimiser step).
    batch : int
        Items per call: environments, molecules or residues.
    """

    model: str
    mode: str
    batch: int

    def __post_init__(self) -> None:
        if self.model not in ("crystal", "ethanol", "aspirin", "backmap"):
            raise ValueError(f"unknown benchmark model {self.model!r}")
        if self.mode not in ("inference", "train"):
            raise ValueError(f"unknown benchmark mode {self.mode!r}")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")

    @property
    def key(self) -> str:
        """Short id, e.g. ``aspirin-inference-b16``."""
        return f"{self.model}-{self.mode}-b{self.batch}"

    @property
    def item(self) -> str:
        """What one item of the batch is."""
        return {"crystal": "environment", "backmap": "residue"}.get(self.model, "molecule")

    @property
    def title(self) -> str:
        what = {"crystal": "crystal classifier", "backmap": "backmapping"}.get(self.model, self.model)
        if self.mode == "train":
            return f"{what} training step"
        return f"{what} energy+forces" if self.model in MOLECULES else f"{what} inference"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: The issue's comparisons (paper-size models, float32).
FULL_CASES = (
    CaseSpec("crystal", "inference", 1024), CaseSpec("crystal", "train", 256),
    CaseSpec("ethanol", "inference", 1), CaseSpec("ethanol", "inference", 16), CaseSpec("ethanol", "inference", 128),
    CaseSpec("aspirin", "inference", 1), CaseSpec("aspirin", "inference", 16), CaseSpec("aspirin", "inference", 128),
    CaseSpec("ethanol", "train", 32),
    CaseSpec("backmap", "inference", 256), CaseSpec("backmap", "train", 64),
)

#: Small batches of the same models, for smoke checks (seconds).
QUICK_CASES = (
    CaseSpec("crystal", "inference", 32), CaseSpec("crystal", "train", 8),
    CaseSpec("ethanol", "inference", 1), CaseSpec("ethanol", "inference", 4),
    CaseSpec("aspirin", "inference", 1),
    CaseSpec("ethanol", "train", 2),
    CaseSpec("backmap", "inference", 8), CaseSpec("backmap", "train", 4),
)


def build_model(model: str, seed: int = 0, config_overrides: dict | None = None) -> nn.Module:
    """The gaatool model of a case at its default (paper) size, seeded, float32, eval mode."""
    torch.manual_seed(seed)
    overrides = dict(config_overrides or {})
    if model == "crystal":
        net = CrystalClassifier(CrystalClassifier.Config(**overrides))
    elif model in MOLECULES:
        net = ForceField(ForceField.Config(**overrides))
    elif model == "backmap":
        net = Backmapper(Backmapper.Config(**overrides))
    else:
        raise ValueError(f"unknown benchmark model {model!r}")
    return net.float().eval()


def _fcc_bonds() -> np.ndarray:
    # the 12 nearest neighbours of fcc at unit distance: permutations of (+-1, +-1, 0) / sqrt(2)
    bonds = []
    for zero in range(3):
        for a in (-1, 1):
            for b in (-1, 1):
                vector = [a, b]
                vector.insert(zero, 0)
                bonds.append(vector)
    return np.array(bonds, dtype=np.float64) / np.sqrt(2.0)


def _molecule(n_atoms: int, rng: np.random.Generator, min_distance: float = 1.0) -> np.ndarray:
    # random points in a sphere at ~0.1 atoms/Å^3 with no pair closer than min_distance
    radius = (3.0 * n_atoms / (4.0 * np.pi * 0.1)) ** (1.0 / 3.0)
    points: list[np.ndarray] = []
    while len(points) < n_atoms:
        candidate = rng.uniform(-radius, radius, 3)
        if np.linalg.norm(candidate) <= radius and all(np.linalg.norm(candidate - p) >= min_distance for p in points):
            points.append(candidate)
    positions = np.array(points)
    return positions - positions.mean(0)


def make_inputs(spec: CaseSpec, device: str | torch.device = "cpu", seed: int = 0) -> dict[str, torch.Tensor]:
    """Synthetic float32 model inputs (and training targets) of one case, on ``device``."""
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    b = spec.batch
    if spec.model == "crystal":
        bonds = _fcc_bonds()[None] + rng.normal(0.0, 0.05, (b, CRYSTAL_NEIGHBORS, 3))
        rotations = random_rotation(g, torch.float64, batch=(b,)).numpy()
        r_ij = np.einsum("bij,bkj->bki", rotations, bonds)
        type_pairs = np.zeros((b, CRYSTAL_NEIGHBORS, 4))
        type_pairs[..., 2] = 2.0  # one type: t_i - t_j = 0, t_i + t_j = (2, 0)
        out = {"r_ij": r_ij, "type_pairs": type_pairs, "labels": rng.integers(0, 8, b)}
    elif spec.model in MOLECULES:
        symbols = MOLECULES[spec.model]
        numbers = ForceField.Config().atomic_numbers
        types = np.array([numbers.index(_ATOMIC_NUMBERS[s]) for s in symbols])
        positions = np.stack([_molecule(len(symbols), rng) for _ in range(b)])
        out = {"positions": positions, "types": np.broadcast_to(types, (b, len(symbols))).copy(),
               "forces": rng.normal(0.0, 10.0, positions.shape)}
    else:
        directions = rng.normal(size=(b, BACKMAP_BEADS, 3))
        directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
        neighbor_positions = directions * rng.uniform(3.5, 10.0, (b, BACKMAP_BEADS, 1))
        residues = rng.integers(0, len(RESIDUE_NAMES), b)
        labels = np.zeros((b, BACKMAP_ATOMS), dtype=np.int64)
        atom_mask = np.zeros((b, BACKMAP_ATOMS), dtype=bool)
        for row, residue in enumerate(residues):
            _, indices = residue_labels(RESIDUE_NAMES[residue])
            labels[row, :len(indices)] = indices
            atom_mask[row, :len(indices)] = True
        out = {"neighbor_positions": neighbor_positions,
               "neighbor_types": rng.integers(0, len(RESIDUE_NAMES), (b, BACKMAP_BEADS)),
               "residue_types": residues, "atom_labels": labels,
               "neighbor_mask": np.ones((b, BACKMAP_BEADS), dtype=bool), "atom_mask": atom_mask,
               "atom_positions": rng.normal(0.0, 2.0, (b, BACKMAP_ATOMS, 3))}
    tensors = {}
    for name, value in out.items():
        tensor = torch.as_tensor(np.asarray(value))
        if tensor.is_floating_point():
            tensor = tensor.float()
        tensors[name] = tensor.to(device)
    return tensors


def _call(spec: CaseSpec, model: nn.Module, inputs: dict[str, torch.Tensor], create_graph: bool = False):
    if spec.model == "crystal":
        return model(inputs["r_ij"], inputs["type_pairs"])
    if spec.model in MOLECULES:
        return model(inputs["positions"], inputs["types"], create_graph=create_graph)
    return model(inputs["neighbor_positions"], inputs["neighbor_types"], inputs["residue_types"],
                 inputs["atom_labels"], inputs["neighbor_mask"], inputs["atom_mask"])


def _loss(spec: CaseSpec, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    if spec.model == "crystal":
        return nn.functional.cross_entropy(_call(spec, model, inputs), inputs["labels"])
    if spec.model in MOLECULES:
        # the paper's forces-only loss; forces must stay differentiable (double backward)
        _, forces = _call(spec, model, inputs, create_graph=True)
        return (forces - inputs["forces"]).pow(2).mean()
    error = (_call(spec, model, inputs) - inputs["atom_positions"]).pow(2).sum(-1)
    mask = inputs["atom_mask"].to(error.dtype)
    return (error * mask).sum() / mask.sum().clamp(min=1)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(spec: CaseSpec, model: nn.Module, inputs: dict[str, torch.Tensor],
              split: Callable | None = None) -> Callable[[], None]:
    """One call of the case: inference (no_grad, except forces by autograd) or an Adam training step.

    Puts ``model`` in eval or train mode (dropout on for training, as in the real tasks).
    ``split``: the batch splitter of gaatool's training task, with which the step is
    :func:`gaatool.train.training_step`, exactly what ``gaatool train`` runs.
    """
    device = next(model.parameters()).device
    if spec.mode == "train":
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        if split is not None:
            def loss_fn(batch):
                return _loss(spec, model, batch), {}

            def engine_step() -> None:
                training_step(model, optimizer, loss_fn, inputs, split)
                _synchronize(device)
            return engine_step

        def step() -> None:
            loss = _loss(spec, model, inputs)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            _synchronize(device)
        return step

    model.eval()
    if spec.model in MOLECULES:
        def step() -> None:
            _call(spec, model, inputs)
            _synchronize(device)
        return step

    def step() -> None:
        with torch.no_grad():
            _call(spec, model, inputs)
        _synchronize(device)
    return step


@dataclass
class Prepared:
    """Models, inputs and one step function per implementation for one case."""

    spec: CaseSpec
    models: dict[str, nn.Module]
    inputs: dict[str, torch.Tensor]
    steps: dict[str, Callable[[], None]]

    @property
    def parameter_counts(self) -> dict[str, int]:
        return {name: parameter_count(model) for name, model in self.models.items()}


def prepare(spec: CaseSpec, device: str | torch.device = "cpu", seed: int = 0,
            implementations: tuple[str, ...] = IMPLEMENTATIONS, config_overrides: dict | None = None,
            compile: bool = False) -> Prepared:
    """Build both implementations of ``spec`` with identical weights, its inputs and steps, on ``device``.

    ``config_overrides`` changes the gaatool model config (tests use tiny models). ``compile``
    runs gaatool's crystal inference through torch.compile as ``gaatool identify --compile on``
    does, and molecular energies and forces as ``gaatool predict forces --compile on`` and the
    ASE calculator do (training and backmapping are unaffected: compiled graphs cannot be
    differentiated twice, and compiling did not pay for backmapping).
    """
    device = torch.device(device)
    model = build_model(spec.model, seed, config_overrides).to(device)
    models = {"gaatool": model}
    if "reference" in implementations:
        models["reference"] = build_reference(model)
    models = {name: models[name] for name in implementations}
    inputs = make_inputs(spec, device, seed)
    # gaatool's force training step is its engine's: batch pieces side by side on the CPU cores
    split = split_frames if spec.model in MOLECULES and spec.mode == "train" else None
    steps = {name: make_step(spec, net, inputs, split if name == "gaatool" else None) for name, net in models.items()}
    if compile and spec.model == "crystal" and spec.mode == "inference" and "gaatool" in steps:
        from gaatool.nn.compiled import FixedBatchCompiled, compiled_batch_size

        compiled = FixedBatchCompiled(model, compiled_batch_size(spec.batch, device))  # as identify does

        def compiled_step() -> None:
            with torch.no_grad():
                compiled(inputs["r_ij"], inputs["type_pairs"])
            _synchronize(device)
        steps["gaatool"] = compiled_step
    if compile and spec.model in MOLECULES and spec.mode == "inference" and "gaatool" in steps:
        energy_forces = model.compiled_energy_forces()

        def compiled_forces_step() -> None:
            energy_forces(inputs["positions"], inputs["types"])
            _synchronize(device)
        steps["gaatool"] = compiled_forces_step
    return Prepared(spec, models, inputs, steps)
