"""MD17 and revised MD17 (rMD17): download, verify, read and split.

Data are kept in the units of the files: positions in Å, energies in kcal/mol,
forces in kcal/mol/Å. Reports convert with :mod:`gaatool.units`
(1 kcal/mol = 43.364 meV).

Sources
-------
* MD17 (Chmiela et al., Sci. Adv. 3, e1603015 (2017)): the sGDML ``.npz``
  files listed at http://quantum-machine.org/gdml/#datasets, served from
  http://www.quantum-machine.org/gdml/data/npz/<file>. The ``md17_<mol>.npz``
  names (benzene: ``md17_benzene2017.npz``) are those used by PyTorch Geometric
  (``torch_geometric/datasets/md17.py``) and torchmd-net; older copies were
  called ``<mol>_dft.npz``. Each sGDML file embeds an ``md5`` fingerprint of
  its data (the algorithm of ``sgdml.utils.io.dataset_md5``), which is checked.
* rMD17 (Christensen & von Lilienfeld, Mach. Learn.: Sci. Technol. 1, 045018
  (2020); CC0 1.0): Figshare article 12672038, file ``rmd17.tar.bz2``
  (https://figshare.com/ndownloader/files/23950376), holding
  ``rmd17/npz_data/rmd17_<mol>.npz`` and ``rmd17/splits/index_{train,test}_0{1..5}.csv``.
  PyTorch Geometric now fetches the same archive from Materials Cloud
  (record 466), which serves as a mirror.

Frames in messages are counted from 1, as in :mod:`gaatool.io.xyz`.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ...data.store import npz_members
from ...errors import ConfigError, DownloadError, InputFileError
from ...io import download as _dl
from ...io.atomic import atomic_write_text
from ...io.text import check_input_file
from ...io.xyz import ELEMENTS, atomic_number, iter_xyz
from ...units import in_kcal_per_mol, kcal_per_mol_to_mev

__all__ = [
    "MOLECULES",
    "MolecularData",
    "load_md17",
    "read_molecular_file",
    "paper_split",
    "published_split",
    "sgdml_fingerprint",
]

#: The eight MD17 molecules of the benchmark, with their formulas.
MOLECULES: dict[str, str] = {
    "aspirin": "C9H8O4",
    "benzene": "C6H6",
    "ethanol": "C2H6O",
    "malonaldehyde": "C3H4O2",
    "naphthalene": "C10H8",
    "salicylic": "C7H6O3",
    "toluene": "C7H8",
    "uracil": "C4H4N2O2",
}
_ALIASES = {"salicylic_acid": "salicylic", "salicylic acid": "salicylic", "salicylic-acid": "salicylic",
            "malonaldehyd": "malonaldehyde", "napthalene": "naphthalene"}

#: Base address of the sGDML data files (see the module docstring for the source).
MD17_BASE_URL = "http://www.quantum-machine.org/gdml/data/npz/"
#: File name of each molecule's original MD17 trajectory on that server.
MD17_FILES: dict[str, str] = {
    "aspirin": "md17_aspirin.npz",
    "benzene": "md17_benzene2017.npz",  # the 2017 benzene trajectory used in MD17 benchmarks
    "ethanol": "md17_ethanol.npz",
    "malonaldehyde": "md17_malonaldehyde.npz",
    "naphthalene": "md17_naphthalene.npz",
    "salicylic": "md17_salicylic.npz",
    "toluene": "md17_toluene.npz",
    "uracil": "md17_uracil.npz",
}

#: rMD17 archive: the Figshare file first, then the Materials Cloud mirror used by PyTorch Geometric.
RMD17_URLS: tuple[str, ...] = (
    "https://figshare.com/ndownloader/files/23950376",
    "https://archive.materialscloud.org/record/file?filename=rmd17.tar.bz2&record_id=466",
)
#: Only a 12-digit SHA-256 prefix of rmd17.tar.bz2 is published (by the load-atoms package,
#: ``database/importers/rmd17.py``); it was not checked here because the archive could not be
#: fetched. The full checksum is unknown, so the extracted members are also checked structurally
#: (keys, shapes, dtypes, finite values, formula).
RMD17_SHA256: str | None = "cddeea2ec2c4"
RMD17_ARCHIVE_NAME = "rmd17.tar.bz2"
RMD17_SPLITS = (1, 2, 3, 4, 5)

_SGDML_KEYS = ("z", "R", "E", "F")
_RMD17_KEYS = ("nuclear_charges", "coords", "energies", "forces")
_UNITS = {"positions": "angstrom", "energies": "kcal/mol", "forces": "kcal/mol/angstrom"}


# --------------------------------------------------------------------------- data container


@dataclass
class MolecularData:
    """Frames of one molecule with energies and forces.

    Attributes
    ----------
    name
        Molecule name, e.g. ``"ethanol"``.
    atomic_numbers
        (n,) int64, the same for every frame.
    positions
        (F, n, 3) float64, Å.
    energies
        (F,) float64, kcal/mol.
    forces
        (F, n, 3) float64, kcal/mol/Å.
    provenance
        Where the data came from: ``url`` or ``file``, ``sha256`` of the file,
        ``fingerprint`` (sGDML md5 of z, R, E, F), ``fingerprint_verified`` ...
    splits
        Published rMD17 splits ``{1: {"train": (1000,), "test": (1000,)}, ...}``
        (0-based frame indices), or None.

    >>> d = MolecularData("h2", np.array([1, 1]), np.zeros((1, 2, 3)), np.zeros(1), np.zeros((1, 2, 3)))
    >>> d.n_frames, d.n_atoms, d.formula
    (1, 2, 'H2')
    """

    name: str
    atomic_numbers: np.ndarray
    positions: np.ndarray
    energies: np.ndarray
    forces: np.ndarray
    provenance: dict = field(default_factory=dict)
    splits: dict[int, dict[str, np.ndarray]] | None = None

    @property
    def n_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_atoms(self) -> int:
        return int(self.atomic_numbers.shape[0])

    @property
    def formula(self) -> str:
        """Hill formula (C first, then H, then the rest alphabetically)."""
        return _hill(self.atomic_numbers)

    def fingerprint(self) -> str:
        """sGDML fingerprint of the data stored as sGDML does (z uint8, float64 little-endian).

        Equals the ``md5`` key that sGDML would embed in an npz of these frames.
        """
        return sgdml_fingerprint(
            self.atomic_numbers.astype(np.uint8),
            self.positions.astype("<f8"),
            self.energies.astype("<f8").reshape(-1, 1),
            self.forces.astype("<f8"),
        )

    def subset(self, indices) -> "MolecularData":
        """The frames at ``indices`` (0-based), as a new object without published splits.

        >>> d = MolecularData("h2", np.array([1, 1]), np.zeros((3, 2, 3)), np.arange(3.0), np.zeros((3, 2, 3)))
        >>> d.subset([2, 0]).energies.tolist()
        [2.0, 0.0]
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -self.n_frames or idx.max() >= self.n_frames):
            raise ConfigError(f"{self.name}: frame index out of range for {self.n_frames} frames")
        provenance = dict(self.provenance, subset_of_frames=self.n_frames)
        return replace(self, positions=self.positions[idx], energies=self.energies[idx],
                       forces=self.forces[idx], provenance=provenance, splits=None)

    def to_dict(self) -> dict:
        """Summary for reports: sizes, formula, label statistics in meV, provenance."""
        energy_std = float(np.std(self.energies)) if self.n_frames else float("nan")
        force_rms = float(np.sqrt(np.mean(self.forces**2))) if self.forces.size else float("nan")
        return {
            "name": self.name,
            "formula": self.formula,
            "n_frames": self.n_frames,
            "n_atoms": self.n_atoms,
            "energy_std_mev": kcal_per_mol_to_mev(energy_std),
            "force_rms_mev_per_a": kcal_per_mol_to_mev(force_rms),
            "published_splits": sorted(self.splits) if self.splits else [],
            "provenance": dict(self.provenance),
        }


