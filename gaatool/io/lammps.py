"""LAMMPS text dump files (``dump ID all atom|custom ...``): frames for ``gaatool identify``.

A frame is a block of ``ITEM:`` sections::

    ITEM: TIMESTEP
    ITEM: NUMBER OF ATOMS
    ITEM: BOX BOUNDS [xy xz yz] pp pp pp      (or: BOX BOUNDS abc origin pp pp pp)
    ITEM: ATOMS id type x y z ...

Positions come from the first complete set of ``x y z`` (wrapped), ``xu yu zu``
(unwrapped), ``xs ys zs`` or ``xsu ysu zsu`` (scaled by the box). Particle types
are the ``element`` column when the dump has one, else the ``type`` numbers
(names ``"1"``, ``"2"``, ..., so ``--type-map 1=A,2=B`` maps them). Rows are put
in atom-id order when there is an ``id`` column: LAMMPS writes them in processor
order, which changes from frame to frame. Boundaries: ``pp pp pp`` is periodic,
all of ``f``/``s``/``m`` non-periodic; mixed ones (``pp pp f``: a slab) are periodic
along the ``pp`` axes only.
Gzipped dumps (``.gz``) are read as they are.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from ..errors import InputFileError
from .frame import Frame, describe_selection
from .text import CountedLines, decoding_errors, open_text

__all__ = ["LAMMPS_EXTENSIONS", "is_lammps_dump", "read_lammps_dump", "count_lammps_frames"]

LAMMPS_EXTENSIONS = (".lammpstrj", ".lammpsdump", ".dump")

#: Position column sets, in order of preference, and whether they are fractions of the box.
_POSITION_COLUMNS = ((("x", "y", "z"), False), (("xu", "yu", "zu"), False),
                     (("xs", "ys", "zs"), True), (("xsu", "ysu", "zsu"), True))


def is_lammps_dump(path: str | os.PathLike) -> bool:
    """True for LAMMPS dump names (``.lammpstrj``, ``.lammpsdump``, ``.dump``, also ``.gz``) or contents.

    Files with another name count when their first line is an ``ITEM:`` line,
    since dumps are often called ``dump.melt`` or ``traj.atom``.

    >>> is_lammps_dump("run.lammpstrj.gz"), is_lammps_dump("cell.xyz")
    (True, False)
    """
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in LAMMPS_EXTENSIONS:
        return True
    try:
        with _open(path) as handle:
            return handle.readline(256).startswith("ITEM:")
    except (InputFileError, OSError, UnicodeDecodeError, EOFError, zlib.error):
        return False


def _open(path: Path) -> IO[str]:
    return open_text(path, "a LAMMPS dump")


class _Cursor(CountedLines):
    """Lines of a dump with the current line number, for error messages."""

    def __init__(self, handle: IO[str], path: Path):
        super().__init__(handle)
        self.path = path

    def require(self, what: str, frame: int) -> str:
        line = self.next()
        if line is None:
            raise InputFileError(f"{self.path}: frame {frame} is truncated (file ends before {what})")
        return line

    def fail(self, frame: int, message: str) -> InputFileError:
        return InputFileError(f"{self.path}: frame {frame}, line {self.number}: {message}")


def _numbers(cursor: _Cursor, line: str, frame: int, count: int, what: str) -> list[float]:
    fields = line.split()
    try:
        values = [float(v) for v in fields[:count]]
    except ValueError:
        raise cursor.fail(frame, f"expected {count} numbers for {what}, found {line.strip()!r}") from None
    if len(values) < count:
        raise cursor.fail(frame, f"expected {count} numbers for {what}, found {line.strip()!r}")
    return values


def _box(cursor: _Cursor, header: str, frame: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(lattice rows, origin, periodic flags (3,)) from a BOX BOUNDS section."""
    words = header.split()[3:]  # after "ITEM: BOX BOUNDS"
    general = "abc" in words
    flags = [w for w in words if w not in ("xy", "xz", "yz", "abc", "origin")]
    if len(flags) != 3:
        raise cursor.fail(frame, f"BOX BOUNDS needs 3 boundary flags (e.g. pp pp pp), found {' '.join(flags)!r}")
    periodic = tuple(f == "pp" for f in flags)
    if general:  # LAMMPS >= 2024 general triclinic: rows a, b, c with the origin as 4th number
        rows = [_numbers(cursor, cursor.require("the box", frame), frame, 4, "a box vector and origin")
                for _ in range(3)]
        lattice = np.array([r[:3] for r in rows])
        origin = np.array([r[3] for r in rows])
        return lattice, origin, periodic
    tilted = "xy" in words
    rows = [_numbers(cursor, cursor.require("the box", frame), frame, 3 if tilted else 2, "box bounds")
            for _ in range(3)]
    (xlo_b, xhi_b, *xy), (ylo_b, yhi_b, *xz), (zlo_b, zhi_b, *yz) = rows
    xy, xz, yz = (xy or [0.0])[0], (xz or [0.0])[0], (yz or [0.0])[0]
    # Bounds enclose the tilted box; the box itself starts at xlo (LAMMPS howto "triclinic").
    xlo = xlo_b - min(0.0, xy, xz, xy + xz)
    xhi = xhi_b - max(0.0, xy, xz, xy + xz)
    ylo, yhi = ylo_b - min(0.0, yz), yhi_b - max(0.0, yz)
    lattice = np.array([[xhi - xlo, 0.0, 0.0], [xy, yhi - ylo, 0.0], [xz, yz, zhi_b - zlo_b]])
    return lattice, np.array([xlo, ylo, zlo_b]), periodic


