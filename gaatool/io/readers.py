"""Read particle snapshots from any supported file, chosen by extension.

======================  ===================================================
extension               reader
======================  ===================================================
``.gsd``                :func:`gaatool.io.gsd.read_gsd` (HOOMD box)
``.xyz``, ``.extxyz``   :func:`gaatool.io.xyz.read_xyz` (``Lattice=``/``pbc=``);
                        also gzipped (``.xyz.gz``, ``.extxyz.gz``)
``.lammpstrj``,         :func:`gaatool.io.lammps.read_lammps_dump` (LAMMPS
``.lammpsdump``,        text dumps, also gzipped, or any file whose first
``.dump``               line is ``ITEM:``)
``POSCAR*``,            :func:`gaatool.io.vasp.read_vasp` (VASP: one frame;
``CONTCAR*``,           ``XDATCAR*``: every configuration of an ab initio
``*.vasp``, ``XDATCAR*``  MD run, also gzipped), by the file name
``*.data``, ``*.lmp``,  :func:`gaatool.io.lammps_data.read_lammps_data`
``data.*``              (a LAMMPS data file: one frame, periodic)
======================  ===================================================

XYZ frames without a lattice (or with ``pbc="F F F"``) are non-periodic
unless ``box`` is given; ``pbc="T T F"`` makes a slab, periodic along the
first two lattice vectors only. XYZ types are the element symbols, sorted
alphabetically, so the same species get the same type id in every frame.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from ..errors import ConfigError, InputFileError
from .frame import Frame, as_lattice, describe_selection
from .text import check_input_file, read_stdin

__all__ = ["read_frames", "parse_frame_selection", "stdin_snapshot", "SUPPORTED_EXTENSIONS"]

#: First bytes of a GSD file (its magic number, little-endian).
GSD_MAGIC = bytes.fromhex("df65df65df65df65")

SUPPORTED_EXTENSIONS = (".gsd", ".xyz", ".extxyz", ".lammpstrj", ".lammpsdump", ".dump")


def parse_frame_selection(text: str | None) -> slice | None:
    """Parse a ``--frames`` value: ``"5"``, ``"-1"``, ``"10:"``, ``"0:100:10"`` (0-based, Python slices).

    >>> parse_frame_selection("0:100:10"), parse_frame_selection("-1"), parse_frame_selection("3")
    (slice(0, 100, 10), slice(-1, None, None), slice(3, 4, None))
    """
    if text is None or str(text).strip() in ("", ":"):
        return None
    text = str(text).strip()
    try:
        if ":" not in text:
            index = int(text)
            return slice(index, index + 1 if index != -1 else None)
        parts = text.split(":")
        if len(parts) > 3:
            raise ValueError(text)
        values = [int(p) if p.strip() else None for p in parts] + [None] * (3 - len(parts))
    except ValueError as err:
        raise ConfigError(
            f"frame selection {text!r} is not an index or start:stop:step slice (e.g. 0, -1, 10:, 0:100:10)"
        ) from err
    if values[2] == 0:
        raise ConfigError(f"frame selection {text!r} has step 0")
    return slice(*values)


def _frame_from_xyz(xyz_frame, path: Path, index: int, box) -> Frame:
    where = f"{path}: frame {index}"
    lattice = periodic = None
    if xyz_frame.lattice is not None:
        pbc = np.ones(3, bool) if xyz_frame.pbc is None else np.asarray(xyz_frame.pbc, dtype=bool)
        if pbc.any():  # periodic along some axes only: a slab or a wire, open along the others
            lattice, periodic = np.asarray(xyz_frame.lattice, dtype=np.float64), tuple(bool(p) for p in pbc)
    if lattice is not None and box is not None:
        raise ConfigError(f"{where} has its own lattice; do not also give a box")
    if lattice is None:
        lattice = box
    symbols = np.asarray(xyz_frame.symbols).astype(str)
    type_names, types = np.unique(symbols, return_inverse=True)
    return Frame(
        positions=np.asarray(xyz_frame.positions, dtype=np.float64),
        box=lattice,
        types=types.reshape(-1),
        type_names=[str(t) for t in type_names],
        source=str(path),
        index=index,
        pbc=periodic,
    )


def read_frames(path: str | os.PathLike, frames: slice | None = None, box=None) -> Iterator[Frame]:
    """Frames of a GSD, (extended) XYZ, LAMMPS dump or data, or VASP (POSCAR, CONTCAR, XDATCAR) file.

    Parameters
    ----------
    path : path-like
        Input file; the extension selects the reader.
    frames : slice, optional
        Which frames, 0-based Python slice (see :func:`parse_frame_selection`);
        all by default.
    box : array-like, optional
        Periodic box for XYZ frames that have no lattice: 3 lengths, 6 HOOMD
        parameters or (3, 3) lattice rows. Refused for files whose frames
        carry their own box.

    Returns
    -------
    iterator of Frame

    Raises
    ------
    InputFileError
        Unknown extension, missing/damaged file, empty selection, invalid frame.
    ConfigError
        ``box`` given for frames that have their own.
    """
    from .lammps import is_lammps_dump, read_lammps_dump
    from .lammps_data import is_lammps_data, read_lammps_data
    from .vasp import read_vasp, vasp_kind

    path = Path(path)
    check_input_file(path, "a particle file")  # before the sniffing below, which would call a folder an unknown type
    suffix = path.suffix.lower()
    if suffix == ".gz" and Path(path.stem).suffix.lower() in (".xyz", ".extxyz"):
        suffix = Path(path.stem).suffix.lower()  # gzipped XYZ: read through gzip
    lattice = as_lattice(box)
    if vasp_kind(path) is not None:
        if lattice is not None:
            raise ConfigError(f"{path}: VASP files carry their own cell; do not also give a box")
        return read_vasp(path, frames)
    if is_lammps_data(path):
        if lattice is not None:
            raise ConfigError(f"{path}: LAMMPS data files carry their own box; do not also give a box")
        return read_lammps_data(path, frames)
    if suffix != ".gsd" and suffix not in (".xyz", ".extxyz") and is_lammps_dump(path):
        if lattice is not None:
            raise ConfigError(f"{path}: LAMMPS dump frames carry their own box; do not also give a box")
        return read_lammps_dump(path, frames)
    if suffix not in SUPPORTED_EXTENSIONS:
        raise InputFileError(
            f"{path}: unknown file type {suffix or '(no extension)'!r}; gaatool reads "
            f"{', '.join(SUPPORTED_EXTENSIONS)} (XYZ and LAMMPS dumps also gzipped), LAMMPS data files "
            "(.data, .lmp) and VASP POSCAR, CONTCAR, XDATCAR files"
        )
    if suffix == ".gsd":
        from .gsd import read_gsd

        if lattice is not None:
            raise ConfigError(f"{path}: GSD frames carry their own box; do not also give a box")
        return read_gsd(path, frames)

    from .xyz import read_xyz

    xyz_frames = read_xyz(path)
    chosen = range(len(xyz_frames)) if frames is None else range(len(xyz_frames))[frames]
    if len(chosen) == 0:
        raise InputFileError(
            f"{path}: frame selection {describe_selection(frames)} selects none of its {len(xyz_frames)} frames"
        )
    if lattice is not None:
        # Checked up front so the error comes from this call, not mid-iteration.
        for i in chosen:
            own = xyz_frames[i].lattice is not None and (
                xyz_frames[i].pbc is None or bool(np.any(xyz_frames[i].pbc))
            )
            if own:
                raise ConfigError(f"{path}: frame {i} has its own lattice; do not also give a box")
    return (_frame_from_xyz(xyz_frames[i], path, i, lattice) for i in chosen)


def _stdin_name(data: bytes) -> str:
    """A file name that makes :func:`read_frames` read ``data`` as what it is: GSD (its magic number), a LAMMPS
    dump (``ITEM:``), a LAMMPS data file (an ``N atoms`` header line), a VASP XDATCAR (``Direct configuration=``)
    or POSCAR (scale and lattice lines), else XYZ."""
    if data.startswith(GSD_MAGIC):
        return "stdin.gsd"
    if data.lstrip().startswith(b"ITEM:"):
        return "stdin.lammpstrj"
    head = data[:65536].decode("utf-8", errors="replace").splitlines()
    if any(line.split()[1:2] == ["atoms"] and line.split()[0].isdigit() for line in head[1:40]):
        return "stdin.data"
    if any(line.split()[:2] in (["Direct", "configuration="], ["Cartesian", "configuration="]) for line in head):
        return "XDATCAR"

    def numbers(line: str) -> int:
        try:
            return len([float(v) for v in line.split()])
        except ValueError:
            return -1

    # an XYZ file starts with its atom count; a POSCAR with a title, then its scale and lattice lines
    if (len(head) > 7 and not head[0].strip().isdigit() and numbers(head[1]) in (1, 3)
            and all(numbers(line) >= 3 for line in head[2:5])):
        return "POSCAR"
    return "stdin.xyz"


@contextlib.contextmanager
def stdin_snapshot(stream: BinaryIO | None = None) -> Iterator[Path]:
    """Standard input saved to a temporary file named after its content, for readers that need a path.

    GSD (by its magic number), LAMMPS dump (first line ``ITEM:``) or data
    file, VASP XDATCAR or POSCAR, or XYZ (anything else), each also gzipped.
    Errors raised inside the block name ``stdin`` instead of the temporary
    file, which is removed afterwards.
    """
    data = read_stdin(stream)
    if not data.strip():
        raise InputFileError("stdin: no input (empty); pipe a GSD, XYZ, LAMMPS dump or data, or VASP file in")
    with tempfile.TemporaryDirectory(prefix="gaatool-stdin-") as folder:
        path = Path(folder) / _stdin_name(data)
        path.write_bytes(data)
        try:
            yield path
        except InputFileError as err:
            raise InputFileError(str(err).replace(str(path), "stdin")) from err