def _hill(atomic_numbers: np.ndarray) -> str:
    counts = Counter(ELEMENTS[int(z)] for z in atomic_numbers)
    if "C" in counts:
        order = ["C"] + (["H"] if "H" in counts else []) + sorted(s for s in counts if s not in ("C", "H"))
    else:
        order = sorted(counts)
    return "".join(f"{s}{counts[s] if counts[s] > 1 else ''}" for s in order)


def sgdml_fingerprint(z: np.ndarray, R: np.ndarray, E: np.ndarray, F: np.ndarray) -> str:
    """The sGDML dataset fingerprint: md5 over the md5 digests of z, R, E, F.

    Each array is hashed as its raw bytes in C order with its dtype and byte
    order as given (as stored in the file), as ``sgdml.utils.io.dataset_md5``
    does with ``hashlib.md5(array.ravel())``.

    >>> z, R, E, F = np.array([6], np.uint8), np.zeros((1, 1, 3)), np.zeros((1, 1)), np.ones((1, 1, 3))
    >>> inner = b"".join(hashlib.md5(a.ravel()).digest() for a in (z, R, E, F))
    >>> sgdml_fingerprint(z, R, E, F) == hashlib.md5(inner).hexdigest()
    True
    """
    outer = hashlib.md5()
    for array in (z, R, E, F):
        outer.update(hashlib.md5(np.asarray(array).tobytes(order="C")).digest())
    return outer.hexdigest()


