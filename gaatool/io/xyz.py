"""XYZ and extended XYZ: read (plain, extended, sGDML export) and write (extended).

Frames in error messages are counted from 0, like ``--frames`` and the other
readers ("frame 0" is the first frame of the file), lines from 1 ("line 1" is
its first line).

Three dialects are read:

* plain XYZ: ``N``, a free comment line, then ``sym x y z`` lines; the comment
  is kept as ``info["comment"]``;
* extended XYZ: the comment line holds ``key=value`` pairs, among them
  ``Lattice="ax ay az bx by bz cx cy cz"`` (cell vectors as rows),
  ``pbc="T T F"`` and ``Properties=species:S:1:pos:R:3:forces:R:3`` naming
  the columns; other keys go to ``info`` (numbers, ``T``/``F``, quoted
  strings, quoted lists of numbers as arrays);
* the sGDML export: the comment line is only the energy, atom lines are
  ``sym x y z fx fy fz`` -> ``info["energy"]``, ``arrays["forces"]``.

Units are those of the file (MD17: Å, kcal/mol, kcal/mol/Å); nothing is converted.
"""
from __future__ import annotations

import io
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np

from ..errors import InputFileError
from .atomic import atomic_path
from .text import CountedLines, decoding_errors, open_text

__all__ = ["XYZFrame", "read_xyz", "iter_xyz", "write_extxyz", "atomic_number", "ELEMENTS"]

#: Element symbols indexed by atomic number (index 0 is a placeholder).
ELEMENTS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb "
    "Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf "
    "Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split()
_NUMBER_OF = {symbol: z for z, symbol in enumerate(ELEMENTS) if z > 0}


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol (case-insensitive).

    >>> atomic_number("C"), atomic_number("cl")
    (6, 17)
    """
    z = _NUMBER_OF.get(symbol.strip().capitalize())
    if z is None:
        # str(): a numpy string's repr would show as np.str_('6')
        raise InputFileError(f"unknown element symbol {str(symbol)!r}; use a symbol such as H, C, N, O")
    return z


@dataclass
class XYZFrame:
    """One frame of an XYZ file.

    Attributes
    ----------
    symbols
        (N,) str, element symbols as written in the file.
    positions
        (N, 3) float64, file length unit (Å for MD17).
    lattice
        (3, 3) float64 cell vectors as rows, or None.
    pbc
        (3,) bool periodicity flags, or None.
    info
        Per-frame values, e.g. ``{"energy": -97208.4}``.
    arrays
        Per-atom values other than species and positions, each with first axis N,
        e.g. ``{"forces": (N, 3) float64}``.

    >>> f = XYZFrame(np.array(["H", "H"]), np.zeros((2, 3)))
    >>> f.n_atoms
    2
    """

    symbols: np.ndarray
    positions: np.ndarray
    lattice: np.ndarray | None = None
    pbc: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return int(self.positions.shape[0])


# --------------------------------------------------------------------------- reading

# key, then optional =value where value is "quoted with \" escapes", {braced} or a bare token.
_KV = re.compile(
    r"""\s*(?:"(?P<qkey>(?:[^"\\]|\\.)*)"|(?P<key>[^\s="']+))"""
    r"""(?:\s*=\s*(?:"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>(?:[^'\\]|\\.)*)'|\{(?P<br>[^}]*)\}|(?P<bare>[^\s"']+)))?"""
)
_BOOL = {"T": True, "F": False, "True": True, "False": False, "TRUE": True, "FALSE": False,
         "t": True, "f": False, "true": True, "false": False}
_TYPES = {"S": str, "R": float, "I": int, "L": bool}


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def _scalar(token: str):
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        pass
    if token in _BOOL:
        return _BOOL[token]
    return token


