"""Apply a force-field checkpoint: energies and forces of every frame of a file.

Inputs: XYZ, extended XYZ (also the sGDML xyz export) and npz (sGDML ``R, z``,
rMD17 ``coords, nuclear_charges`` or gaatool's own ``positions,
atomic_numbers``). Positions are read in Å. Atoms are mapped to the model's
types by element; an element the model was not trained on is an error.

Outputs, written atomically:

* extended XYZ (``.xyz``, ``.extxyz`` or ``-`` for stdout): per frame
  ``energy=<eV> energy_unit=eV forces_unit=eV/A`` and
  ``Properties=species:S:1:pos:R:3:forces:R:3``, forces in eV/Å: the units ASE
  reads these keys in (gaatool's readers follow the unit keys);
* ``.npz``: ``energies`` (F,), ``forces`` (F, N, 3), ``positions`` (F, N, 3),
  ``atomic_numbers`` (N,) and the unit strings ``energy_unit``,
  ``forces_unit``, ``length_unit`` (every frame must then have the same atoms).
"""
from __future__ import annotations

import copy
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...checkpoint import load_model
from ...errors import CheckpointError, ConfigError, InputFileError
from ...io.atomic import atomic_path, check_output_path
from ...io.text import check_input_file
from ...io.xyz import ELEMENTS, XYZFrame, atomic_number, iter_xyz, write_extxyz
from ...models.forces import ForceField
from ...nn.compiled import CompiledEnergyForces, check_compile_mode, should_compile
from ...train.device import resolve_device
from ...units import KCAL_PER_MOL_IN_EV, kcal_per_mol_to_mev
from .md17 import _hill as hill_formula

__all__ = [
    "ForceFieldPredictor",
    "ForcesPrediction",
    "predict_file",
    "read_structures",
    "default_checkpoint",
    "DEFAULT_CHECKPOINT_NAME",
    "ENERGY_UNIT",
    "FORCES_UNIT",
]

#: File name of the pretrained model used when no checkpoint is given (see :mod:`gaatool.tasks.pretrained`).
DEFAULT_CHECKPOINT_NAME = "forces-ethanol.safetensors"
ENERGY_UNIT = "kcal/mol"
FORCES_UNIT = "kcal/mol/A"
#: Units of the extended XYZ output: ASE's.
XYZ_ENERGY_UNIT = "eV"
XYZ_FORCES_UNIT = "eV/A"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_NPZ_KEYS = (("R", "z"), ("coords", "nuclear_charges"), ("positions", "atomic_numbers"))
#: ``compile="auto"`` compiles on the CPU for one frame per call (molecular dynamics, the ASE calculator)
#: once this many frames have been asked for over all calls: compiling costs ~40 s once (28 s, then ~10 s for a
#: second graph, with an empty compile cache), then saves
#: ~2.5 ms per ethanol frame (float64, 2 cores: 6.3-7.0 instead of 8.6-9.5 ms per MD step,
#: ``python -m benchmarks.bench_md_loop``). Bigger batches
#: stay eager: the compiled function runs on one thread, and the eager model's pieces side by side on
#: the cores were faster from batch 16 on (benchmarks/).
AUTO_COMPILE_FRAMES = 10000
#: ... and for molecules of at most this many atoms: compiled, ethanol (9) ran 4.6 instead of 6.5 ms
#: per call, aspirin (21) 34.7 instead of 29 (benchmarks/results/cpu-amd-epyc-compiled*.md).
AUTO_COMPILE_MAX_ATOMS = 12


def default_checkpoint(formulas: list[str] | None = None) -> Path:
    """The pretrained model for frames of these ``formulas``, or a :class:`CheckpointError` if none is installed.

    When every frame is the same MD17 molecule and a pretrained
    ``forces-<molecule>.safetensors`` is installed, that one; otherwise the
    ethanol model (:data:`DEFAULT_CHECKPOINT_NAME`).
    """
    from ..pretrained import pretrained_path
    from .md17 import MOLECULES

    if formulas is not None and len(set(formulas)) == 1:
        for molecule, formula in MOLECULES.items():
            if formula == formulas[0]:
                try:
                    return pretrained_path(f"forces-{molecule}.safetensors")
                except CheckpointError:
                    break
    return pretrained_path(DEFAULT_CHECKPOINT_NAME)