# --------------------------------------------------------------------------- reading files


def _first_line(err: BaseException) -> str:
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__


def _reason(err: BaseException, where: str | os.PathLike) -> str:
    """The core of a one-line error: without its ``where: `` prefix and its advice after ``; ``."""
    return _first_line(err).removeprefix(f"{where}: ").split("; ")[0]


def _as_text(value: np.ndarray) -> str:
    item = value.item() if isinstance(value, np.ndarray) else value
    return item.decode("ascii", "replace") if isinstance(item, bytes) else str(item)


def _build(name: str, z, R, E, F, where: str) -> MolecularData:
    """Validate raw arrays and return them as a MolecularData in float64/int64."""
    z = np.asarray(z)
    if z.ndim != 1 or z.size == 0 or z.dtype.kind not in "iu":
        raise InputFileError(f"{where}: atomic numbers have shape {z.shape} and dtype {z.dtype}; "
                             "expected a 1-D integer array")
    if (z < 1).any() or (z > 118).any():
        raise InputFileError(f"{where}: atomic number {int(z[(z < 1) | (z > 118)][0])} is out of range 1-118")
    n = z.shape[0]
    R, E, F = np.asarray(R), np.asarray(E), np.asarray(F)
    for label, array in (("positions", R), ("energies", E), ("forces", F)):
        if array.dtype.kind not in "fiu":
            raise InputFileError(f"{where}: {label} have dtype {array.dtype}; expected numbers")
    if R.ndim != 3 or R.shape[1:] != (n, 3) or R.shape[0] == 0:
        raise InputFileError(f"{where}: positions have shape {R.shape}; expected (frames, {n}, 3) "
                             f"for {n} atoms")
    frames = R.shape[0]
    if E.shape not in ((frames,), (frames, 1)):
        raise InputFileError(f"{where}: energies have shape {E.shape}; expected ({frames},) or ({frames}, 1)")
    if F.shape != R.shape:
        raise InputFileError(f"{where}: forces have shape {F.shape}; expected {R.shape} like the positions")
    positions = R.astype(np.float64)
    energies = E.astype(np.float64).reshape(frames)
    forces = F.astype(np.float64)
    for label, array in (("positions", positions), ("energies", energies), ("forces", forces)):
        bad = ~np.isfinite(array.reshape(frames, -1)).all(axis=1)
        if bad.any():
            raise InputFileError(f"{where}: frame {int(np.argmax(bad))} has non-finite {label}; "
                                 "the file is damaged")
    return MolecularData(name=name, atomic_numbers=z.astype(np.int64), positions=positions,
                         energies=energies, forces=forces)


#: Labels of an rMD17 npz: its own (``rmd17``: PBE/def2-SVP, recomputed) or the original MD17 ones it keeps
#: in ``old_energies`` / ``old_forces`` (``md17``). They differ by far more than a model's error: the ethanol
#: model's force MAE on tests/files/md17/rmd17_ethanol_50.npz is 9.6 meV/Å against the one set and 182 against
#: the other (``gaatool evaluate forces pretrained/forces-ethanol.safetensors ... --labels md17|rmd17``).
LABEL_SETS = ("rmd17", "md17")


#: What reading a damaged npz raises: zip and deflate errors, and NotImplementedError for zip features
#: (a header's "version needed") that Python's zipfile does not support.
_NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError)