def _value(text: str, quoted: bool):
    """Convert an info value.

    A bare token becomes an int, float or bool when it reads as one. A quoted
    value with several tokens that are all numbers (or all booleans) becomes a
    1-D array; any other quoted value, including a single quoted token, stays
    a string (so strings such as ``"1.5"`` survive a write/read round trip).
    """
    tokens = text.split()
    if not quoted:
        return _scalar(text)
    if len(tokens) > 1:
        items = [_scalar(t) for t in tokens]
        kinds = {type(v) for v in items}
        if kinds <= {int}:
            return np.array(items, dtype=np.int64)
        if kinds <= {int, float}:
            return np.array(items, dtype=np.float64)
        if kinds <= {bool}:
            return np.array(items, dtype=bool)
    return text


def _parse_comment(comment: str, where: str) -> dict:
    """``key=value`` pairs of an extended-XYZ comment line, in order; bare keys are True."""
    pairs: dict = {}
    pos = 0
    text = comment.strip()
    while pos < len(text):
        match = _KV.match(text, pos)
        if match is None or match.end() == pos:
            raise InputFileError(f"{where}: cannot parse the comment line near {text[pos:pos + 20]!r}; "
                                 "quote values that contain spaces")
        # ASE quotes keys that hold spaces
        key = match.group("key") if match.group("qkey") is None else _unescape(match.group("qkey"))
        if match.group("dq") is not None:
            pairs[key] = (_unescape(match.group("dq")), True)
        elif match.group("sq") is not None:
            pairs[key] = (_unescape(match.group("sq")), True)
        elif match.group("br") is not None:
            pairs[key] = (match.group("br"), True)
        elif match.group("bare") is not None:
            pairs[key] = (match.group("bare"), False)
        else:
            pairs[key] = ("T", False)
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return pairs


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_properties(spec: str, where: str) -> list[tuple[str, type, int]]:
    fields = spec.split(":")
    if len(fields) % 3:
        raise InputFileError(f"{where}: Properties={spec!r} is not name:type:count triples")
    columns = []
    for i in range(0, len(fields), 3):
        name, kind, count = fields[i:i + 3]
        if kind not in _TYPES or not count.isdigit() or int(count) < 1:
            raise InputFileError(f"{where}: Properties entry {name}:{kind}:{count} is invalid; "
                                 "types are S, R, I, L and counts are positive integers")
        columns.append((name, _TYPES[kind], int(count)))
    return columns


