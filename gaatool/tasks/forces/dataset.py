"""Build and read force-field datasets (paper, "Molecule force regression").

A dataset holds one molecule's frames in three splits, in the units of MD17:
positions in Å, energies in kcal/mol, forces in kcal/mol/Å. Reports convert
to meV and meV/Å with :mod:`gaatool.units` (1 kcal/mol = 43.364 meV).

Arrays of the saved file (store format, :mod:`gaatool.data.store`, task ``"forces"``):

* ``atomic_numbers`` (n,) int64, the same for every frame;
* ``{split}/positions`` (M, n, 3) float64, Å;
* ``{split}/energies`` (M,) float64, kcal/mol;
* ``{split}/forces`` (M, n, 3) float64, kcal/mol/Å;
* ``{split}/indices`` (M,) int64, 0-based frame indices into the source data,

for ``split`` in ``train``, ``val``, ``test``. The metadata names the molecule,
the units, the provenance (download address or local file, SHA-256, sGDML
fingerprint) and how the split was drawn.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ...data.splits import SPLIT_NAMES
from ...data.store import is_dataset_file, load_dataset, save_dataset
from ...errors import ConfigError, InputFileError
from ...io.xyz import ELEMENTS
from ...units import kcal_per_mol_to_mev
from .md17 import MolecularData, check_labels, load_md17, paper_split, published_split, read_molecular_file
from .md17 import _hill as hill_formula

__all__ = [
    "TASK",
    "UNITS",
    "SPLIT_KINDS",
    "ForcesSplit",
    "ForcesDataset",
    "build_md17_dataset",
    "load_forces_dataset",
    "load_frames_or_dataset",
]

TASK = "forces"
#: Units of every forces dataset (those of MD17); other units are refused on reading.
UNITS = {"positions": "angstrom", "energies": "kcal/mol", "forces": "kcal/mol/angstrom"}
SPLIT_KINDS = ("paper", "published")
_PAPER_SIZE = 1000  # the paper trains, validates and tests on 1,000 frames each


@dataclass
class ForcesSplit:
    """One split of a forces dataset.

    Attributes
    ----------
    positions : (M, n, 3) float64, Å
    energies : (M,) float64, kcal/mol
    forces : (M, n, 3) float64, kcal/mol/Å
    indices : (M,) int64, 0-based frame indices into the source data
    """

    positions: np.ndarray
    energies: np.ndarray
    forces: np.ndarray
    indices: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.positions.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """Frame count and label statistics in meV and meV/Å."""
        return {
            "n_frames": self.n_frames,
            "energy_std_mev": kcal_per_mol_to_mev(float(np.std(self.energies))) if self.n_frames else None,
            "force_rms_mev_per_a": kcal_per_mol_to_mev(float(np.sqrt(np.mean(self.forces**2))))
            if self.n_frames else None,
        }


@dataclass
class ForcesDataset:
    """Frames of one molecule split into train, val and test.

    Attributes
    ----------
    name : str
        Molecule name, e.g. ``"ethanol"``.
    atomic_numbers : (n,) int64
    splits : dict[str, ForcesSplit]
        ``"train"``, ``"val"`` and ``"test"``.
    metadata : dict
        Units, provenance and split settings, as stored in the file.
    path : Path or None
        The file it was read from or written to.

    >>> z = np.array([1, 1])
    >>> part = ForcesSplit(np.zeros((2, 2, 3)), np.zeros(2), np.ones((2, 2, 3)), np.arange(2))
    >>> d = ForcesDataset("h2", z, {"train": part, "val": part, "test": part})
    >>> d.formula, d.to_dict()["splits"]["train"]["force_rms_mev_per_a"]
    ('H2', 43.364)
    """

    name: str
    atomic_numbers: np.ndarray
    splits: dict[str, ForcesSplit]
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def n_atoms(self) -> int:
        return int(self.atomic_numbers.shape[0])

    @property
    def formula(self) -> str:
        """Hill formula, e.g. ``"C2H6O"``."""
        return hill_formula(self.atomic_numbers)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays of the dataset file (see the module docstring)."""
        out: dict[str, np.ndarray] = {"atomic_numbers": self.atomic_numbers.astype(np.int64)}
        for name, part in self.splits.items():
            out[f"{name}/positions"] = part.positions
            out[f"{name}/energies"] = part.energies
            out[f"{name}/forces"] = part.forces
            out[f"{name}/indices"] = part.indices.astype(np.int64)
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the dataset file atomically; sets and returns :attr:`path`."""
        meta = {key: value for key, value in self.metadata.items() if key not in ("format_version", "gaatool_version")}
        meta.update(task=TASK, molecule=self.name, formula=self.formula, n_atoms=self.n_atoms,
                    atomic_numbers=self.atomic_numbers.tolist(), units=dict(UNITS))
        self.path = save_dataset(path, self.arrays(), meta)
        self.metadata = meta
        return self.path

    def to_dict(self) -> dict[str, Any]:
        """Summary for reports: molecule, sizes, per-split statistics (meV, meV/Å), provenance."""
        provenance = self.metadata.get("provenance", {})
        return {
            "path": str(self.path) if self.path is not None else None,
            "molecule": self.name,
            "formula": self.formula,
            "n_atoms": self.n_atoms,
            "elements": [ELEMENTS[int(z)] for z in self.atomic_numbers],
            "units": dict(UNITS),
            "split": dict(self.metadata.get("split", {})),
            "splits": {name: part.to_dict() for name, part in self.splits.items()},
            "source": provenance.get("url") or provenance.get("file"),
            "sha256": provenance.get("sha256"),
            "fingerprint": provenance.get("fingerprint"),
            "fingerprint_verified": provenance.get("fingerprint_verified"),
        }


def _sizes(n_train, n_val, n_test, default) -> dict[str, int | None]:
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    for part, size in sizes.items():
        # 0 is allowed: e.g. a test-only dataset of held-out frames for `evaluate forces`
        if size is not None and (int(size) != size or size < 0):
            raise ConfigError(f"--n-{part} {size}: it must be a non-negative integer")
    return {part: (default if size is None else int(size)) for part, size in sizes.items()}


def _choose_split(data: MolecularData, split: str, seed: int, sizes: dict[str, int | None],
                  published_index: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if split == "paper":
        chosen = {part: size if size is not None else _PAPER_SIZE for part, size in sizes.items()}
        indices = paper_split(data.n_frames, seed, chosen["train"], chosen["val"], chosen["test"])
        return indices, {"kind": "paper", "seed": seed, **{f"n_{p}": int(len(i)) for p, i in indices.items()}}
    indices = published_split(data, published_index, n_val=sizes["val"] or _PAPER_SIZE, seed=seed)
    rng = np.random.default_rng(seed)
    for part in ("train", "test"):
        size = sizes[part]
        if size is not None:
            if size > len(indices[part]):
                raise ConfigError(f"--n-{part} {size}: published split {published_index} has only "
                                  f"{len(indices[part])} {part} frames")
            # A seeded subset keeps smaller runs reproducible and inside the published set.
            indices[part] = np.sort(rng.choice(indices[part], size=size, replace=False))
    return indices, {"kind": "published", "published_split": published_index, "seed": seed,
                     **{f"n_{p}": int(len(i)) for p, i in indices.items()}}


def build_md17_dataset(
    molecule: str | None = None,
    *,
    source: str | os.PathLike | None = None,
    revised: bool = False,
    split: str = "paper",
    seed: int = 0,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    published_index: int = 1,
    cache: str | os.PathLike | None = None,
    download: bool = True,
    output: str | os.PathLike | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    labels: str = "rmd17",
) -> ForcesDataset:
    """Build a train/val/test dataset of one MD17 (or rMD17) molecule.

    Parameters
    ----------
    molecule
        One of :data:`gaatool.tasks.forces.md17.MOLECULES`; may be omitted with
        ``source``, which then need not be an MD17 molecule.
    source
        A local file instead of the download (``--from FILE``): an sGDML or
        rMD17 npz, sGDML xyz, extended XYZ, or (``revised``) ``rmd17.tar.bz2``.
    revised
        rMD17 instead of MD17.
    split
        ``"paper"``: seeded random 1000/1000/1000 frames (sizes from
        ``n_train``, ``n_val``, ``n_test``); ``"published"``: rMD17's published
        split ``published_index`` (1-5) for train and test plus a seeded
        validation set; given sizes then draw seeded subsets of it.
    seed
        Seeds the random choices.
    cache, download, progress
        See :func:`gaatool.tasks.forces.md17.load_md17`.
    labels
        For a ``source`` rMD17 npz: its own labels (``rmd17``) or the original MD17 ones it keeps (``md17``).
    output
        If given, the dataset file is written there (atomically).

    Returns
    -------
    ForcesDataset

    Raises
    ------
    ConfigError
        Unknown molecule or split, too few frames for the requested sizes,
        published split without rMD17 data.
    DownloadError, InputFileError
        From loading the data.
    """
    if split not in SPLIT_KINDS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_KINDS)}")
    if molecule is None and source is None:
        raise ConfigError("name a molecule (--molecule) or give a local file (--from FILE)")
    check_labels(labels)  # before a download
    if molecule is None:
        data = read_molecular_file(source, labels=labels)
        data.provenance.update(molecule=data.name, revised=bool(revised))
    else:
        data = load_md17(molecule, revised=revised, source=source, cache=cache, download=download,
                         progress=progress, labels=labels)
    indices, split_meta = _choose_split(data, split, seed, _sizes(n_train, n_val, n_test, None), published_index)
    split_meta["source_frames"] = data.n_frames
    parts = {
        name: ForcesSplit(data.positions[idx], data.energies[idx], data.forces[idx], np.asarray(idx, np.int64))
        for name, idx in indices.items()
    }
    metadata = {"provenance": dict(data.provenance), "split": split_meta, "revised": bool(revised)}
    dataset = ForcesDataset(data.name, data.atomic_numbers.astype(np.int64), parts, metadata)
    if output is not None:
        dataset.save(output)
    return dataset


def _array(arrays: dict[str, np.ndarray], key: str, path: Path) -> np.ndarray:
    if key not in arrays:
        raise InputFileError(f"{path}: forces dataset lacks the array {key!r}; rebuild it with `gaatool data md17`")
    return arrays[key]


def load_forces_dataset(path: str | os.PathLike) -> ForcesDataset:
    """Read a dataset file written by :func:`build_md17_dataset` (or ``gaatool data md17``).

    Raises
    ------
    InputFileError
        Missing or damaged file, a dataset of another task, missing arrays,
        inconsistent shapes, non-finite values or units other than MD17's.
    """
    path = Path(path)
    arrays, meta = load_dataset(path, expected_task=TASK)
    units = meta.get("units", {})
    if units != UNITS:
        raise InputFileError(f"{path}: units {units} are not {UNITS}; rebuild it with `gaatool data md17`")
    z = np.asarray(_array(arrays, "atomic_numbers", path))
    if z.ndim != 1 or z.size == 0 or z.dtype.kind not in "iu" or (z < 1).any() or (z >= len(ELEMENTS)).any():
        raise InputFileError(f"{path}: atomic_numbers must be a 1-D array of atomic numbers; rebuild it")
    n = z.shape[0]
    splits = {}
    for name in SPLIT_NAMES:
        positions = _array(arrays, f"{name}/positions", path)
        energies = _array(arrays, f"{name}/energies", path)
        forces = _array(arrays, f"{name}/forces", path)
        indices = _array(arrays, f"{name}/indices", path)
        frames = positions.shape[0] if positions.ndim == 3 else -1
        if (positions.shape != (frames, n, 3) or forces.shape != positions.shape or energies.shape != (frames,)
                or indices.shape != (frames,)):
            raise InputFileError(f"{path}: {name} arrays have inconsistent shapes (positions {positions.shape}, "
                                 f"energies {energies.shape}, forces {forces.shape}) for {n} atoms; rebuild it")
        for label, array in (("positions", positions), ("energies", energies), ("forces", forces)):
            if array.dtype.kind != "f" or not np.isfinite(array).all():
                raise InputFileError(f"{path}: {name}/{label} holds non-finite or non-float values; rebuild it")
        splits[name] = ForcesSplit(positions.astype(np.float64), energies.astype(np.float64),
                                   forces.astype(np.float64), indices.astype(np.int64))
    name = str(meta.get("molecule", path.stem))
    return ForcesDataset(name, z.astype(np.int64), splits, meta, path)


def load_frames_or_dataset(path: str | os.PathLike, labels: str = "rmd17") -> ForcesDataset:
    """A dataset file of ``gaatool data md17``, or any file of frames with energies and forces
    (:func:`~.md17.read_molecular_file`: MD17 / rMD17 npz, sGDML or extended XYZ) as a dataset whose
    test split holds all its frames, in file order (train and val empty): what a user evaluating a
    model on frames of their own has. ``labels``: an rMD17 file's label set (``rmd17``, or ``md17``
    for the original labels it keeps).
    """
    if is_dataset_file(path):
        return load_forces_dataset(path)
    data = read_molecular_file(path, labels=labels)
    n = data.atomic_numbers.shape[0]
    empty = ForcesSplit(np.zeros((0, n, 3)), np.zeros(0), np.zeros((0, n, 3)), np.zeros(0, dtype=np.int64))
    frames = ForcesSplit(data.positions, data.energies, data.forces, np.arange(data.n_frames, dtype=np.int64))
    return ForcesDataset(data.name, data.atomic_numbers, {"train": empty, "val": empty, "test": frames},
                         metadata={"units": dict(UNITS), "provenance": dict(data.provenance), "frames_file": True},
                         path=Path(path))
