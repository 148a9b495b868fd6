"""VASP structures and trajectories: POSCAR/CONTCAR (one frame) and XDATCAR (an ab initio MD run).

Both start with the same header: a comment line, the scale line (one factor,
a negative cell volume, or three factors for x, y, z), three lattice rows,
the species names (VASP 5 and later; VASP 4 POSCARs get ``X0, X1, ...``) and
their counts. A POSCAR then may say ``Selective dynamics`` and gives
``Direct`` or ``Cartesian`` coordinates; an XDATCAR (VASP 5 and later) gives
one ``Direct configuration= k`` block of fractional coordinates per step, and
runs with a changing cell (ISIF = 3) repeat the header before every block.
Lengths are in Å, as in the file. Lines in error messages count from 1.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputFileError
from .frame import Frame, describe_selection
from .text import CountedLines, FileLines, decoding_errors, open_text

__all__ = ["VaspCell", "count_configurations", "read_poscar_cell", "read_vasp", "vasp_kind"]


def vasp_kind(path: str | os.PathLike) -> str | None:
    """``poscar`` (POSCAR*, CONTCAR*, *.vasp, *.poscar) or ``xdatcar`` (XDATCAR*) by the file's name, else None.

    >>> vasp_kind("run1/XDATCAR.gz"), vasp_kind("CONTCAR_relaxed"), vasp_kind("Si.vasp"), vasp_kind("a.xyz")
    ('xdatcar', 'poscar', 'poscar', None)
    """
    name = Path(path).name
    base = name[:-3] if name.lower().endswith(".gz") else name
    if base.upper().startswith("XDATCAR"):
        return "xdatcar"
    if base.upper().startswith(("POSCAR", "CONTCAR")) or base.lower().endswith((".vasp", ".poscar")):
        return "poscar"
    return None


@dataclass
class VaspCell:
    """A POSCAR's content: lattice rows (3, 3) in Å, fractional coordinates (N, 3), a species label per atom."""

    lattice: np.ndarray
    fractional: np.ndarray
    labels: list[str]


class _Lines(FileLines):
    """Lines of a VASP file; comments start at ``!`` or ``#`` (the first line, a title, is read raw)."""

    COMMENT_MARKS = ("!", "#")


@dataclass
class _Header:
    scale: np.ndarray  # (3,) factors of the Cartesian components
    lattice: np.ndarray  # scaled rows
    labels: list[str]


def _header(reader: _Lines, first: str | None = None, frame: int | None = None) -> _Header:
    """The header after its comment line (``first``: that line, already read; None: read it now)."""
    if first is None and reader.next() is None:
        raise InputFileError(f"{reader.path}: the file is empty")
    try:
        scale = [float(v) for v in reader.require("the scale line", frame).split()]
    except ValueError as err:
        raise reader.fail("the scale line is not numbers", frame) from err
    if not ((len(scale) == 1 and scale[0] != 0) or (len(scale) == 3 and min(scale) > 0)):
        raise reader.fail("the scale line needs 1 number or 3 positive numbers", frame)
    rows = [reader.require("the lattice", frame).split()[:3] for _ in range(3)]
    try:
        lattice = np.array([[float(v) for v in row] for row in rows])
    except ValueError as err:
        raise reader.fail("a lattice line is not numbers", frame) from err
    if lattice.shape != (3, 3):
        raise reader.fail("a lattice line needs 3 numbers", frame)
    tokens = reader.require("the species counts", frame).split()
    species = None
    if tokens and not tokens[0].lstrip("+-").isdigit():
        species = [t.split("/")[0].split("_")[0] for t in tokens]  # VASP 6 "Si/hash" and "Si_pv" POTCAR names
        tokens = reader.require("the species counts", frame).split()
    try:
        counts = [int(v) for v in tokens]
    except ValueError as err:
        raise reader.fail("the species counts are not whole numbers", frame) from err
    species = species or [f"X{i}" for i in range(len(counts))]
    if len(species) != len(counts) or not counts or min(counts) < 0 or sum(counts) == 0:
        raise reader.fail(f"{len(species)} species names for {len(counts)} counts", frame)
    if len(scale) == 1 and scale[0] < 0:  # a negative scale is the cell volume
        volume = abs(np.linalg.det(lattice))
        if volume == 0:
            raise reader.fail("the lattice is degenerate", frame)
        factors = np.full(3, (-scale[0] / volume) ** (1.0 / 3.0))
    else:
        factors = np.full(3, scale[0]) if len(scale) == 1 else np.array(scale)
    labels = [name for name, count in zip(species, counts) for _ in range(count)]
    return _Header(factors, lattice * factors, labels)


def _coordinates(reader: _Lines, n: int, frame: int | None = None) -> np.ndarray:
    rows = []
    for _ in range(n):
        line = reader.content()
        if line is None:
            raise reader.fail(f"the file ends after {len(rows)} of {n} coordinate lines", frame)
        try:
            rows.append([float(v) for v in line.split()[:3]])
        except ValueError as err:
            raise reader.fail(f"coordinate line {line[:60]!r} is not 3 numbers", frame) from err
        if len(rows[-1]) != 3:
            raise reader.fail(f"coordinate line {line[:60]!r} is not 3 numbers", frame)
    return np.array(rows, dtype=np.float64).reshape(n, 3)