def _read_frame(lines: CountedLines, name: str, frame_no: int) -> XYZFrame | None:
    while True:
        header = lines.next()
        if header is None:
            return None
        if header.strip():
            break
        # Blank lines are tolerated only after the last frame.
        rest = lines.handle.read()
        if rest.strip():
            raise InputFileError(f"{name}: line {lines.number}: blank line where frame {frame_no} "
                                 "should start with its number of atoms")
        return None
    where = f"{name}: frame {frame_no}"
    tokens = header.split()
    if len(tokens) != 1 or not tokens[0].lstrip("+").isdigit():
        raise InputFileError(f"{where} (line {lines.number}): expected the number of atoms, "
                             f"found {header.strip()[:40]!r}")
    n_atoms = int(tokens[0])
    comment_line = lines.next()
    if comment_line is None:
        raise InputFileError(f"{where}: file ends after the atom count (line {lines.number}); "
                             "the file is truncated")
    comment = comment_line.rstrip("\r\n")
    first_line = lines.number + 1

    # Comment line: extended XYZ key=value pairs, an sGDML energy, or free text.
    info: dict = {}
    lattice = pbc = None
    columns: list[tuple[str, type, int]] | None = None
    stripped = comment.strip()
    pairs = None
    if "=" in stripped:
        try:
            pairs = _parse_comment(stripped, f"{where} (line {lines.number})")
        except InputFileError:
            # Free text that happens to contain "=" is a plain comment, unless it claims to be extended XYZ.
            if "Properties=" in stripped or "Lattice=" in stripped:
                raise
    if pairs is not None:
        for key, (text, quoted) in pairs.items():
            if key == "Lattice":
                values = text.split()
                if len(values) != 9 or not all(_is_number(v) for v in values):
                    raise InputFileError(f"{where}: Lattice must hold 9 numbers, found {text!r}")
                lattice = np.array(values, dtype=np.float64).reshape(3, 3)
            elif key == "pbc":
                flags = text.split()
                if len(flags) != 3 or any(f not in _BOOL for f in flags):
                    raise InputFileError(f"{where}: pbc must be three of T/F, found {text!r}")
                pbc = np.array([_BOOL[f] for f in flags], dtype=bool)
            elif key == "Properties":
                columns = _parse_properties(text, where)
            else:
                info[key] = _value(text, quoted)
        if lattice is not None and pbc is None:
            pbc = np.ones(3, dtype=bool)  # extended-XYZ convention: a lattice implies periodicity
    elif stripped and len(stripped.split()) == 1 and _is_number(stripped):
        info["energy"] = float(stripped)  # sGDML export: the comment is the energy
    elif stripped:
        info["comment"] = stripped

    rows: list[list[str]] = []
    for _ in range(n_atoms):
        line = lines.next()
        if line is None:
            raise InputFileError(f"{where}: expected {n_atoms} atom lines from line {first_line}, "
                                 f"found {len(rows)}; the file is truncated")
        rows.append(line.split())
    width = len(rows[0]) if rows else 0
    for i, row in enumerate(rows):
        if len(row) != width:
            raise InputFileError(f"{where} (line {first_line + i}): {len(row)} columns, "
                                 f"but the frame's first atom line has {width}")

    if columns is None:
        if width == 4 or n_atoms == 0:
            columns = [("species", str, 1), ("pos", float, 3)]
        elif width == 7:
            columns = [("species", str, 1), ("pos", float, 3), ("forces", float, 3)]
        else:
            raise InputFileError(f"{where} (line {first_line}): {width} columns; expected 4 "
                                 "(sym x y z), 7 (sym x y z fx fy fz) or a Properties= key")
    expected = sum(c for _, _, c in columns)
    if n_atoms and width != expected:
        raise InputFileError(f"{where} (line {first_line}): {width} columns, but Properties "
                             f"describes {expected}")

    table = np.array(rows, dtype=str).reshape(n_atoms, expected)
    arrays: dict[str, np.ndarray] = {}
    start = 0
    for col_name, kind, count in columns:
        block = table[:, start:start + count]
        start += count
        try:
            if kind is float:
                values = block.astype(np.float64)
            elif kind is int:
                values = block.astype(np.int64)
            elif kind is bool:
                bad = ~np.isin(block, list(_BOOL))
                if bad.any():
                    raise ValueError(block[bad][0])
                values = np.vectorize(_BOOL.__getitem__, otypes=[bool])(block) if block.size else block.astype(bool)
            else:
                values = block
        except ValueError:
            row_idx = next(i for i in range(n_atoms) if not _cell_ok(block[i], kind))
            bad_value = str(next(v for v in block[row_idx] if not _cell_ok([v], kind)))  # not np.str_('abc')
            what = {float: "a number", int: "an integer", bool: "T or F"}[kind]
            raise InputFileError(f"{where} (line {first_line + row_idx}): {col_name} value "
                                 f"{bad_value!r} is not {what}") from None
        arrays[col_name] = values[:, 0] if count == 1 else values

    symbols = _take(arrays, ("species",), None)
    if symbols is None:
        numbers = _take(arrays, ("Z",), None)
        if numbers is None:
            raise InputFileError(f"{where}: Properties has neither species nor Z; cannot tell the elements")
        bad = (numbers < 1) | (numbers >= len(ELEMENTS))
        if bad.any():
            raise InputFileError(f"{where}: atomic number {int(numbers[bad][0])} is out of range 1-118")
        symbols = np.array([ELEMENTS[z] for z in numbers], dtype=str)
    positions = _take(arrays, ("pos", "positions"), None)
    if positions is None or positions.dtype != np.float64 or positions.shape != (n_atoms, 3):
        raise InputFileError(f"{where}: Properties needs pos:R:3 for the positions")
    return XYZFrame(symbols=np.asarray(symbols, dtype=str).reshape(n_atoms), positions=positions,
                    lattice=lattice, pbc=pbc, info=info, arrays=arrays)