def _atoms(cursor: _Cursor, header: str, frame: int, n_atoms: int, lattice: np.ndarray, origin: np.ndarray):
    """(positions (N, 3), type names per atom (N,)) from an ATOMS section, in atom-id order."""
    columns = header.split()[2:]
    for names, scaled in _POSITION_COLUMNS:
        if all(name in columns for name in names):
            break
    else:
        raise cursor.fail(frame, f"ATOMS has no position columns (x y z, xu yu zu, xs ys zs or xsu ysu zsu); "
                                 f"found {' '.join(columns)}")
    type_column = "element" if "element" in columns else "type" if "type" in columns else None
    if type_column is None:
        raise cursor.fail(frame, "ATOMS has neither a type nor an element column")
    where = [columns.index(name) for name in names]
    type_at = columns.index(type_column)
    id_at = columns.index("id") if "id" in columns else None
    positions = np.empty((n_atoms, 3))
    types, ids = [], []
    for row in range(n_atoms):
        line = cursor.require(f"atom {row + 1} of {n_atoms}", frame)
        fields = line.split()
        if len(fields) < len(columns):
            if line.startswith("ITEM:"):
                raise cursor.fail(frame, f"only {row} of {n_atoms} atoms before the next ITEM")
            raise cursor.fail(frame, f"expected {len(columns)} columns ({' '.join(columns)}), found {len(fields)}")
        try:
            positions[row] = [float(fields[k]) for k in where]
            if id_at is not None:
                ids.append(int(fields[id_at]))
        except ValueError:
            raise cursor.fail(frame, f"non-numeric position or id in {line.strip()!r}") from None
        types.append(fields[type_at])
    if scaled:
        positions = origin + positions @ lattice
    types = np.asarray(types)
    if id_at is not None:
        ids = np.asarray(ids)
        if np.unique(ids).size != ids.size:
            raise InputFileError(f"{cursor.path}: frame {frame} has repeated atom ids")
        order = np.argsort(ids, kind="stable")
        positions, types = positions[order], types[order]
    return positions, types