def _read_npz(path: Path, name: str | None = None, labels: str = "rmd17") -> MolecularData:
    """Read an sGDML (z, R, E, F) or rMD17 (nuclear_charges, coords, energies, forces) npz; ``labels`` picks an
    rMD17 file's label set (:data:`LABEL_SETS`)."""
    # Checked first: np.load would try to unpickle anything that is not npz/npy, and say so.
    if path.is_file() and not zipfile.is_zipfile(path):
        raise InputFileError(f"{path}: not an npz file (no zip archive inside); the file is damaged "
                             "or of another format")
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError as err:
        raise InputFileError(f"{path}: no such file; check the path") from err
    except _NPZ_ERRORS as err:
        raise InputFileError(f"{path}: not a readable npz file ({_first_line(err)})") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputFileError(f"{path}: holds a single array, not an npz archive of named arrays")
    with archive:
        keys = set(archive.files)
        try:
            if set(_SGDML_KEYS) <= keys:
                z, R, E, F = (archive[k] for k in _SGDML_KEYS)
                fmt = "sgdml-npz"
                stored = _as_text(archive["md5"]) if "md5" in keys else None
                file_name = _as_text(archive["name"]) if "name" in keys else None
            elif set(_RMD17_KEYS) <= keys:
                z, R, E, F = (archive[k] for k in _RMD17_KEYS)
                if labels == "md17":
                    if not {"old_energies", "old_forces"} <= keys:
                        raise InputFileError(f"{path}: has no old_energies / old_forces (the original MD17 labels)")
                    E, F = archive["old_energies"], archive["old_forces"]
                fmt, stored, file_name = "rmd17-npz", None, None
            else:
                raise InputFileError(
                    f"{path}: npz keys {sorted(keys)} are neither sGDML (R, E, F, z) nor rMD17 "
                    "(coords, energies, forces, nuclear_charges)"
                )
        except InputFileError:
            raise
        except _NPZ_ERRORS as err:
            raise InputFileError(f"{path}: damaged npz file ({_first_line(err)}); replace it with a good copy") from err
    # Hash the arrays exactly as stored: converting dtype or byte order first would change the digest.
    fingerprint = sgdml_fingerprint(z, R, E, F)
    if stored is not None and stored != fingerprint:
        raise InputFileError(
            f"{path}: data fingerprint {fingerprint} does not match the embedded md5 {stored}; "
            "the file is corrupted or was edited"
        )
    data = _build(name or file_name or path.stem, z, R, E, F, str(path))
    data.provenance.update(format=fmt, fingerprint=fingerprint, fingerprint_verified=stored is not None)
    if fmt == "rmd17-npz":
        data.provenance.update(labels=labels)
    return data


def _read_xyz_data(path, name: str | None) -> MolecularData:
    where = "<stdin>" if str(path) == "-" else str(path)
    symbols0 = None
    positions, energies, forces = [], [], []
    for i, frame in enumerate(iter_xyz(path)):  # frames from 0, as every reader counts them
        if symbols0 is None:
            symbols0 = frame.symbols
        elif frame.symbols.shape != symbols0.shape:
            raise InputFileError(f"{where}: frame {i} has {frame.n_atoms} atoms, but frame 0 has "
                                 f"{symbols0.shape[0]}; all frames must be the same molecule")
        elif (frame.symbols != symbols0).any():
            k = int(np.argmax(frame.symbols != symbols0))
            raise InputFileError(f"{where}: frame {i} atom {k + 1} is {frame.symbols[k]}, but it is "
                                 f"{symbols0[k]} in frame 0; all frames must list atoms in the same order")
        energy = frame.info.get("energy")
        if not isinstance(energy, (int, float, np.integer, np.floating)) or isinstance(energy, bool):
            raise InputFileError(f"{where}: frame {i} has no numeric energy (extended XYZ key energy=, "
                                 "or the sGDML comment line)")
        if "forces" not in frame.arrays:
            raise InputFileError(f"{where}: frame {i} has no forces (Properties ...:forces:R:3, "
                                 "or sGDML columns sym x y z fx fy fz)")
        f = frame.arrays["forces"]
        if f.shape != (frame.n_atoms, 3) or f.dtype.kind != "f":
            raise InputFileError(f"{where}: frame {i} forces have shape {f.shape}; expected ({frame.n_atoms}, 3)")
        energy_scale, forces_scale = _label_scales(frame.info, where, i)
        positions.append(frame.positions)
        energies.append(float(energy) * energy_scale)
        forces.append(f * forces_scale)
    z = np.array([atomic_number(s) for s in symbols0], dtype=np.int64)
    stem = "stdin" if where == "<stdin>" else Path(path).stem
    data = _build(name or stem, z, np.stack(positions), np.array(energies), np.stack(forces), where)
    data.provenance.update(format="xyz", fingerprint=data.fingerprint(), fingerprint_verified=False)
    return data