def _cell_ok(values, kind) -> bool:
    for v in values:
        try:
            if kind is float:
                float(v)
            elif kind is int:
                int(v)
            elif kind is bool and v not in _BOOL:
                return False
        except ValueError:
            return False
    return True


def _take(arrays: dict, names: tuple[str, ...], default):
    for name in names:
        if name in arrays:
            return arrays.pop(name)
    return default


def _open_text(path: str | os.PathLike) -> tuple[IO[str], str, bool]:
    if str(path) == "-":
        return sys.stdin, "<stdin>", False
    return open_text(path, "an XYZ file"), str(path), True


def iter_xyz(path: str | os.PathLike) -> Iterator[XYZFrame]:
    """Yield the frames of an XYZ / extended XYZ / sGDML-export file one at a time.

    ``path`` ``"-"`` reads standard input.

    Raises
    ------
    InputFileError
        Missing file, bad atom count, truncated frame, non-numeric values,
        malformed comment line; the message names the file, frame and line.

    >>> frames = list(iter_xyz(io.StringIO("1\\n-1.5\\nH 0 0 0.74 0 0 1\\n")))
    >>> frames[0].info["energy"], frames[0].arrays["forces"].shape
    (-1.5, (1, 3))
    """
    if isinstance(path, io.TextIOBase):
        handle, name, close = path, "<stream>", False
    else:
        handle, name, close = _open_text(path)
    try:
        lines = CountedLines(handle)
        frame_no = 0
        while True:
            with decoding_errors(name, lines, "XYZ"):
                frame = _read_frame(lines, name, frame_no)
            if frame is None:
                if frame_no == 0:
                    raise InputFileError(f"{name}: the file holds no frames")
                return
            yield frame
            frame_no += 1
    finally:
        if close:
            handle.close()


def read_xyz(path: str | os.PathLike) -> list[XYZFrame]:
    """All frames of an XYZ file; see :func:`iter_xyz`.

    >>> read_xyz(io.StringIO("2\\nwater-ish\\nO 0 0 0\\nH 0 0 1\\n"))[0].symbols.tolist()
    ['O', 'H']
    """
    return list(iter_xyz(path))


# --------------------------------------------------------------------------- writing