class ForceFieldPredictor:
    """A force field ready to apply to frames of one or more molecules.

    Parameters
    ----------
    model : ForceField
    metadata : dict, optional
        Checkpoint metadata (for reports: molecule, formula, dtype).
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    dtype : str, optional
        ``float32`` or ``float64``; default: the dtype the model was trained in.
    batch_size : int
        Frames per forward pass (bounds the memory).
    compile : str
        ``auto``, ``on`` or ``off``: compute energies and forces through
        torch.compile (:class:`~gaatool.nn.compiled.CompiledEnergyForces`,
        ~1.35x faster on the CPU for one small molecule per call). ``auto``
        compiles on the CPU with ``batch_size=1``, for molecules of at most
        :data:`AUTO_COMPILE_MAX_ATOMS` atoms, once :data:`AUTO_COMPILE_FRAMES`
        frames have been predicted in all.

    Energies come back in float64 kcal/mol with the per-type shift added in
    float64 (so float32 models lose no precision on ~1e5 kcal/mol totals),
    forces in kcal/mol/Å.
    """

    def __init__(self, model: ForceField, metadata: dict[str, Any] | None = None, device: str = "cpu",
                 dtype: str | None = None, batch_size: int = 64, compile: str = "auto"):
        if not isinstance(model, ForceField):
            raise CheckpointError(f"{type(model).__name__} is not a force-field model")
        self.metadata = dict(metadata or {})
        dtype = dtype or self.metadata.get("model_options", {}).get("dtype", "float32")
        if dtype not in _DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}; use float32 or float64")
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1 (got {batch_size})")
        self.device = resolve_device(device)
        self.dtype = _DTYPES[dtype]
        # .to() and .eval() change a module in place: work on a copy where they would change the caller's model
        # (another predictor or ASE calculator on the same model, with another dtype, would then break this one)
        if model.training or any(p.dtype != self.dtype or p.device != self.device for p in model.parameters()):
            model = copy.deepcopy(model)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.batch_size = int(batch_size)
        self.atomic_numbers = [int(z) for z in model.config.atomic_numbers]
        self._shift = np.asarray(model.config.atom_energy_shift or [0.0] * len(self.atomic_numbers), np.float64)
        self._type_of = {z: t for t, z in enumerate(self.atomic_numbers)}
        check_compile_mode(compile)
        self.compile, self._compiled, self._frames_seen = compile, None, 0

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike | None = None, device: str = "auto",
                        dtype: str | None = None, batch_size: int = 64, compile: str = "auto") -> "ForceFieldPredictor":
        """Load a ``forces`` checkpoint (default: :func:`default_checkpoint`)."""
        path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
        model, metadata = load_model(path, task="forces")
        predictor = cls(model, metadata, device=device, dtype=dtype, batch_size=batch_size, compile=compile)
        predictor.metadata["checkpoint"] = str(path)
        return predictor

    @property
    def elements(self) -> list[str]:
        return [ELEMENTS[z] for z in self.atomic_numbers]

    def types_of(self, atomic_numbers: np.ndarray, where: str = "input") -> np.ndarray:
        """Model type indices (N,) of atoms given by atomic number (N,).

        Raises :class:`InputFileError` naming ``where``, the atom and the element if the
        model does not know an element.
        """
        types = np.empty(len(atomic_numbers), dtype=np.int64)
        for i, z in enumerate(np.asarray(atomic_numbers).tolist()):
            if z not in self._type_of:
                symbol = ELEMENTS[z] if 0 < z < len(ELEMENTS) else f"Z={z}"
                raise InputFileError(
                    f"{where}: atom {i + 1} is {symbol}, but the model knows only {', '.join(self.elements)}; "
                    "use a model trained on this molecule")
            types[i] = self._type_of[z]
        return types

    def predict(self, positions: np.ndarray, atomic_numbers: np.ndarray, where: str = "input",
                compute_forces: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Energies (F,) float64 kcal/mol and forces (F, N, 3) float64 kcal/mol/Å.

        positions (F, N, 3) in Å; atomic_numbers (N,), the same atoms in every frame.
        """
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim == 2:
            positions = positions[None]
        if len(atomic_numbers) == 0:  # the model cannot reshape an empty cloud (a RuntimeError deep in torch)
            raise InputFileError(f"{where}: the frame holds no atoms; give at least one atom")
        types = self.types_of(atomic_numbers, where)
        if positions.shape[1:] != (len(types), 3):
            raise InputFileError(f"{where}: positions have shape {positions.shape}; expected (frames, {len(types)}, 3)")
        finite = np.isfinite(positions.reshape(positions.shape[0], -1)).all(axis=1)
        if not finite.all():  # the model would return NaN energies and forces without a word
            which = "" if len(finite) == 1 else f" of frame {int(np.argmin(finite))} (0-based, of these {len(finite)})"
            raise InputFileError(f"{where}: positions{which} are not finite (NaN or infinite)")
        # Energies and forces depend only on r_j - r_i: centre every frame in float64 first, or a float32
        # model loses the digits of far-off coordinates (1e4 A: forces off by ~60 meV/A; 100 A: ~0.8).
        positions = positions - positions.mean(axis=1, keepdims=True)
        offset = float(self._shift[types].sum())
        energies = np.empty(positions.shape[0], dtype=np.float64)
        forces = np.empty_like(positions) if compute_forces else None
        type_tensor = torch.as_tensor(types, device=self.device)
        self._frames_seen += positions.shape[0]
        compiled = self._compiled_model(len(types)) if compute_forces else None
        for start in range(0, positions.shape[0], self.batch_size):
            chunk = torch.as_tensor(positions[start:start + self.batch_size], dtype=self.dtype, device=self.device)
            batch_types = type_tensor.expand(chunk.shape[0], -1)
            if compiled is not None:
                energy, force = compiled(chunk, batch_types)
            else:
                with torch.no_grad():
                    energy, force = self.model(chunk, batch_types, compute_forces=compute_forces,
                                               create_graph=False, include_shift=False)
            energies[start:start + chunk.shape[0]] = energy.detach().double().cpu().numpy() + offset
            if compute_forces:
                forces[start:start + chunk.shape[0]] = force.detach().double().cpu().numpy()
        return energies, forces

    def _compiled_model(self, n_atoms: int) -> CompiledEnergyForces | None:
        """The compiled energy-and-forces function, made on first need (see ``compile``)."""
        if self.compile == "auto" and not (self.batch_size == 1 and n_atoms <= AUTO_COMPILE_MAX_ATOMS):
            return None
        if not should_compile(self.compile, self._frames_seen, self.device, AUTO_COMPILE_FRAMES):
            return None
        if self._compiled is None:
            self._compiled = self.model.compiled_energy_forces()
        return self._compiled


# --------------------------------------------------------------------------- reading


@dataclass
class _Structures:
    """Frames read from one file: positions (N_f, 3) Å and atomic numbers (N_f,) per frame."""

    positions: list[np.ndarray]
    atomic_numbers: list[np.ndarray]
    frame_numbers: list[int]  # 0-based, in the file (as --frames and every reader count)


def _read_npz_structures(path: Path) -> _Structures:
    # Checked first: np.load would otherwise try to unpickle a non-npz file and say so.
    if not zipfile.is_zipfile(path):
        raise InputFileError(f"{path}: not an npz file (no zip archive inside); the file is damaged or of another format")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputFileError(f"{path}: not a readable npz file ({str(err).splitlines()[0]})") from err
    with archive:
        keys = set(archive.files)
        if "__gaatool_metadata__" in keys:
            raise InputFileError(f"{path}: is a gaatool dataset; use `gaatool evaluate forces` on it")
        pair = next((p for p in _NPZ_KEYS if set(p) <= keys), None)
        if pair is None:
            raise InputFileError(f"{path}: npz keys {sorted(keys)} hold no structures; expected R and z (sGDML), "
                                 "coords and nuclear_charges (rMD17) or positions and atomic_numbers")
        try:
            positions, z = archive[pair[0]], archive[pair[1]]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise InputFileError(f"{path}: damaged npz file ({str(err).splitlines()[0]})") from err
    if positions.dtype.kind not in "fiu" or z.dtype.kind not in "iu":
        raise InputFileError(f"{path}: {pair[0]} must be numbers and {pair[1]} integers")
    if positions.ndim == 2:
        positions = positions[None]
    if positions.ndim != 3 or positions.shape[-1] != 3 or positions.shape[0] == 0:
        raise InputFileError(f"{path}: {pair[0]} has shape {positions.shape}; expected (frames, atoms, 3)")
    frames, n = positions.shape[:2]
    if z.shape == (n,):
        z = np.broadcast_to(z, (frames, n))
    if z.shape != (frames, n):
        raise InputFileError(f"{path}: {pair[1]} has shape {z.shape}; expected ({n},) or ({frames}, {n})")
    positions = positions.astype(np.float64)
    bad = ~np.isfinite(positions.reshape(frames, -1)).all(axis=1)
    if bad.any():
        raise InputFileError(f"{path}: frame {int(np.argmax(bad))} has non-finite positions; the file is damaged")
    return _Structures(list(positions), [np.asarray(row, np.int64) for row in z], list(range(frames)))


def _read_xyz_structures(path: str | os.PathLike) -> _Structures:
    where = "<stdin>" if str(path) == "-" else str(path)
    result = _Structures([], [], [])
    for number, frame in enumerate(iter_xyz(path)):
        if frame.pbc is not None and np.asarray(frame.pbc, dtype=bool).any():
            raise InputFileError(f"{where}: frame {number} is periodic (pbc={frame.pbc.tolist()}); the molecular "
                                 "force field treats isolated molecules only")
        try:
            z = np.array([atomic_number(s) for s in frame.symbols], dtype=np.int64)
        except InputFileError as err:
            raise InputFileError(f"{where}: frame {number}: {err}") from err
        if not np.isfinite(frame.positions).all():  # the model would return NaN forces without a word
            raise InputFileError(f"{where}: frame {number} has non-finite (NaN or infinite) positions")
        result.positions.append(np.asarray(frame.positions, np.float64))
        result.atomic_numbers.append(z)
        result.frame_numbers.append(number)
    return result


def read_structures(path: str | os.PathLike, frames: slice | None = None) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """Positions (N_f, 3) Å, atomic numbers (N_f,) and 0-based frame numbers of a file's frames.

    ``path`` is XYZ / extended XYZ (``"-"`` for stdin) or npz (by suffix or
    content). ``frames`` selects frames (a 0-based slice).

    Raises
    ------
    InputFileError
        Missing, unreadable or damaged file, unknown element, periodic frame,
        non-finite positions, or a selection that leaves no frame.
    """
    if str(path) == "-":
        structures = _read_xyz_structures("-")
    else:
        path = Path(path)
        check_input_file(path, "a file of molecules")
        with open(path, "rb") as handle:
            magic = handle.read(2)
        structures = _read_npz_structures(path) if path.suffix.lower() == ".npz" or magic == b"PK" \
            else _read_xyz_structures(path)
    selection = range(len(structures.positions))[frames] if frames is not None else range(len(structures.positions))
    if len(selection) == 0:
        raise InputFileError(f"{path}: the frame selection leaves no frame (the file has "
                             f"{len(structures.positions)}); check --frames")
    return ([structures.positions[i] for i in selection], [structures.atomic_numbers[i] for i in selection],
            [structures.frame_numbers[i] for i in selection])


# --------------------------------------------------------------------------- predicting

#: Distances (Å) that tell positions in another unit, or atoms the model never saw placed so: no bond is shorter
#: than H2's 0.74 Å (nm read as Å: bonds of ~0.1), a hydrogen of a molecule of H, C, N, O has a neighbour within
#: ~1.1 Å (bohr read as Å: none closer than ~1.7), and every atom of a molecule one within ~1.6 (MD17: shortest
#: distance 0.88-1.01 Å, farthest nearest neighbour 1.20-1.49 Å).
_TOO_CLOSE_A, _NO_BOND_A, _DETACHED_A = 0.5, 1.6, 2.0


def geometry_warnings(where: str, positions: np.ndarray, numbers: np.ndarray, frame_numbers: list[int]) -> list[str]:
    """Warnings for frames (F, N, 3) of atoms ``numbers`` (N,) whose distances no molecule in Å has."""
    n_atoms = len(numbers)
    if n_atoms < 2:
        return []
    found: dict[str, list] = {"close": [], "unbonded": [], "detached": []}  # (frame number, detail) per kind
    has_hydrogen = bool((np.asarray(numbers) == 1).any())
    off_diagonal = ~np.eye(n_atoms, dtype=bool)
    for start in range(0, len(positions), 1024):
        chunk = positions[start:start + 1024]
        distances = np.linalg.norm(chunk[:, :, None] - chunk[:, None], axis=-1)
        distances = np.where(off_diagonal, distances, np.inf)
        nearest = distances.min(axis=2)  # (F, N)
        for row in np.flatnonzero((nearest.min(axis=1) < _TOO_CLOSE_A) | (nearest.min(axis=1) > _NO_BOND_A)
                                  | (nearest.max(axis=1) > _DETACHED_A)):
            number, near = frame_numbers[start + row], nearest[row]
            i = int(np.argmin(near))
            if near[i] < _TOO_CLOSE_A:
                j = int(np.argmin(distances[row, i]))
                found["close"].append((number, f"atoms {min(i, j) + 1} and {max(i, j) + 1} are {near[i]:.3f} Å apart"))
            elif near[i] > _NO_BOND_A and has_hydrogen:
                found["unbonded"].append((number, f"no two atoms are closer than {near[i]:.2f} Å"))
            elif near.max() > _DETACHED_A:
                k = int(np.argmax(near))
                found["detached"].append((number, f"atom {k + 1} ({ELEMENTS[int(numbers[k])]}) is {near[k]:.2f} Å "
                                                  "from its nearest neighbour"))
    advice = {"close": "are the positions in Å (not nm), without overlapping atoms? Energies and forces of such "
                       "geometries are meaningless",
              "unbonded": "bonds to hydrogen are ~1 Å: are the positions in Å (not bohr)? Energies and forces of "
                          "such geometries are meaningless",
              "detached": "a stray atom lies outside what the model was trained on; its energy and forces are "
                          "extrapolations"}
    warnings = []
    for kind, cases in found.items():
        if cases:
            more = f" (and in {len(cases) - 1} more frame{'s' if len(cases) > 2 else ''})" if len(cases) > 1 else ""
            warnings.append(f"{where}: frame {cases[0][0]}: {cases[0][1]}{more}; {advice[kind]}")
    return warnings


@dataclass
class ForcesPrediction:
    """Energies and forces of the frames of one file.

    Attributes
    ----------
    energies : (F,) float64, kcal/mol
    forces : list of (N_f, 3) float64, kcal/mol/Å
    positions : list of (N_f, 3) float64, Å
    atomic_numbers : list of (N_f,) int64
    frame_numbers : list of int, 0-based frame numbers in the input file
    """

    input: str
    output: str | None
    checkpoint: str
    energies: np.ndarray
    forces: list[np.ndarray]
    positions: list[np.ndarray]
    atomic_numbers: list[np.ndarray]
    frame_numbers: list[int]
    model_molecule: str | None = None
    model_formula: str | None = None
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def formulas(self) -> list[str]:
        return sorted({hill_formula(z) for z in self.atomic_numbers})

    def to_dict(self) -> dict[str, Any]:
        """Summary (no per-atom arrays): counts, energy range in kcal/mol and meV, largest force."""
        max_force = max(float(np.abs(f).max()) for f in self.forces)
        return {
            "input": self.input,
            "output": self.output,
            "checkpoint": self.checkpoint,
            "n_frames": int(len(self.energies)),
            "n_atoms": sorted({int(len(z)) for z in self.atomic_numbers}),
            "formulas": self.formulas,
            "model_molecule": self.model_molecule,
            "model_formula": self.model_formula,
            "matches_training_molecule": self.model_formula is None or self.formulas == [self.model_formula],
            "energy_unit": ENERGY_UNIT,
            "forces_unit": FORCES_UNIT,
            "energy_min": float(self.energies.min()),
            "energy_max": float(self.energies.max()),
            "energy_range_mev": kcal_per_mol_to_mev(float(self.energies.max() - self.energies.min())),
            "max_force_component_mev_per_a": kcal_per_mol_to_mev(max_force),
            "warnings": list(self.warnings),
            **self.extra,
        }


def _output_kind(output: str | os.PathLike | None) -> str | None:
    if output is None:
        return None
    if str(output) == "-":
        return "xyz"
    suffix = Path(output).suffix.lower()
    if suffix in (".xyz", ".extxyz"):
        return "xyz"
    if suffix == ".npz":
        return "npz"
    raise ConfigError(f"{output}: unknown output format {suffix or '(no suffix)'!r}; use .xyz, .extxyz, .npz or -")


def _write_npz(path: Path, result: ForcesPrediction) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, energies=result.energies, forces=np.stack(result.forces),
                     positions=np.stack(result.positions), atomic_numbers=result.atomic_numbers[0],
                     energy_unit=np.array(ENERGY_UNIT), forces_unit=np.array(FORCES_UNIT),
                     length_unit=np.array("A"))
            handle.flush()
            os.fsync(handle.fileno())


def _write_xyz(output: str | os.PathLike, result: ForcesPrediction) -> None:
    # in eV and eV/Å, the units ASE reads extended XYZ energies and forces in (kcal/mol read as eV: 23x off),
    # named in each comment line; gaatool's readers convert them back
    frames = (
        XYZFrame(np.array([ELEMENTS[int(z)] for z in numbers]), positions,
                 info={"energy": float(energy) * KCAL_PER_MOL_IN_EV, "energy_unit": XYZ_ENERGY_UNIT,
                       "forces_unit": XYZ_FORCES_UNIT},
                 arrays={"forces": forces * KCAL_PER_MOL_IN_EV})
        for numbers, positions, energy, forces in zip(result.atomic_numbers, result.positions, result.energies,
                                                      result.forces)
    )
    write_extxyz(output, frames)


def predict_file(path: str | os.PathLike, checkpoint: str | os.PathLike | ForceFieldPredictor | None = None,
                 output: str | os.PathLike | None = None, device: str = "auto", frames: slice | None = None,
                 batch_size: int = 64, compile: str = "auto") -> ForcesPrediction:
    """Energies and forces of every frame of ``path``; optionally written to ``output``.

    Parameters
    ----------
    path
        XYZ, extended XYZ or npz (see the module docstring); ``"-"`` reads XYZ from stdin.
    checkpoint
        A ``forces`` checkpoint, a loaded :class:`ForceFieldPredictor`, or None
        for the pretrained model of the frames' molecule (:func:`default_checkpoint`).
    output
        ``.xyz`` / ``.extxyz`` / ``-`` (extended XYZ) or ``.npz``; nothing is
        written if None. Written only after every frame was predicted, atomically.
    device, batch_size
        Where and in what chunks the model runs.
    compile
        ``auto``, ``on`` or ``off``; see :class:`ForceFieldPredictor`.
    frames
        0-based slice of the frames to use.

    Raises
    ------
    InputFileError
        Unreadable input, or atoms of an element the model does not know
        (the message names the file, frame, atom and element).
    ConfigError
        Unknown output format, or npz output for frames with different atoms.
    CheckpointError
        Missing or damaged checkpoint, or one of another task.
    """
    kind = _output_kind(output)
    check_output_path(output, inputs=(path,))  # a bad output path fails before any work
    where = "<stdin>" if str(path) == "-" else str(path)
    positions, numbers, frame_numbers = read_structures(path, frames)
    if isinstance(checkpoint, ForceFieldPredictor):
        predictor = checkpoint
    else:
        if checkpoint is None:  # the pretrained model of the frames' molecule, if there is one
            checkpoint = default_checkpoint(sorted({hill_formula(z) for z in numbers}))
        predictor = ForceFieldPredictor.from_checkpoint(checkpoint, device=device, batch_size=batch_size,
                                                        compile=compile)
    if kind == "npz" and len({tuple(z.tolist()) for z in numbers}) > 1:
        raise ConfigError(f"{where}: frames hold different atoms, which one npz array cannot store; "
                          "write extended XYZ (.xyz) instead")
    # Frames with the same atoms run together, in batches.
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, z in enumerate(numbers):
        groups.setdefault(tuple(z.tolist()), []).append(i)
    energies = np.empty(len(positions), dtype=np.float64)
    forces: list[np.ndarray] = [np.empty(0)] * len(positions)
    warnings: list[str] = []
    for key, rows in groups.items():
        first = frame_numbers[rows[0]]
        group_positions = np.stack([positions[i] for i in rows])
        group_energies, group_forces = predictor.predict(group_positions, np.array(key, dtype=np.int64),
                                                         where=f"{where}: frame {first}")
        warnings += geometry_warnings(where, group_positions, np.array(key, dtype=np.int64),
                                       [frame_numbers[i] for i in rows])
        energies[rows] = group_energies
        for k, i in enumerate(rows):
            forces[i] = group_forces[k]
    meta = predictor.metadata
    result = ForcesPrediction(
        input=where, output=None if output is None else str(output),
        checkpoint=str(meta.get("checkpoint", "<model>")), energies=energies, forces=forces, positions=positions,
        atomic_numbers=numbers, frame_numbers=frame_numbers, model_molecule=meta.get("molecule"),
        model_formula=meta.get("formula"), warnings=warnings, extra={"device": str(predictor.device)})
    if kind == "npz":
        _write_npz(Path(output), result)
    elif kind == "xyz":
        _write_xyz(output, result)
    return result
