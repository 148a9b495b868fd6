"""Coordinates of DCD and XTC trajectories (via mdtraj's file readers), in Å.

Only coordinates are read; the atoms are described by a separate topology
(a PDB/mmCIF file with the same atoms in the same order, see
:mod:`gaatool.io.structure`). DCD stores Å and XTC nm; both come back in Å.
"""
from __future__ import annotations

import contextlib
import os
import struct
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import ConfigError, InputFileError
from .atomic import atomic_path
from .text import check_input_file

__all__ = ["TRAJECTORY_EXTENSIONS", "is_trajectory", "read_trajectory", "write_trajectory"]

TRAJECTORY_EXTENSIONS = (".dcd", ".xtc")


def is_trajectory(path: str | os.PathLike) -> bool:
    """True for file names ending in ``.dcd`` or ``.xtc``.

    >>> is_trajectory("run.XTC"), is_trajectory("cg.pdb")
    (True, False)
    """
    return Path(str(path)).suffix.lower() in TRAJECTORY_EXTENSIONS


@contextlib.contextmanager
def _quiet_c_output() -> Iterator[None]:
    # mdtraj's DCD plugin printf()s to file descriptor 1, which may carry a PDB written with `-o -`, and its
    # xdrfile library writes "(xdrfile error) ..." to 2, in front of gaatool's one-line error
    import ctypes

    try:
        libc = ctypes.CDLL(None)
    except OSError:  # pragma: no cover (no C library to flush: leave the streams alone)
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        with open(os.devnull, "w") as null:
            for fd in saved:
                os.dup2(null.fileno(), fd)
        yield
    finally:
        libc.fflush(None)  # C-buffered chatter goes to /dev/null, not to the restored streams
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


def _open(path: Path, mode: str = "r"):
    from mdtraj.formats import DCDTrajectoryFile, XTCTrajectoryFile

    return (DCDTrajectoryFile if path.suffix.lower() == ".dcd" else XTCTrajectoryFile)(str(path), mode)


def _dcd_header_frames(path: Path) -> int | None:
    """The frame count (NSET) a DCD header states, or None when the header is not one.

    mdtraj cannot tell it: its DCD plugin trims the count to what the file size holds, with a
    warning on stdout only, so a truncated file reads as a shorter trajectory.
    """
    with open(path, "rb") as handle:
        head = handle.read(16)
    for order in "<>":  # either endianness; 32- or 64-bit Fortran record markers before "CORD"
        if len(head) >= 12 and struct.unpack(f"{order}i", head[:4])[0] == 84 and head[4:8] == b"CORD":
            return struct.unpack(f"{order}i", head[8:12])[0]
        if len(head) >= 16 and struct.unpack(f"{order}q", head[:8])[0] == 84 and head[8:12] == b"CORD":
            return struct.unpack(f"{order}i", head[12:16])[0]
    return None


def read_trajectory(path: str | os.PathLike, n_atoms: int | None = None, frames: slice | None = None) -> np.ndarray:
    """Coordinates (F, N, 3) float64 in Å of a ``.dcd`` or ``.xtc`` file.

    Parameters
    ----------
    path : path-like
    n_atoms : int, optional
        Expected atoms per frame (from the topology); a mismatch raises.
    frames : slice, optional
        Which frames (0-based Python slice); all by default.

    Raises
    ------
    InputFileError
        Unknown extension, missing, damaged, truncated (DCD) or empty file,
        atom count mismatch, empty frame selection.
    """
    path = Path(path)
    if not is_trajectory(path):
        raise InputFileError(f"{path}: not a trajectory file; gaatool reads {', '.join(TRAJECTORY_EXTENSIONS)}")
    check_input_file(path, "a trajectory file")
    try:
        with _quiet_c_output(), _open(path) as handle:
            result = handle.read()
    except (OSError, RuntimeError, ValueError, EOFError, IndexError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputFileError(f"{path}: cannot read the trajectory ({detail}); is the file complete?") from err
    xyz = np.asarray(result[0], dtype=np.float64)
    if path.suffix.lower() == ".xtc":
        xyz = xyz * 10.0  # nm -> Å
    if xyz.ndim != 3 or xyz.shape[0] == 0:
        raise InputFileError(f"{path}: the trajectory holds no frames")
    # a header count of 0 (some writers never fill it in) or below what was read says nothing
    stated = _dcd_header_frames(path) if path.suffix.lower() == ".dcd" else None
    if stated is not None and stated > xyz.shape[0]:
        raise InputFileError(f"{path}: truncated: the header says {stated} frames, {xyz.shape[0]} could be read")
    if n_atoms is not None and xyz.shape[1] != n_atoms:
        raise InputFileError(f"{path}: frames have {xyz.shape[1]} atoms but the topology has {n_atoms}; "
                             "use the topology the trajectory was written with")
    if frames is not None:
        xyz = xyz[frames]
        if xyz.shape[0] == 0:
            raise ConfigError(f"{path}: the frame selection is empty (the file has {len(result[0])} frames)")
    if not np.all(np.isfinite(xyz)):
        raise InputFileError(f"{path}: the trajectory holds NaN or infinite coordinates")
    return xyz


def write_trajectory(path: str | os.PathLike, positions) -> Path:
    """Write coordinates (F, N, 3) in Å to a ``.dcd`` or ``.xtc`` file, atomically."""
    path = Path(path)
    if not is_trajectory(path):
        raise ConfigError(f"{path}: use a .dcd or .xtc file name")
    xyz = np.asarray(positions, dtype=np.float32)
    if xyz.ndim != 3 or xyz.shape[-1] != 3:
        raise ConfigError(f"positions have shape {xyz.shape}; expected (F, N, 3)")
    if path.suffix.lower() == ".xtc":
        xyz = xyz / 10.0  # Å -> nm
    with atomic_path(path) as tmp:
        with _quiet_c_output(), _open(tmp, "w") as handle:
            handle.write(xyz)
    return path
