"""LAMMPS data files (``write_data`` output, ``read_data`` input): one frame for ``gaatool identify``.

The header gives the atom count (``N atoms``) and the box (``xlo xhi``,
``ylo yhi``, ``zlo zhi`` and, for a triclinic box, ``xy xz yz``); data files
do not record boundary conditions, so the box is taken as periodic. The
``Atoms`` section gives one line per atom; its ``# style`` comment, which
LAMMPS writes, says where the columns are (``atomic``: id type x y z;
``charge``: id type q x y z; ``full``: id mol type q x y z; ``molecular``,
``bond``, ``angle``: id mol type x y z). Without it, 5 or 8 columns are read
as ``atomic`` and 7 or 10 as ``full``. Types are the type numbers (``"1"``,
``"2"``, ...), rows in atom-id order; other sections (Masses, Velocities,
Bonds, ...) are skipped. Lengths as in the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputFileError
from .frame import Frame, describe_selection
from .text import FileLines, decoding_errors, open_text

__all__ = ["ATOM_STYLES", "is_lammps_data", "read_lammps_data"]

#: Columns of an Atoms line per atom style: (id, type, first of x y z).
ATOM_STYLES = {"atomic": (0, 1, 2), "charge": (0, 1, 3), "full": (0, 2, 4), "molecular": (0, 2, 3),
               "bond": (0, 2, 3), "angle": (0, 2, 3)}
#: Atom styles by column count (without or with the three image flags), for Atoms sections without a comment.
_STYLE_BY_COLUMNS = {5: "atomic", 8: "atomic", 7: "full", 10: "full"}


def is_lammps_data(path: str | os.PathLike) -> bool:
    """A LAMMPS data file by name: ``*.data``, ``*.lmp``, or ``data.*`` with no other known extension.

    >>> is_lammps_data("relaxed.data"), is_lammps_data("data.Cu_fcc"), is_lammps_data("data.xyz")
    (True, True, False)
    """
    name = Path(path).name.lower()
    if name.endswith((".data", ".lmp")):
        return True
    return name.startswith("data.") and Path(name).suffix not in (".xyz", ".extxyz", ".gsd", ".lammpstrj",
                                                                   ".lammpsdump", ".dump", ".gz")


def _numbers(reader: "_Lines", line: str, count: int, what: str) -> list[float]:
    try:
        values = [float(v) for v in line.split()[:count]]
    except ValueError:
        values = []
    if len(values) != count:
        raise reader.fail(f"{what} needs {count} numbers: {line.strip()[:60]!r}")
    return values


class _Lines(FileLines):
    """Lines of a data file; the Atoms title keeps its ``# style`` comment."""

    def content(self) -> str | None:
        line = self.next()
        if line is None or line.lstrip().startswith("Atoms"):
            return line
        return line.split("#")[0].strip()


def read_lammps_data(path: str | os.PathLike, frames: slice | None = None) -> Iterator[Frame]:
    """The one frame of a LAMMPS data file (see the module docstring).

    Raises InputFileError for a missing, truncated or malformed file (naming the line) or an empty selection.
    """
    path = Path(path)
    chosen = range(1) if frames is None else range(1)[frames]
    if len(chosen) == 0:
        raise InputFileError(f"{path}: frame selection {describe_selection(frames)} selects none of its 1 frames")
    with open_text(path, "a LAMMPS data file") as handle:
        reader = _Lines(handle, path, "LAMMPS data")
        with decoding_errors(path, reader, "a LAMMPS data file"):
            return iter([_read(reader)])


def _read(reader: _Lines) -> Frame:
    if reader.next() is None:  # the first line is a title
        raise InputFileError(f"{reader.path}: the file is empty")
    n_atoms, bounds, tilt = None, {}, (0.0, 0.0, 0.0)
    while True:
        line = reader.content()
        if line is None:
            raise reader.fail("the file ends before its Atoms section")
        words = line.split()
        if not words:
            continue
        if words[0] == "Atoms":
            break
        if words[1:2] == ["atoms"]:
            n_atoms = int(_numbers(reader, line, 1, "the atom count")[0])
        elif words[2:4] in (["xlo", "xhi"], ["ylo", "yhi"], ["zlo", "zhi"]):
            bounds[words[2][0]] = _numbers(reader, line, 2, f"{words[2]} {words[3]}")
        elif words[3:6] == ["xy", "xz", "yz"]:
            tilt = tuple(_numbers(reader, line, 3, "xy xz yz"))
        elif words[0][0].isalpha():  # a section other than Atoms (Masses, ...): skip its lines
            _skip_section(reader)
    if n_atoms is None or n_atoms < 1:
        raise reader.fail("no 'N atoms' line before the Atoms section")
    if sorted(bounds) != ["x", "y", "z"]:
        raise reader.fail("the box needs xlo xhi, ylo yhi and zlo zhi lines")
    comment = line.partition("#")[2].split()
    style = comment[0] if comment else None
    if style is not None and style not in ATOM_STYLES:
        raise reader.fail(f"atom style {style!r} is not one of {', '.join(ATOM_STYLES)}")
    ids, types, positions = np.empty(n_atoms, dtype=np.int64), [], np.empty((n_atoms, 3))
    row, width = 0, None
    while row < n_atoms:
        text = reader.content()
        if text is None:
            raise reader.fail(f"the file ends after {row} of {n_atoms} atoms")
        fields = text.split()
        if not fields:
            continue
        width = width or len(fields)
        if len(fields) != width:  # a damaged line could otherwise fit another column layout
            raise reader.fail(f"atom line {text.strip()[:60]!r} has {len(fields)} columns, the first had {width}")
        style = style or _STYLE_BY_COLUMNS.get(len(fields))
        if style is None:
            raise reader.fail(f"cannot tell the atom style from {len(fields)} columns; write the data file with "
                              "LAMMPS's write_data (its Atoms line names the style)")
        at_id, at_type, at_x = ATOM_STYLES[style]
        try:
            ids[row], positions[row] = int(fields[at_id]), [float(v) for v in fields[at_x:at_x + 3]]
            types.append(fields[at_type])
        except (ValueError, IndexError):
            raise reader.fail(f"atom line {text.strip()[:60]!r} does not fit atom style {style!r}") from None
        row += 1
    if np.unique(ids).size != n_atoms:
        raise InputFileError(f"{reader.path}: repeated atom ids in the Atoms section")
    order = np.argsort(ids, kind="stable")
    (xlo, xhi), (ylo, yhi), (zlo, zhi) = bounds["x"], bounds["y"], bounds["z"]
    xy, xz, yz = tilt
    lattice = np.array([[xhi - xlo, 0.0, 0.0], [xy, yhi - ylo, 0.0], [xz, yz, zhi - zlo]])
    labels = np.asarray(types)[order]
    names = sorted(set(labels.tolist()), key=lambda t: (not t.isdigit(), int(t) if t.isdigit() else 0, t))
    lookup = {name: k for k, name in enumerate(names)}
    return Frame(positions[order], lattice, np.array([lookup[t] for t in labels], dtype=np.int64), names,
                 source=str(reader.path), index=0)


def _skip_section(reader: _Lines) -> None:
    """Skip a section's lines: a blank line, then data lines up to the next blank line."""
    seen_data = False
    while True:
        position = reader.handle.tell()
        line = reader.content()
        if line is None:
            return
        if not line.split():
            if seen_data:
                return
            continue
        if line.split()[0][0].isalpha():  # the next section's title: give it back
            reader.handle.seek(position)
            reader.number -= 1
            return
        seen_data = True