def _frames(path: Path) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
    """(positions, lattice or None, type names per atom) of every frame, streamed."""
    with _open(path) as handle:
        cursor = _Cursor(handle, path)
        frame = 0
        with decoding_errors(path, cursor, "a LAMMPS dump"):
            line = cursor.next()
            if line is None:
                raise InputFileError(f"{path}: the file is empty")
            while line is not None:
                if not line.strip():
                    line = cursor.next()
                    continue
                n_atoms, box = None, None
                # Sections before ATOMS, in any order (UNITS and TIME are optional).
                while not line.startswith("ITEM: ATOMS"):
                    if not line.startswith("ITEM:"):
                        raise cursor.fail(frame, f"expected an ITEM: line, found {line.strip()[:60]!r}; "
                                                 "is this a LAMMPS text dump?")
                    section = line[5:].strip()
                    if section.startswith("TIMESTEP"):
                        _numbers(cursor, cursor.require("the timestep", frame), frame, 1, "the timestep")
                    elif section.startswith("NUMBER OF ATOMS"):
                        value = _numbers(cursor, cursor.require("the atom count", frame), frame, 1, "the atom count")[0]
                        if value != int(value) or value < 0:
                            raise cursor.fail(frame, f"atom count {value:g} is not a whole number")
                        n_atoms = int(value)
                    elif section.startswith("BOX BOUNDS"):
                        box = _box(cursor, line, frame)
                    else:
                        cursor.require(f"the value of ITEM: {section}", frame)  # UNITS, TIME: one line each
                    line = cursor.require("ITEM: ATOMS", frame)
                if n_atoms is None or box is None:
                    raise cursor.fail(frame, "ATOMS before NUMBER OF ATOMS and BOX BOUNDS")
                lattice, origin, periodic = box
                positions, types = _atoms(cursor, line, frame, n_atoms, lattice, origin)
                yield positions, lattice if any(periodic) else None, types, periodic if any(periodic) else None
                frame += 1
                line = cursor.next()


def count_lammps_frames(path: str | os.PathLike) -> int:
    """Number of frames (``ITEM: TIMESTEP`` lines) of a dump, without parsing atoms."""
    path = Path(path)
    try:
        with _open(path) as handle:
            return sum(1 for line in handle if line.startswith("ITEM: TIMESTEP"))
    except UnicodeDecodeError as err:
        raise InputFileError(f"{path}: not a text file; expected a LAMMPS dump") from err
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise InputFileError(f"{path}: damaged gzip data ({str(err) or type(err).__name__})") from err


def _sort_key(name: str):
    # numeric LAMMPS types in numeric order ("2" before "10"), element names alphabetically
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def read_lammps_dump(path: str | os.PathLike, frames: slice | None = None) -> Iterator[Frame]:
    """Frames of a LAMMPS text dump, streamed (one frame in memory at a time).

    Parameters
    ----------
    path : path-like
        The dump (``.gz`` is decompressed on the fly).
    frames : slice, optional
        Which frames (0-based Python slice over the file's frames); all by default.

    Returns
    -------
    iterator of Frame
        Positions in the dump's length unit, lattice rows (None for a
        non-periodic box; ``pbc`` flags for mixed boundaries), types from
        ``element`` or ``type``; ``index`` is the frame's position in the file.

    Raises
    ------
    InputFileError
        Missing, empty, truncated or malformed file (naming the frame and
        line), missing columns, an empty selection.
    """
    path = Path(path)
    order = None
    if frames is not None:
        n_frames = count_lammps_frames(path)
        if n_frames == 0:
            raise InputFileError(f"{path}: holds no frames (no ITEM: TIMESTEP line); is it a LAMMPS text dump?")
        order = list(range(n_frames)[frames])
        if not order:
            raise InputFileError(
                f"{path}: frame selection {describe_selection(frames)} selects none of its {n_frames} frames")
    else:
        _open(path).close()  # a missing file fails here, not at the first next()

    def in_file_order() -> Iterator[Frame]:
        wanted = None if order is None else set(order)
        for index, (positions, lattice, type_per_atom, periodic) in enumerate(_frames(path)):
            if wanted is None or index in wanted:
                yield _frame(path, index, positions, lattice, type_per_atom, periodic)

    if order is not None and order != sorted(order):  # a reversed selection: the file streams forwards only
        return iter(sorted(in_file_order(), key=lambda f: order.index(f.index)))
    return in_file_order()


def _frame(path: Path, index: int, positions, lattice, type_per_atom: np.ndarray, periodic=None) -> Frame:
    names = sorted(set(type_per_atom.tolist()), key=_sort_key)
    lookup = {name: k for k, name in enumerate(names)}
    types = np.fromiter((lookup[t] for t in type_per_atom.tolist()), dtype=np.int64, count=len(type_per_atom))
    return Frame(positions, lattice, types, names, source=str(path), index=index, pbc=periodic)