def _fractional(lattice: np.ndarray, cartesian: np.ndarray, reader: _Lines, frame: int | None = None) -> np.ndarray:
    try:
        return np.linalg.solve(lattice.T, cartesian.T).T
    except np.linalg.LinAlgError as err:
        raise reader.fail("the lattice is degenerate", frame) from err


def read_poscar_cell(path: str | os.PathLike) -> VaspCell:
    """The structure of a POSCAR/CONTCAR file (VASP 4 or 5 layout), as in the file (no symmetry applied)."""
    path = Path(path)
    with open_text(path, "a POSCAR file") as handle:
        reader = _Lines(handle, path, "POSCAR")
        with decoding_errors(path, reader, "a POSCAR file"):
            header = _header(reader)
            mode = reader.require("the coordinate mode line")
            if mode[:1] in ("S", "s"):  # Selective dynamics
                mode = reader.require("the coordinate mode line")
            if mode[:1].lower() not in ("d", "c", "k"):
                raise reader.fail(f"coordinate mode {mode[:30]!r} is neither Direct nor Cartesian")
            coordinates = _coordinates(reader, len(header.labels))
    if mode[:1].lower() == "d":
        fractional = coordinates
    else:
        fractional = _fractional(header.lattice, coordinates * header.scale, reader)
    return VaspCell(header.lattice, fractional, header.labels)


def _xdatcar_frames(path: Path) -> Iterator[tuple[int, np.ndarray, np.ndarray, list[str]]]:
    """(index, Cartesian positions, lattice, labels) of every configuration, streamed."""
    with open_text(path, "an XDATCAR file") as handle:
        reader = _Lines(handle, path, "XDATCAR")
        with decoding_errors(path, reader, "an XDATCAR file"):
            header, index = None, 0
            while True:
                line = reader.next()
                if line is None:
                    break
                words = line.split()
                if not words:
                    continue
                if words[0].lower() in ("direct", "cartesian", "configuration="):
                    if header is None:
                        raise reader.fail("a configuration before the header", index)
                    coordinates = _coordinates(reader, len(header.labels), index)
                    if words[0].lower() == "cartesian":
                        coordinates = _fractional(header.lattice, coordinates * header.scale, reader, index)
                    yield index, coordinates @ header.lattice, header.lattice, header.labels
                    index += 1
                else:  # the header, at the start and, in variable-cell runs, before every configuration
                    header = _header(reader, first=line, frame=index)
            if index == 0:
                raise InputFileError(f"{path}: holds no configurations (no 'Direct configuration=' line); "
                                     "is it a VASP 5 XDATCAR?")


def _frame(path: Path, index: int, positions: np.ndarray, lattice: np.ndarray, labels: list[str]) -> Frame:
    names = sorted(set(labels))  # as XYZ files: the same species get the same type id in every frame
    lookup = {name: k for k, name in enumerate(names)}
    types = np.array([lookup[label] for label in labels], dtype=np.int64)
    return Frame(positions, lattice, types, names, source=str(path), index=index)


def count_configurations(path: str | os.PathLike) -> int:
    """Number of configurations of an XDATCAR, without parsing coordinates."""
    with open_text(path, "an XDATCAR file") as handle:
        lines = CountedLines(handle)
        with decoding_errors(path, lines, "an XDATCAR file"):
            return sum(1 for line in iter(lines.next, None)
                       if line.split()[:1] and line.split()[0].lower() in ("direct", "cartesian", "configuration="))


def read_vasp(path: str | os.PathLike, frames: slice | None = None) -> Iterator[Frame]:
    """Frames of a POSCAR/CONTCAR (one) or an XDATCAR (one per configuration, streamed), periodic, in Å.

    ``frames``: 0-based Python slice over the file's frames; all by default.
    Raises InputFileError for a missing, empty, truncated or malformed file
    (naming the frame and line) or an empty selection.
    """
    path = Path(path)
    if vasp_kind(path) == "poscar":
        cell = read_poscar_cell(path)
        found = [_frame(path, 0, cell.fractional @ cell.lattice, cell.lattice, cell.labels)]
        chosen = range(1) if frames is None else range(1)[frames]
        if len(chosen) == 0:
            raise InputFileError(f"{path}: frame selection {describe_selection(frames)} selects none of its 1 frames")
        return iter(found)
    if frames is None:
        open_text(path, "an XDATCAR file").close()  # a missing file fails here, not at the first next()
        return (_frame(path, *values) for values in _xdatcar_frames(path))
    total = count_configurations(path)
    order = list(range(total)[frames])
    if not order:
        raise InputFileError(f"{path}: frame selection {describe_selection(frames)} selects none of its "
                             f"{total} frames")
    wanted = set(order)
    chosen = (_frame(path, *values) for values in _xdatcar_frames(path) if values[0] in wanted)
    if order != sorted(order):  # a reversed selection: the file streams forwards only
        return iter(sorted(chosen, key=lambda f: order.index(f.index)))
    return chosen