_SAFE_BARE = re.compile(r"^[^\s\"'=\\{}]+$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _format_scalar(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "T" if value else "F"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    raise TypeError(type(value).__name__)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _format_info(key: str, value, where: str) -> str:
    name = key if _SAFE_BARE.match(key) else _quoted(key)  # a key with spaces (ASE writes such) is quoted
    if isinstance(value, (str, np.str_)):
        text = str(value)
        if "\n" in text or "\r" in text:
            raise InputFileError(f"{where}: info[{key!r}] contains a line break; XYZ comments are one line")
        # Quote what would otherwise be read back as a number, a boolean or a list.
        if _SAFE_BARE.match(text) and _scalar(text) == text:
            return f"{name}={text}"
        return f"{name}=" + _quoted(text)
    array = np.asarray(value)
    if array.ndim == 0:
        try:
            return f"{name}={_format_scalar(array.item() if isinstance(value, np.ndarray) else value)}"
        except TypeError:
            pass
    elif array.ndim == 1 and array.size and (array.dtype.kind in "biuf"):
        return f'{name}="' + " ".join(_format_scalar(v) for v in array.tolist()) + '"'
    raise InputFileError(f"{where}: info[{key!r}] of type {type(value).__name__} cannot be written "
                         "to an XYZ comment; use numbers, booleans, strings or 1-D numeric arrays")


def _format_frame(frame: XYZFrame, where: str) -> str:
    n = frame.n_atoms
    positions = np.asarray(frame.positions, dtype=np.float64)
    symbols = np.asarray(frame.symbols, dtype=str)
    if positions.shape != (n, 3) or symbols.shape != (n,):
        raise InputFileError(f"{where}: symbols {symbols.shape} and positions {positions.shape} "
                             "do not match (N,) and (N, 3)")
    columns: list[tuple[str, np.ndarray]] = [("species", symbols.reshape(n, 1)), ("pos", positions)]
    spec = ["species:S:1", "pos:R:3"]
    for key, value in frame.arrays.items():
        if not _KEY.match(key) or key in ("species", "pos"):
            raise InputFileError(f"{where}: per-atom array name {key!r} cannot be written; use letters, "
                                 "digits and underscores, and not species/pos")
        array = np.asarray(value)
        if array.ndim not in (1, 2) or array.shape[0] != n:
            raise InputFileError(f"{where}: arrays[{key!r}] has shape {array.shape}; expected ({n},) or ({n}, k)")
        kind = {"f": "R", "i": "I", "u": "I", "b": "L", "U": "S", "S": "S"}.get(array.dtype.kind)
        if kind is None:
            raise InputFileError(f"{where}: arrays[{key!r}] of dtype {array.dtype} cannot be written")
        array = array.reshape(n, -1)
        spec.append(f"{key}:{kind}:{array.shape[1]}")
        columns.append((key, array))

    header = []
    if frame.lattice is not None:
        lattice = np.asarray(frame.lattice, dtype=np.float64)
        if lattice.shape != (3, 3):
            raise InputFileError(f"{where}: lattice has shape {lattice.shape}; expected (3, 3)")
        header.append('Lattice="' + " ".join(repr(float(v)) for v in lattice.ravel()) + '"')
    header.append("Properties=" + ":".join(spec))
    for key, value in frame.info.items():
        if not str(key) or "\n" in str(key) or "\r" in str(key) or key in ("Lattice", "Properties", "pbc"):
            raise InputFileError(f"{where}: info key {key!r} cannot be written; use letters, digits "
                                 "and underscores")
        header.append(_format_info(str(key), value, where))
    if frame.pbc is not None:
        flags = np.asarray(frame.pbc, dtype=bool).reshape(-1)
        if flags.shape != (3,):
            raise InputFileError(f"{where}: pbc must hold 3 flags, found {flags.size}")
        header.append('pbc="' + " ".join("T" if f else "F" for f in flags) + '"')

    out = [f"{n}\n", " ".join(header) + "\n"]
    cells = []
    for key, array in columns:
        if array.dtype.kind == "f":
            cells.append([[repr(float(v)) for v in row] for row in array.tolist()])
        elif array.dtype.kind == "b":
            cells.append([["T" if v else "F" for v in row] for row in array.tolist()])
        elif array.dtype.kind in "US":
            text = array.astype(str)
            if any((not s) or any(c.isspace() for c in s) for s in text.ravel()):
                raise InputFileError(f"{where}: arrays[{key!r}] has empty strings or strings with spaces")
            cells.append(text.tolist())
        else:
            cells.append([[str(int(v)) for v in row] for row in array.tolist()])
    for i in range(n):
        out.append(" ".join(" ".join(col[i]) for col in cells) + "\n")
    return "".join(out)


def write_extxyz(path: str | os.PathLike, frames: Iterable[XYZFrame]) -> None:
    """Write frames as extended XYZ with explicit keys, atomically; ``"-"`` writes stdout.

    The comment line carries ``Lattice`` and ``pbc`` (when set), ``Properties``
    (``species:S:1:pos:R:3`` then every entry of ``arrays``) and every ``info``
    entry. Floats are written with ``repr`` so reading them back is exact.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.xyz"
    >>> write_extxyz(p, [XYZFrame(np.array(["H"]), np.zeros((1, 3)), info={"energy": -1.5})])
    >>> p.read_text().splitlines()[1]
    'Properties=species:S:1:pos:R:3 energy=-1.5'
    """
    if str(path) == "-":
        for i, frame in enumerate(frames):
            sys.stdout.write(_format_frame(frame, f"<stdout>: frame {i}"))
        sys.stdout.flush()
        return
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            for i, frame in enumerate(frames):
                handle.write(_format_frame(frame, f"{path}: frame {i}"))
            handle.flush()
            os.fsync(handle.fileno())
