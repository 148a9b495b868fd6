"""Dataset files: one ``.npz`` of plain numeric arrays plus JSON metadata, no pickle.

The metadata (a JSON object) is stored inside the same archive as a uint8
array of UTF-8 bytes under the key :data:`METADATA_KEY`, so a dataset is one
file that ``numpy.load(path, allow_pickle=False)`` reads. Every metadata object
carries ``"task"`` (e.g. ``"crystal"``) and ``"format_version"``; readers check
both. Files are written atomically (temp file + rename).
"""
from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._version import __version__
from ..errors import InputFileError
from ..io.atomic import atomic_path
from ..io.text import check_input_file

__all__ = ["save_dataset", "load_dataset", "read_metadata", "is_dataset_file", "npz_members", "METADATA_KEY", "FORMAT_VERSION"]

#: Archive member holding the JSON metadata (UTF-8 bytes as uint8).
METADATA_KEY = "__gaatool_metadata__"
#: Version of the dataset file layout written by this gaatool.
FORMAT_VERSION = 1

# What numpy/zipfile raise on truncated or corrupted archives and members.
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def save_dataset(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, Any]) -> Path:
    """Write ``arrays`` and ``metadata`` to one ``.npz`` file, atomically.

    Parameters
    ----------
    path : path-like
        Target file; written as given (no ``.npz`` is appended).
    arrays : mapping of str to numpy.ndarray
        Numeric or boolean arrays (or fixed-width strings); names may contain
        ``/`` (e.g. ``"train/r_ij"``). Object arrays are refused because they
        would need pickle to load.
    metadata : mapping
        JSON-serialisable; must contain ``"task"``. ``format_version`` and
        ``gaatool_version`` are added.

    Returns
    -------
    pathlib.Path
        The written file.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.npz"
    >>> _ = save_dataset(p, {"x": np.arange(3)}, {"task": "demo"})
    >>> arrays, meta = load_dataset(p, expected_task="demo")
    >>> arrays["x"].tolist(), meta["task"]
    ([0, 1, 2], 'demo')
    """
    path = Path(path)
    if "task" not in metadata:
        raise ValueError("dataset metadata must contain 'task'")
    payload: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if name == METADATA_KEY:
            raise ValueError(f"array name {METADATA_KEY!r} is reserved for the metadata")
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype object, which cannot be stored without pickle")
        payload[name] = array
    meta = dict(metadata)
    meta["format_version"] = FORMAT_VERSION
    meta.setdefault("gaatool_version", __version__)
    text = json.dumps(meta, sort_keys=True, allow_nan=False)
    payload[METADATA_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            # Compressed: the one-hot type encodings shrink about tenfold.
            np.savez_compressed(handle, **payload)
            handle.flush()
            os.fsync(handle.fileno())
    return path


def _open(path: Path):
    check_input_file(path, "a dataset file")
    # neither an npz (zip) nor an npy file: numpy's own message would suggest loading it as a pickle
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic != b"\x93NUMPY" and not zipfile.is_zipfile(path):
        raise InputFileError(f"{path}: not a gaatool dataset file or damaged (no npz archive inside); rebuild it")
    try:
        archive = np.load(path, allow_pickle=False)
    except _READ_ERRORS as err:
        raise InputFileError(f"{path}: not a gaatool dataset file or damaged ({err}); rebuild it") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputFileError(f"{path}: holds a single array, not a gaatool dataset; rebuild it")
    return archive


def _metadata(path: Path, archive, expected_task: str | None) -> dict[str, Any]:
    if METADATA_KEY not in archive.files:
        raise InputFileError(f"{path}: has no gaatool metadata; it is not a gaatool dataset file")
    try:
        raw = archive[METADATA_KEY]
        meta = json.loads(np.asarray(raw, dtype=np.uint8).tobytes().decode("utf-8"))
    except _READ_ERRORS as err:
        raise InputFileError(f"{path}: dataset metadata is damaged ({err}); rebuild it") from err
    if not isinstance(meta, dict) or "task" not in meta or "format_version" not in meta:
        raise InputFileError(f"{path}: dataset metadata lacks 'task' or 'format_version'; rebuild it")
    version = meta["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputFileError(
            f"{path}: dataset format version {version} is newer than this gaatool reads "
            f"({FORMAT_VERSION}); upgrade gaatool"
        )
    if expected_task is not None and meta["task"] != expected_task:
        raise InputFileError(
            f"{path}: is a {meta['task']!r} dataset; expected a {expected_task!r} dataset"
        )
    return meta


def npz_members(path: str | os.PathLike) -> set[str]:
    """The array names of an npz archive, from its member list only (nothing is loaded); empty for anything
    that is not one."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {name[:-4] for name in archive.namelist() if name.endswith(".npy")}
    except (OSError, zipfile.BadZipFile):
        return set()


def is_dataset_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an npz archive with gaatool metadata."""
    return METADATA_KEY in npz_members(path)


def read_metadata(path: str | os.PathLike, expected_task: str | None = None) -> dict[str, Any]:
    """Only the metadata of a dataset file (cheap: arrays are not read).

    Raises the same :class:`InputFileError` as :func:`load_dataset`.
    """
    path = Path(path)
    with _open(path) as archive:
        return _metadata(path, archive, expected_task)


def load_dataset(path: str | os.PathLike, expected_task: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_dataset`.

    Parameters
    ----------
    path : path-like
        The ``.npz`` dataset file.
    expected_task : str, optional
        If given, a file of another task is refused.

    Returns
    -------
    arrays : dict of str to numpy.ndarray
        Every stored array (the metadata member excluded).
    metadata : dict
        The JSON metadata.

    Raises
    ------
    InputFileError
        If the file is missing, not an npz archive, truncated or damaged,
        lacks gaatool metadata, is of a newer format version, or belongs to
        another task. Pickled (object) members are never loaded.
    """
    path = Path(path)
    with _open(path) as archive:
        meta = _metadata(path, archive, expected_task)
        arrays: dict[str, np.ndarray] = {}
        for name in archive.files:
            if name == METADATA_KEY:
                continue
            try:
                arrays[name] = archive[name]
            except _READ_ERRORS as err:
                raise InputFileError(f"{path}: array {name!r} is damaged or unreadable ({err}); rebuild it") from err
    return arrays, meta