def _label_scales(info: dict, where: str, frame: int) -> tuple[float, float]:
    """Factors to kcal/mol and kcal/mol/Å of a frame's labels: its ``energy_unit=`` and ``forces_unit=`` keys
    (as ``gaatool predict forces`` writes them, in eV), else MD17's kcal/mol and kcal/mol/Å."""
    scales = []
    for key, default, forces in (("energy_unit", "kcal/mol", False), ("forces_unit", "kcal/mol/A", True)):
        unit = info.get(key, default)
        scale = in_kcal_per_mol(unit, forces=forces)
        if scale is None:
            known = "eV, kcal/mol, kJ/mol, meV, Hartree" + (", per A or per Bohr" if forces else "")
            raise InputFileError(f"{where}: frame {frame} has {key}={unit!r}, a unit gaatool does not know; "
                                 f"use one of {known}")
        scales.append(scale)
    return scales[0], scales[1]


def check_labels(labels: str) -> None:
    """ConfigError unless ``labels`` names one of :data:`LABEL_SETS`."""
    if labels not in LABEL_SETS:
        raise ConfigError(f"labels must be one of {', '.join(LABEL_SETS)}, got {labels!r}")


def has_md17_labels(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an rMD17 npz that keeps the original MD17 labels (``old_energies``, ``old_forces``)."""
    return {"nuclear_charges", "old_energies", "old_forces"} <= npz_members(path)


def trained_labels(metadata: dict) -> str:
    """``md17`` or ``rmd17``: the label set a forces checkpoint was trained on, from its data provenance."""
    provenance = metadata.get("data", {}).get("provenance", {})
    revised = provenance.get("revised") or (provenance.get("format") == "rmd17-npz"
                                            and provenance.get("labels", "rmd17") == "rmd17")
    return "rmd17" if revised else "md17"


def read_molecular_file(path: str | os.PathLike, name: str | None = None, labels: str = "rmd17") -> MolecularData:
    """Read frames with energies and forces from a local file.

    Accepted: an sGDML npz (keys ``R, E, F, z``; an embedded ``md5`` is
    verified), an rMD17 npz (``coords, energies, forces, nuclear_charges``),
    the sGDML xyz export, or extended XYZ with ``species``/``pos``/``forces``
    columns and ``energy=`` per frame. ``"-"`` reads XYZ from stdin.
    Units are taken as Å, kcal/mol and kcal/mol/Å (the MD17 convention).
    ``labels="md17"`` reads an rMD17 npz's original MD17 labels (``old_*``)
    instead of its own.

    Raises
    ------
    InputFileError
        Unreadable file, unknown keys, frames with different atoms, missing
        energies or forces, non-finite values, fingerprint mismatch.
    """
    if str(path) == "-":
        data = _read_xyz_data("-", name)
        data.provenance.update(source="file", file="-", units=dict(_UNITS))
        return data
    path = Path(path)
    check_input_file(path, "a file of labelled frames")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    check_labels(labels)
    if path.suffix.lower() == ".npz" or magic.startswith(b"PK"):
        data = _read_npz(path, name, labels)
    else:
        data = _read_xyz_data(path, name)
    data.provenance.update(source="file", file=str(path), sha256=_dl.sha256_file(path), units=dict(_UNITS))
    return data


# --------------------------------------------------------------------------- the benchmark


def _canonical(molecule: str) -> str:
    key = str(molecule).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in MOLECULES:
        raise ConfigError(f"unknown MD17 molecule {molecule!r}; choose one of {', '.join(MOLECULES)}")
    return key


def _check_formula(data: MolecularData, molecule: str, where: str) -> None:
    expected = MOLECULES[molecule]
    if data.formula != expected:
        raise InputFileError(f"{where}: holds {data.formula}, but {molecule} is {expected}; "
                             "pass the file of the right molecule")


def _read_splits(files: dict[int, dict[str, Path]], n_frames: int, where: str) -> dict[int, dict[str, np.ndarray]]:
    splits: dict[int, dict[str, np.ndarray]] = {}
    for number, parts in files.items():
        splits[number] = {}
        for part, path in parts.items():
            values = []
            with open(path, encoding="ascii", errors="replace") as handle:
                for line_no, line in enumerate(handle, start=1):
                    text = line.strip()
                    if not text:
                        continue
                    if not text.isdigit():
                        raise InputFileError(f"{path}: line {line_no}: {text[:20]!r} is not a frame index")
                    values.append(int(text))
            idx = np.array(values, dtype=np.int64)
            if idx.size == 0 or idx.max() >= n_frames:
                raise InputFileError(f"{path}: split indices must be 0-based frame indices below "
                                     f"{n_frames} ({where})")
            splits[number][part] = idx
    return splits


def _fetch(urls: tuple[str, ...], dest: Path, sha256: str | None, verify, timeout: float, progress) -> tuple[Path, str]:
    """Download from the first address that works; returns (path, url)."""
    errors = []
    for url in urls:
        try:
            return _dl.download(url, dest, sha256=sha256, verify=verify, timeout=timeout, progress=progress), url
        except DownloadError as err:
            errors.append(err)
    if len(errors) == 1:
        raise errors[0]
    reasons = "; ".join(f"{url}: {_reason(err, url)}" for url, err in zip(urls, errors))
    raise DownloadError(f"{reasons}; retry, or download it yourself and pass --from FILE") from errors[-1]


def _load_md17_cached(molecule: str, root: Path, download: bool, timeout: float, progress) -> MolecularData:
    file_name = MD17_FILES[molecule]
    url = MD17_BASE_URL + file_name
    dest = root / "md17" / file_name

    def verify(path: Path) -> None:
        data = _read_npz(path, molecule)
        _check_formula(data, molecule, str(path))
        if not data.provenance["fingerprint_verified"]:
            # Every official sGDML file embeds its fingerprint; a file without one is not the official file.
            raise InputFileError(f"{path}: no embedded md5 fingerprint, so it is not the official sGDML file")

    for attempt in range(2):
        if not dest.is_file():
            if not download:
                raise DownloadError(f"{url}: {molecule} is not in the cache ({dest}) and downloads are off; "
                                    "allow downloads, or download it yourself and pass --from FILE")
            _fetch((url,), dest, None, verify, timeout, progress)
        try:
            data = _read_npz(dest, molecule)
            _check_formula(data, molecule, str(dest))
            break
        except InputFileError as err:
            # A cached file that no longer verifies is removed and fetched again, once.
            _remove_damaged([dest], err)
            if attempt or not download:
                raise DownloadError(f"{dest}: cached file was damaged and has been removed "
                                    f"({_reason(err, dest)}); "
                                    "retry, or download it yourself and pass --from FILE") from err
    data.provenance.update(source="download", url=url, file=str(dest), sha256=_dl.sha256_file(dest))
    return data


def _remove_damaged(paths, err: BaseException) -> None:
    """Remove damaged cache files; one that cannot be (a read-only shared cache) is a one-line error."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as unlink_err:
            raise DownloadError(f"{path}: cached file is damaged ({_reason(err, path)}) and cannot be removed "
                                f"({unlink_err.strerror or unlink_err}), so delete or replace it or use another "
                                f"cache folder (--cache or ${_dl.CACHE_ENV_VAR}); "
                                "retry, or download it yourself and pass --from FILE") from err


def _checksum_file(path: Path) -> Path:
    """Where the SHA-256 of an extracted rMD17 member is kept: ``<member>.sha256`` next to it."""
    return path.with_name(path.name + ".sha256")


def _extracted_files(members: dict[str, Path]) -> list[Path]:
    """The extracted members and their recorded checksums."""
    return [q for p in members.values() for q in (p, _checksum_file(p))]


def _member_digests(members: dict[str, Path]) -> dict[Path, str]:
    """The SHA-256 of each extracted member, computed once per load (checks, records, provenance)."""
    return {path: _dl.sha256_file(path) for path in members.values()}


def _record_checksums(digests: dict[Path, str]) -> None:
    """Write each extracted member's SHA-256 beside it (skipped in a cache that cannot be written)."""
    for path, digest in digests.items():
        with contextlib.suppress(OSError):
            atomic_write_text(_checksum_file(path), f"{digest}  {path.name}\n")


def _changed_members(digests: dict[Path, str]) -> list[Path]:
    """Extracted members whose bytes differ from the SHA-256 recorded when they were extracted.

    The structural checks cannot see an edited coordinate or split index; the checksum does. A member
    without a recorded checksum (extracted by an older gaatool) is checked structurally, then recorded.
    """
    changed = []
    for path, digest in digests.items():
        try:
            recorded = _checksum_file(path).read_text().split()[0]
        except (OSError, IndexError):
            continue
        if digest != recorded:
            changed.append(path)
    return changed


def _rmd17_members(molecule: str, root: Path) -> dict[str, Path]:
    members = {f"rmd17/npz_data/rmd17_{molecule}.npz": root / "rmd17" / "npz_data" / f"rmd17_{molecule}.npz"}
    for number in RMD17_SPLITS:
        for part in ("train", "test"):
            name = f"rmd17/splits/index_{part}_{number:02d}.csv"
            members[name] = root / "rmd17" / "splits" / f"index_{part}_{number:02d}.csv"
    return members


def _load_rmd17_from_members(molecule: str, members: dict[str, Path], where: str) -> MolecularData:
    npz = members[f"rmd17/npz_data/rmd17_{molecule}.npz"]
    data = _read_npz(npz, molecule)
    if data.provenance["format"] != "rmd17-npz":
        raise InputFileError(f"{npz}: expected the rMD17 keys (coords, energies, forces, nuclear_charges)")
    _check_formula(data, molecule, str(npz))
    files = {n: {p: members[f"rmd17/splits/index_{p}_{n:02d}.csv"] for p in ("train", "test")}
             for n in RMD17_SPLITS}
    data.splits = _read_splits(files, data.n_frames, where)
    return data


def _load_rmd17(molecule: str, root: Path, archive: Path | None, download: bool, timeout: float,
                progress) -> MolecularData:
    members = _rmd17_members(molecule, root)
    from_user = archive is not None
    provenance: dict = {}
    damaged = False
    npz = members[f"rmd17/npz_data/rmd17_{molecule}.npz"]
    if not from_user and all(p.is_file() for p in members.values()):
        digests = _member_digests(members)
        changed = _changed_members(digests)
        error: InputFileError | None = None
        if changed:
            error = InputFileError(f"{changed[0]}: its SHA-256 differs from the one recorded when it was extracted")
        else:
            try:
                data = _load_rmd17_from_members(molecule, members, str(root / "rmd17"))
            except InputFileError as err:
                error = err
        if error is None:
            _record_checksums({p: d for p, d in digests.items() if not _checksum_file(p).is_file()})
            data.provenance.update(source="download", file=str(npz), sha256=digests[npz])
            return data
        # Damaged extracted files are removed and extracted again from the archive (cached or downloaded).
        _remove_damaged(_extracted_files(members), error)
        damaged = True
    if archive is None:
        archive = root / "rmd17" / RMD17_ARCHIVE_NAME
        if download:
            _, url = _fetch(RMD17_URLS, archive, RMD17_SHA256, None, timeout, progress)
            provenance["url"] = url
        elif not archive.is_file():
            what = "its extracted files were damaged and have been removed, and the archive" if damaged else "rMD17"
            raise DownloadError(f"{RMD17_URLS[0]}: {what} is not in the cache ({archive}) and downloads "
                                "are off; allow downloads, or download rmd17.tar.bz2 yourself and pass --from FILE")
    try:
        _dl.extract_members(archive, members)
        data = _load_rmd17_from_members(molecule, members, str(archive))
    except InputFileError as err:
        _remove_damaged(_extracted_files(members), err)
        if from_user:
            raise
        # The archive passed its checksum prefix but not the content checks: drop it from the cache.
        _remove_damaged([archive], err)
        raise DownloadError(f"{archive}: the rMD17 archive failed verification ({_reason(err, archive)}); "
                            "it was removed; "
                            "retry, or download it yourself and pass --from FILE") from err
    digests = _member_digests(members)
    _record_checksums(digests)
    provenance.update(archive=str(archive), archive_sha256=_dl.sha256_file(archive))
    data.provenance.update(source="file" if from_user else "download", file=str(npz),
                           sha256=digests[npz], **provenance)
    return data


def load_md17(
    molecule: str,
    revised: bool = False,
    source: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    download: bool = True,
    *,
    timeout: float = 60,
    progress: Callable[[int, int | None], None] | None = None,
    labels: str = "rmd17",
) -> MolecularData:
    """Load one molecule of MD17 (or rMD17 with ``revised=True``), downloading it if needed.

    Parameters
    ----------
    molecule
        One of :data:`MOLECULES` (case-insensitive).
    revised
        Use the revised MD17 (PBE/def2-SVP, 100,000 frames, published splits).
    source
        A local file instead of the download (``--from FILE``): any file
        :func:`read_molecular_file` reads, or for ``revised`` the official
        ``rmd17.tar.bz2`` (its members are extracted into the cache).
    cache
        Cache folder; default :func:`gaatool.io.download.cache_dir`.
    download
        If False, never use the network: the data must be cached or given.
    timeout, progress
        Passed to :func:`gaatool.io.download.download`.
    labels
        For a ``source`` rMD17 npz: ``rmd17`` (its own) or ``md17`` (the original labels, ``old_*``).

    Returns
    -------
    MolecularData
        Positions in Å, energies in kcal/mol, forces in kcal/mol/Å.

    Raises
    ------
    ConfigError
        Unknown molecule.
    DownloadError
        Download failed, or the downloaded file failed verification.
    InputFileError
        ``source`` is unreadable or holds another molecule.
    """
    molecule = _canonical(molecule)
    root = _dl.cache_dir(cache)
    if source is not None:
        src = Path(source)
        if revised and str(source) != "-" and src.is_file() and _is_archive(src):
            data = _load_rmd17(molecule, root, src, download=False, timeout=timeout, progress=progress)
        else:
            data = read_molecular_file(source, name=molecule, labels=labels)
            _check_formula(data, molecule, str(source))
    elif revised:
        data = _load_rmd17(molecule, root, None, download, timeout, progress)
    else:
        data = _load_md17_cached(molecule, root, download, timeout, progress)
    data.provenance.update(molecule=molecule, revised=bool(revised), units=dict(_UNITS))
    return data


def _is_archive(path: Path) -> bool:
    """A tar file, or a zip that is not an npz (an npz is itself a zip)."""
    import tarfile

    if path.suffix.lower() == ".npz":
        return False
    try:
        return tarfile.is_tarfile(path) or (path.suffix.lower() == ".zip" and zipfile.is_zipfile(path))
    except OSError:
        return False


# --------------------------------------------------------------------------- splits


def paper_split(n_frames: int, seed: int, n_train: int = 1000, n_val: int = 1000,
                n_test: int = 1000) -> dict[str, np.ndarray]:
    """Random disjoint train/val/test frame indices (0-based, sorted), reproducible from ``seed``.

    The paper trains each molecule on 1,000 frames and validates and tests on
    1,000 more each.

    >>> s = paper_split(10, seed=0, n_train=5, n_val=2, n_test=3)
    >>> sorted(np.concatenate(list(s.values())).tolist()) == list(range(10))
    True
    """
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    for part, size in sizes.items():
        if int(size) != size or size < 0:
            raise ConfigError(f"n_{part} = {size}; it must be a non-negative integer")
    need = int(n_train + n_val + n_test)
    if need > n_frames:
        raise ConfigError(f"the split needs {need} frames ({n_train} train, {n_val} val, {n_test} test), "
                          f"but the data has {n_frames}; use fewer frames per part")
    order = np.random.default_rng(seed).permutation(n_frames)
    out, start = {}, 0
    for part, size in sizes.items():
        size = int(size)
        out[part] = np.sort(order[start:start + size])
        start += size
    return out


def published_split(data: MolecularData, split: int = 1, n_val: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """rMD17's published split ``split`` (1-5) for train and test, plus a seeded validation set.

    The published splits give 1,000 train and 1,000 test frames; the
    validation frames are drawn at random (from ``seed``) among the frames in
    neither.
    """
    if not data.splits:
        raise ConfigError(f"{data.name}: no published splits (only rMD17 ships them); use paper_split")
    if split not in data.splits:
        raise ConfigError(f"{data.name}: published split {split} does not exist; choose one of "
                          f"{', '.join(str(s) for s in sorted(data.splits))}")
    train, test = data.splits[split]["train"], data.splits[split]["test"]
    rest = np.setdiff1d(np.arange(data.n_frames), np.union1d(train, test))
    if n_val > rest.size:
        raise ConfigError(f"{data.name}: {n_val} validation frames requested, but only {rest.size} frames "
                          "are outside the published train and test sets")
    val = np.sort(np.random.default_rng(seed).choice(rest, size=n_val, replace=False))
    return {"train": np.sort(train), "val": val, "test": np.sort(test)}
