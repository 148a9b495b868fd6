"""Protein structures from PDB and mmCIF files (via gemmi), and back.

Reading keeps, of the chosen model(s), the residues of the 20 standard amino
acids and, by default, only their heavy atoms. Everything else is counted in
:attr:`ProteinStructure.skipped` under a reason ("water HOH", "non-standard
amino acid MSE", "hydrogen atoms", ...), so callers can report what was left
out and why.

Alternate locations are resolved by keeping one conformer, never by dropping
atoms:

* several residues at one sequence position (micro-heterogeneity, e.g. PRO/SER
  at 3NIR A22): the residue with the highest mean occupancy is kept (ties: the
  first in the file);
* within a residue, the alternate-location letter with the highest mean
  occupancy is chosen (ties: the letter seen first); each atom name then keeps
  its atom without an alt-loc if there is one, else its atom with the chosen
  letter, else its highest-occupancy (then first) variant. An atom that only
  exists in another conformer is therefore still kept.

BinaryCIF (``.bcif``, the RCSB's compact format) is read too, decoded to
mmCIF text first, and GROMACS ``.gro`` files (through mdtraj; no chain ids).

Disulfide records (PDB SSBOND, mmCIF ``struct_conn``) are kept as residue pairs.

Writing produces PDB or mmCIF (by extension, ``.gz`` compressed if asked)
with the stored atom names, elements, chain ids, residue numbers and insertion
codes, the disulfides, and in PDB a TER record at each recorded chain break,
atomically, or to stdout for ``-``.

Lengths are in Å throughout.
"""
from __future__ import annotations

import dataclasses
import gzip
import io
import os
import string
import sys
import zlib
from collections import Counter
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from ..errors import ConfigError, InputFileError
from .atomic import atomic_write_bytes
from .bcif import bcif_to_cif_text, looks_like_bcif
from .text import check_input_file, read_stdin

__all__ = [
    "STANDARD_AMINO_ACIDS",
    "MD_RESIDUE_ALIASES",
    "ProteinStructure",
    "read_structure",
    "parse_structure",
    "write_structure",
    "output_format",
    "structure_text",
    "structure_format",
    "STRUCTURE_FORMATS",
]

#: The 20 standard amino acids (three-letter codes, alphabetical).
STANDARD_AMINO_ACIDS = (
    "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE",
    "LEU", "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL",
)
_STANDARD = frozenset(STANDARD_AMINO_ACIDS)

#: Names that MD engines and force fields (CHARMM, AMBER, GROMACS/GROMOS) give to protonation
#: and disulfide states of standard residues, and selenomethionine; the heavy atoms are the parent's
#: (MSE's Se stands where MET's S is). Used for coarse-grained input, one bead per residue, where
#: only the residue type matters.
MD_RESIDUE_ALIASES = {
    **dict.fromkeys(("HSD", "HSE", "HSP", "HID", "HIE", "HIP", "HISD", "HISE", "HISH", "HISA", "HISB",
                     "HIS1", "HIS2"), "HIS"),
    **dict.fromkeys(("CYX", "CYM", "CYS2", "CYSH"), "CYS"),
    **dict.fromkeys(("ASH", "ASPH", "ASPP"), "ASP"),
    **dict.fromkeys(("GLH", "GLUH", "GLUP"), "GLU"),
    **dict.fromkeys(("LYN", "LSN", "LYSH", "LYSN", "LYP"), "LYS"),
    **dict.fromkeys(("ARN", "ARGN"), "ARG"),
    "TYM": "TYR", "MSE": "MET",
    # AMBER's terminal residues: N- and C-terminal forms of each standard residue (NALA, CLEU, ...)
    **{f"{end}{name}": name for end in "NC" for name in STANDARD_AMINO_ACIDS},
}

#: The four-letter ones, which GROMACS writes into a PDB file's columns 18-21 (the 21st is blank in PDB).
_FOUR_LETTER_ALIASES = frozenset(name for name in MD_RESIDUE_ALIASES if len(name) == 4)

#: Output formats and the extensions that select them.
STRUCTURE_FORMATS = {"pdb": (".pdb", ".ent"), "cif": (".cif", ".mmcif")}
#: BinaryCIF, read only (decoded to mmCIF text, :mod:`gaatool.io.bcif`)
BCIF_SUFFIXES = (".bcif", ".bcif.gz")

_NO_ALTLOC = "\x00"


@dataclasses.dataclass
class ProteinStructure:
    """Amino-acid residues and their atoms, for one or more models (frames).

    Atoms of a residue are contiguous and residues are in file order.

    Attributes
    ----------
    residue_names, chain_ids, insertion_codes : numpy.ndarray (R,) str
        Three-letter residue names, chain ids (author names) and insertion
        codes ("" for none).
    residue_numbers : numpy.ndarray (R,) int64
        Author residue numbers.
    atom_names, elements : numpy.ndarray (N,) str
    atom_residues : numpy.ndarray (N,) int64
        Residue index of each atom (non-decreasing).
    positions : numpy.ndarray (F, N, 3) float64
        Coordinates in Å of every model (F >= 1).
    entry_id : str
        The entry id (``_entry.id`` or the file name's stem).
    source : str
        Where the structure was read from.
    skipped : dict of str to int
        What was left out, by reason, with counts (residues or atoms, as the
        reason says).
    renamed : dict of str to int
        Residues read under their standard name through ``residue_aliases``,
        e.g. ``{"HSD as HIS": 3}``.
    notes : list of str
        How the file was read where it left something to choose (residues
        without numbers, segment ids standing for chain ids).
    file_atom_index : numpy.ndarray (N,) int64 or None
        Position of each atom among all atoms of the file's model (0-based,
        file order), which is how trajectories index atoms.
    file_atom_count : int or None
        Number of atoms of the file's model, kept or not.
    file_residue_names : numpy.ndarray (R,) str
        Residue names as the file writes them, before ``residue_aliases`` (``CYX`` for a residue read as
        ``CYS``); default: ``residue_names``.
    disulfides : numpy.ndarray (D, 2) int64
        Residue index pairs of disulfide-bonded cysteines: read from SSBOND records (PDB) or ``struct_conn``
        disulfides (mmCIF) between residues that were kept, written back the same way.
    breaks : numpy.ndarray (B, 2) int64 or None
        Pairs (r, r + 1) of residues that follow each other in a chain but are not bonded, where something
        decided them (the backmapper records its beads' chain breaks on the atoms it builds); PDB output
        ends the chain part before each with a TER record. None: not recorded.
    """

    residue_names: np.ndarray
    residue_numbers: np.ndarray
    insertion_codes: np.ndarray
    chain_ids: np.ndarray
    atom_names: np.ndarray
    elements: np.ndarray
    atom_residues: np.ndarray
    positions: np.ndarray
    entry_id: str = ""
    source: str = ""
    skipped: dict = dataclasses.field(default_factory=dict)
    renamed: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)
    file_atom_index: np.ndarray | None = None
    file_atom_count: int | None = None
    file_residue_names: np.ndarray | None = None
    disulfides: np.ndarray | None = None
    breaks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.residue_names = np.asarray(self.residue_names, dtype=str)
        self.residue_numbers = np.asarray(self.residue_numbers, dtype=np.int64)
        self.insertion_codes = np.asarray(self.insertion_codes, dtype=str)
        self.chain_ids = np.asarray(self.chain_ids, dtype=str)
        self.atom_names = np.asarray(self.atom_names, dtype=str)
        self.elements = np.asarray(self.elements, dtype=str)
        self.atom_residues = np.asarray(self.atom_residues, dtype=np.int64)
        positions = np.asarray(self.positions, dtype=np.float64)
        if positions.ndim == 2:
            positions = positions[None]
        self.positions = positions
        n_res, n_atoms = len(self.residue_names), len(self.atom_names)
        for name in ("residue_numbers", "insertion_codes", "chain_ids"):
            if len(getattr(self, name)) != n_res:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n_res} residues")
        for name in ("elements", "atom_residues"):
            if len(getattr(self, name)) != n_atoms:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n_atoms} atoms")
        if self.file_atom_index is not None:
            self.file_atom_index = np.asarray(self.file_atom_index, dtype=np.int64)
            if len(self.file_atom_index) != n_atoms:
                raise ValueError(f"file_atom_index has {len(self.file_atom_index)} entries for {n_atoms} atoms")
        self.file_residue_names = np.asarray(self.residue_names if self.file_residue_names is None
                                             else self.file_residue_names, dtype=str)
        if len(self.file_residue_names) != n_res:
            raise ValueError(f"file_residue_names has {len(self.file_residue_names)} entries for {n_res} residues")
        self.disulfides = _residue_pairs(self.disulfides, n_res, "disulfides")
        if self.breaks is not None:
            self.breaks = _residue_pairs(self.breaks, n_res, "breaks")
            if np.any(self.breaks[:, 1] != self.breaks[:, 0] + 1):
                raise ValueError("breaks must be pairs (r, r + 1) of consecutive residues")
        if positions.ndim != 3 or positions.shape[1:] != (n_atoms, 3):
            raise ValueError(f"positions have shape {positions.shape}; expected (F, {n_atoms}, 3)")
        if n_atoms and (np.any(np.diff(self.atom_residues) < 0) or self.atom_residues[-1] >= n_res
                        or self.atom_residues[0] < 0):
            raise ValueError("atom_residues must be non-decreasing residue indices")

    @property
    def n_residues(self) -> int:
        return len(self.residue_names)

    @property
    def n_atoms(self) -> int:
        return len(self.atom_names)

    @property
    def n_models(self) -> int:
        return self.positions.shape[0]

    def residue_starts(self) -> np.ndarray:
        """Offsets (R + 1,) such that residue r owns atoms ``starts[r]:starts[r + 1]``.

        >>> s = ProteinStructure(["GLY", "ALA"], [1, 2], ["", ""], ["A", "A"], ["N", "CA", "N"],
        ...                      ["N", "C", "N"], [0, 0, 1], np.zeros((3, 3)))
        >>> s.residue_starts().tolist()
        [0, 2, 3]
        """
        counts = np.bincount(self.atom_residues, minlength=self.n_residues)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def chains(self) -> list[tuple[str, np.ndarray]]:
        """Runs of consecutive residues with the same chain id: [(chain id, residue indices)]."""
        result: list[tuple[str, np.ndarray]] = []
        if self.n_residues == 0:
            return result
        change = np.flatnonzero(self.chain_ids[1:] != self.chain_ids[:-1]) + 1
        for part in np.split(np.arange(self.n_residues), change):
            result.append((str(self.chain_ids[part[0]]), part))
        return result

    def residue_label(self, index: int) -> str:
        """A readable residue id such as ``A/LYS12`` or ``B/GLY5A``."""
        return (f"{self.chain_ids[index]}/{self.residue_names[index]}{self.residue_numbers[index]}"
                f"{self.insertion_codes[index]}")

    def select_residues(self, keep) -> "ProteinStructure":
        """A new structure with only the residues where ``keep`` (R,) bool is true."""
        keep = np.asarray(keep, dtype=bool)
        atom_keep = keep[self.atom_residues]
        new_index = np.cumsum(keep) - 1
        bonded = keep[self.disulfides].all(axis=1)
        return dataclasses.replace(
            self,
            residue_names=self.residue_names[keep], residue_numbers=self.residue_numbers[keep],
            insertion_codes=self.insertion_codes[keep], chain_ids=self.chain_ids[keep],
            atom_names=self.atom_names[atom_keep], elements=self.elements[atom_keep],
            atom_residues=new_index[self.atom_residues[atom_keep]], positions=self.positions[:, atom_keep],
            skipped=dict(self.skipped),
            file_atom_index=None if self.file_atom_index is None else self.file_atom_index[atom_keep],
            file_residue_names=self.file_residue_names[keep], disulfides=new_index[self.disulfides[bonded]],
            breaks=self._kept_breaks(keep))

    def _kept_breaks(self, keep: np.ndarray) -> np.ndarray | None:
        """The recorded breaks among the residues ``keep`` selects (new indices): the old ones, and wherever
        residues of a chain were left out between two that are kept. None when none are recorded."""
        if self.breaks is None:
            return None
        kept = np.flatnonzero(keep)
        first, second = kept[:-1], kept[1:]
        broken = np.zeros(self.n_residues, dtype=bool)  # broken[r]: a recorded break right after residue r
        broken[self.breaks[:, 0]] = True
        gap = (second > first + 1) | broken[first]
        at = np.flatnonzero(gap & (self.chain_ids[first] == self.chain_ids[second]))
        return np.stack([at, at + 1], axis=1)

    def with_positions(self, positions) -> "ProteinStructure":
        """The same atoms with other coordinates (F, N, 3) or (N, 3)."""
        return dataclasses.replace(self, positions=np.asarray(positions, dtype=np.float64), skipped=dict(self.skipped))


def _residue_pairs(pairs, n_residues: int, name: str) -> np.ndarray:
    """``pairs`` as (P, 2) int64 residue indices (none for None); ValueError for indices out of range."""
    pairs = np.zeros((0, 2), np.int64) if pairs is None else np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if np.any((pairs < 0) | (pairs >= n_residues)):
        raise ValueError(f"{name} name residues outside 0..{n_residues - 1}")
    return pairs


# ---------------------------------------------------------------------------
# reading


def structure_format(path: str | os.PathLike) -> str:
    """``"pdb"`` or ``"cif"`` from a file name (a trailing ``.gz`` is ignored).

    >>> structure_format("a.cif.gz"), structure_format("b.PDB")
    ('cif', 'pdb')
    """
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for fmt, extensions in STRUCTURE_FORMATS.items():
        if name.endswith(extensions):
            return fmt
    raise ConfigError(f"{path}: cannot tell the structure format from the extension; use .pdb, .ent, .cif or "
                      ".mmcif (optionally .gz)")


def output_format(out: str | os.PathLike | None, fmt: str | None = None) -> str | None:
    """The format (``pdb``/``cif``) a structure will be written to ``out`` in: ``fmt`` or the extension; None
    for stdout (``-``) or no output without ``fmt``. Raises ConfigError for a bad name or format, so that a
    command fails before any work.

    >>> output_format("out.cif.gz"), output_format("-"), output_format("-", "cif")
    ('cif', None, 'cif')
    """
    if out is not None and str(out) != "-":
        fmt = fmt or structure_format(out)
    if fmt is not None and fmt not in STRUCTURE_FORMATS:
        raise ConfigError(f"unknown output format {fmt!r}; use pdb or cif")
    return fmt


def _sniff_format(text: str) -> str:
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        return "cif" if stripped.startswith("data_") else "pdb"
    return "pdb"


def read_structure(path: str | os.PathLike, all_models: bool = False, heavy_only: bool = True,
                   stdin: BinaryIO | None = None, residue_aliases: dict[str, str] | None = None) -> ProteinStructure:
    """Read the amino-acid residues of a PDB or mmCIF file (gzipped or not).

    Parameters
    ----------
    path : path-like or ``"-"``
        The file; ``"-"`` reads ``stdin`` (default ``sys.stdin.buffer``), whose
        format is detected from its first line.
    all_models : bool
        Read every model (all must hold the same residues and atoms) instead of
        the first only.
    heavy_only : bool
        Drop hydrogen and deuterium atoms.
    residue_aliases : dict of str to str, optional
        Other residue names to read as standard ones (e.g.
        :data:`MD_RESIDUE_ALIASES`: ``HSD`` as ``HIS``); counted in ``renamed``.

    Returns
    -------
    ProteinStructure
        Positions (F, N, 3) in Å; F = 1 unless ``all_models``.

    Raises
    ------
    InputFileError
        Missing, unreadable or damaged file; no models; models that differ.
    """
    if str(path) == "-":
        data = read_stdin(stdin)
        if looks_like_bcif(data):
            return parse_structure(bcif_to_cif_text(data, "stdin"), "cif", source="stdin", all_models=all_models,
                                   heavy_only=heavy_only, residue_aliases=residue_aliases)
        text = data.decode("utf-8", errors="replace")
        return parse_structure(text, _sniff_format(text), source="stdin", all_models=all_models,
                               heavy_only=heavy_only, residue_aliases=residue_aliases)
    path = Path(path)
    check_input_file(path, "a structure file")
    if path.name.lower().endswith(BCIF_SUFFIXES):
        return _read_bcif(path, all_models, heavy_only, residue_aliases)
    if path.name.lower().endswith(".gro"):
        return _read_gro(path, all_models, heavy_only, residue_aliases)
    try:
        fmt = structure_format(path)
    except ConfigError:
        fmt = None
    if fmt == "pdb":  # read as text: GROMACS's residue names need mending first (_four_letter_residue_names)
        return _from_pdb_text(_file_bytes(path).decode("utf-8", errors="replace"), str(path), path, all_models,
                              heavy_only, residue_aliases)
    if path.name.lower().endswith(".gz"):
        _check_gzip(path)
    import gemmi

    try:
        if fmt is None:
            # Unknown extension: let gemmi look at the content.
            st = gemmi.read_structure(str(path), merge_chain_parts=False, format=gemmi.CoorFormat.Detect)
        else:
            # unmerged chain parts keep the file's atom order (trajectories index atoms by it)
            st = gemmi.read_structure(str(path), merge_chain_parts=False)
    except (RuntimeError, ValueError, OSError, EOFError) as err:
        raise InputFileError(f"{path}: cannot read as PDB or mmCIF ({_first_line(err)}); "
                             "check that it is a complete text PDB/mmCIF file") from err
    return _from_gemmi(st, str(path), _entry_id(st, path), all_models, heavy_only, residue_aliases)


def _file_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed for ``.gz`` (whole, so a cut or damaged stream is an error)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputFileError(f"{path}: cannot read ({_first_line(err)})") from err
    if not path.name.lower().endswith(".gz"):
        return data
    try:
        return gzip.decompress(data)
    except _GZIP_ERRORS as err:
        raise _gzip_error(path, err) from err


def _check_gzip(path: Path) -> None:
    """Raise InputFileError unless the gzip stream of ``path`` is complete: gemmi reads a .gz file cut
    between two records without complaint, which would give the structure in part."""
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 22):
                pass
    except _GZIP_ERRORS as err:
        raise _gzip_error(path, err) from err


#: What damaged gzip data raises: gzip.BadGzipFile (an OSError), EOFError when cut, zlib.error inside the stream.
_GZIP_ERRORS = (OSError, EOFError, zlib.error)


def _gzip_error(path: Path, err: Exception) -> InputFileError:
    return InputFileError(f"{path}: damaged or truncated gzip data ({_first_line(err)})")


def _read_gro(path: Path, all_models: bool, heavy_only: bool,
              residue_aliases: dict[str, str] | None) -> ProteinStructure:
    """A GROMACS ``.gro`` file (via mdtraj; nm -> Å), turned into a gemmi structure so that the same
    residue and atom rules apply. Frames are models. The format has no chain ids: mdtraj's chains
    (usually one) get A, B, ..., and residue-number jumps (a new chain restarting its numbering) are
    what separates chains for the backmapper (chain breaks)."""
    import gemmi
    import mdtraj

    try:
        trajectory = mdtraj.load(str(path))
    except Exception as err:  # mdtraj raises many types for malformed files
        raise InputFileError(f"{path}: cannot read as a GROMACS .gro file ({_first_line(err)})") from err
    structure = gemmi.Structure()
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    for frame in range(trajectory.n_frames):
        model = gemmi.Model(str(frame + 1))
        for chain in trajectory.topology.chains:
            block = gemmi.Chain(letters[chain.index % len(letters)])
            for residue in chain.residues:
                record = gemmi.Residue()
                record.name, record.seqid = residue.name, gemmi.SeqId(int(residue.resSeq), " ")
                for atom in residue.atoms:
                    item = gemmi.Atom()
                    item.name = atom.name
                    item.element = gemmi.Element(atom.element.symbol if atom.element is not None else "X")
                    item.pos = gemmi.Position(*(10.0 * trajectory.xyz[frame, atom.index].astype(np.float64)))
                    item.occ = 1.0
                    record.add_atom(item)
                block.add_residue(record)
            model.add_chain(block)
        structure.add_model(model)
    return _from_gemmi(structure, str(path), path.stem.upper(), all_models, heavy_only, residue_aliases)


def _read_bcif(path: Path, all_models: bool, heavy_only: bool,
               residue_aliases: dict[str, str] | None) -> ProteinStructure:
    """A BinaryCIF file (gzipped or not), decoded to mmCIF text (:mod:`gaatool.io.bcif`)."""
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError) as err:
        raise InputFileError(f"{path}: cannot read ({_first_line(err)})") from err
    return parse_structure(bcif_to_cif_text(data, str(path)), "cif", source=str(path), all_models=all_models,
                           heavy_only=heavy_only, residue_aliases=residue_aliases)


def parse_structure(text: str, fmt: str, source: str = "<text>", all_models: bool = False,
                    heavy_only: bool = True, residue_aliases: dict[str, str] | None = None) -> ProteinStructure:
    """Like :func:`read_structure`, from PDB (``fmt="pdb"``) or mmCIF (``"cif"``) text."""
    import gemmi

    if fmt == "pdb":
        return _from_pdb_text(text, source, None, all_models, heavy_only, residue_aliases)
    if fmt != "cif":
        raise ConfigError(f"unknown structure format {fmt!r}; use pdb or cif")
    try:
        st = gemmi.make_structure_from_block(gemmi.cif.read_string(text).sole_block())
    except (RuntimeError, ValueError) as err:
        raise InputFileError(f"{source}: cannot read as CIF ({_first_line(err)})") from err
    return _from_gemmi(st, source, _entry_id(st, None), all_models, heavy_only, residue_aliases)


def _from_pdb_text(text: str, source: str, path: Path | None, all_models: bool, heavy_only: bool,
                   residue_aliases: dict[str, str] | None) -> ProteinStructure:
    """PDB text (GROMACS's four-letter residue names mended first) as a ProteinStructure."""
    import gemmi

    text, moved = _four_letter_residue_names(text)
    try:
        st = gemmi.read_pdb_string(text)
    except (RuntimeError, ValueError) as err:
        raise InputFileError(f"{source}: cannot read as PDB ({_first_line(err)})") from err
    structure = _from_gemmi(st, source, _entry_id(st, path), all_models, heavy_only, residue_aliases)
    if moved:
        structure.notes.append(moved)
    return structure


def _four_letter_residue_names(text: str) -> tuple[str, str]:
    """PDB text with GROMACS's four-letter residue names (columns 18-21: HISE, CYS2, LYSN, ...) replaced by
    their standard residue's name and a blank 21st column, and a note of what was replaced ("" if nothing)."""
    lines = text.splitlines(keepends=True)
    replaced: Counter = Counter()
    for i, line in enumerate(lines):
        if line.startswith(("ATOM  ", "HETATM")) and line[17:21] in _FOUR_LETTER_ALIASES:
            replaced[line[17:21]] += 1
            lines[i] = line[:17] + MD_RESIDUE_ALIASES[line[17:21]] + " " + line[21:]
    if not replaced:
        return text, ""
    names = ", ".join(f"{name} as {MD_RESIDUE_ALIASES[name]}" for name in sorted(replaced))
    return "".join(lines), (f"four-letter residue names in columns 18-21 (as GROMACS writes them) read as "
                            f"standard residues: {names}")


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _entry_id(st, path: Path | None) -> str:
    info = dict(st.info)
    entry = str(info.get("_entry.id", "")).strip()
    if entry and entry.lower() != "model":
        return entry.upper()
    if path is not None:
        return path.name.split(".")[0]
    return str(st.name or "")


def _skip_reason(name: str) -> str:
    import gemmi

    info = gemmi.find_tabulated_residue(name)
    if info is not None:
        if info.is_water():
            return f"water {name}"
        if info.is_amino_acid():
            return f"non-standard amino acid {name}"
        if info.is_nucleic_acid():
            return f"nucleic acid {name}"
    return f"ligand or ion {name}"


@dataclasses.dataclass
class _Atom:
    name: str
    altloc: str
    occ: float
    element: str
    xyz: tuple
    file_index: int


@dataclasses.dataclass
class _Residue:
    chain: str
    name: str
    number: int
    icode: str
    atoms: list


def _occupancy(atoms) -> float:
    return float(np.mean([a.occ for a in atoms])) if atoms else 0.0


def _choose_conformer(atoms: list) -> list:
    """Resolve alternate locations of one residue's atoms (see the module docstring)."""
    letters: dict[str, list] = {}
    for atom in atoms:
        if atom.altloc != _NO_ALTLOC:
            letters.setdefault(atom.altloc, []).append(atom)
    if not letters:
        return list(atoms)
    # max() keeps the first of equal maxima, i.e. the letter seen first
    chosen = max(letters, key=lambda letter: _occupancy(letters[letter]))
    by_name: dict[str, list] = {}
    for atom in atoms:
        by_name.setdefault(atom.name, []).append(atom)
    kept = []
    for variants in by_name.values():
        plain = [a for a in variants if a.altloc == _NO_ALTLOC]
        if plain:
            kept.append(plain[0])
            continue
        same = [a for a in variants if a.altloc == chosen]
        kept.append(same[0] if same else max(variants, key=lambda a: a.occ))
    return kept


def _plain_residues(model, notes: Counter, source: str) -> tuple[list, int]:
    """The model's residues as plain records (atoms numbered in file order) and its atom count.

    A blank chain id with a segment id (CHARMM/NAMD PDB files: PROA, PROB) takes the segment id; a residue
    without an author number takes its mmCIF label number. Without either, which atoms form a residue is
    a guess (consecutive atoms of one residue name): refused."""
    residues, count = [], 0
    for chain in model:
        for residue in chain:
            atoms = []
            for atom in residue:
                atoms.append(_Atom(atom.name.strip(), atom.altloc, float(atom.occ), atom.element.name,
                                   (atom.pos.x, atom.pos.y, atom.pos.z), count))
                count += 1
            chain_id = chain.name
            if not chain_id.strip() and residue.segment.strip():
                chain_id = residue.segment.strip()
                notes["segment ids as chain ids"] += 1
            number = residue.seqid.num
            if number is None:
                if residue.label_seq is None:
                    raise InputFileError(f"{source}: residue {residue.name} of chain {chain_id or '(blank)'} has no "
                                         "residue number (PDB columns 23-26, mmCIF auth_seq_id or label_seq_id), "
                                         "so its atoms cannot be told from the next residue's; number the residues")
                number = residue.label_seq
                notes["residues without an author number"] += 1
            residues.append((_Residue(chain_id, residue.name.strip().upper(), int(number),
                                      residue.seqid.icode.strip(), atoms), (chain_id, str(residue.seqid), number)))
    return residues, count


def _residue_groups(residues: list) -> Iterator[list]:
    """Consecutive residues of one chain at one sequence id (micro-heterogeneity gives groups of several)."""
    group: list = []
    for residue, key in residues:
        if group and key == group[-1][1]:
            group.append((residue, key))
            continue
        if group:
            yield [r for r, _ in group]
        group = [(residue, key)]
    if group:
        yield [r for r, _ in group]


def _read_model(model, heavy_only: bool, skipped: Counter, aliases: dict[str, str],
                renamed: Counter, notes: Counter, source: str) -> tuple[list, list, int]:
    """[(chain, name, number, icode, name in the file)], [(residue index, atom name, element, xyz, file index)],
    atom count."""
    residues, atoms = [], []
    plain, count = _plain_residues(model, notes, source)

    def heavy(res):
        return [a for a in res.atoms if not (heavy_only and a.element in ("H", "D"))]

    for group in _residue_groups(plain):
        if len(group) > 1:
            residue = max(group, key=lambda res: _occupancy(heavy(res)))
            skipped["alternative residue at the same position (micro-heterogeneity)"] += len(group) - 1
        else:
            residue = group[0]
        name = residue.name
        if name not in _STANDARD and aliases.get(name) in _STANDARD:
            name = aliases[name]
            renamed[f"{residue.name} as {name}"] += 1
        if name not in _STANDARD:
            skipped[_skip_reason(name)] += 1
            continue
        kept = heavy(residue)
        n_h = len(residue.atoms) - len(kept)
        if n_h:
            skipped["hydrogen atoms"] += n_h
        chosen = _choose_conformer(kept)
        if len(chosen) < len(kept):
            skipped["atoms of other alternate conformers"] += len(kept) - len(chosen)
        if not chosen:
            skipped["standard residue without heavy atoms"] += 1
            continue
        index = len(residues)
        residues.append((residue.chain, name, residue.number, residue.icode, residue.name))
        for atom in chosen:
            atoms.append((index, atom.name, atom.element, atom.xyz, atom.file_index))
    kept_chains = {r[0] for r in residues}
    for chain in dict.fromkeys(r.chain for r, _ in plain):
        if chain not in kept_chains:
            skipped[f"chain {chain or '(blank)'} without standard amino acids"] += 1
    return residues, atoms, count


def _from_gemmi(st, source: str, entry_id: str, all_models: bool, heavy_only: bool,
                residue_aliases: dict[str, str] | None = None) -> ProteinStructure:
    if len(st) == 0:
        raise InputFileError(f"{source}: holds no models (no ATOM/HETATM records); is it a coordinate file?")
    skipped: Counter = Counter()
    renamed: Counter = Counter()
    notes: Counter = Counter()
    models = range(len(st)) if all_models else range(1)
    topology, frames = None, []
    for m in models:
        model_skipped, model_renamed, model_notes = Counter(), Counter(), Counter()
        residues, atoms, atom_count = _read_model(st[m], heavy_only, model_skipped, residue_aliases or {},
                                                  model_renamed, model_notes, source)
        key = ([r[:4] for r in residues], [(a[0], a[1]) for a in atoms])
        if topology is None:
            topology, first_residues, first_atoms, first_count = key, residues, atoms, atom_count
            skipped, renamed, notes = model_skipped, model_renamed, model_notes
        elif key != topology:
            raise InputFileError(f"{source}: model {m + 1} has other residues or atoms than model 1; "
                                 "split the models into separate files")
        frames.append(np.array([a[3] for a in atoms], dtype=np.float64).reshape(-1, 3))
    if not all_models and len(st) > 1:
        skipped["models after the first"] += len(st) - 1
    residues, atoms = first_residues, first_atoms
    return ProteinStructure(
        residue_names=[r[1] for r in residues], residue_numbers=[r[2] for r in residues],
        insertion_codes=[r[3] for r in residues], chain_ids=[r[0] for r in residues],
        atom_names=[a[1] for a in atoms], elements=[a[2] for a in atoms],
        atom_residues=np.array([a[0] for a in atoms], dtype=np.int64),
        positions=np.stack(frames) if frames else np.zeros((1, 0, 3)),
        entry_id=entry_id, source=source, skipped=dict(skipped), renamed=dict(renamed),
        notes=_note_lines(notes), file_atom_index=np.array([a[4] for a in atoms], dtype=np.int64),
        file_atom_count=first_count, file_residue_names=[r[4] for r in residues],
        disulfides=_recorded_disulfides(st, residues))


def _recorded_disulfides(st, residues: list) -> np.ndarray:
    """Residue index pairs (D, 2) of the structure's disulfide records (SSBOND, mmCIF ``struct_conn``) between
    kept cysteines; bonds to a symmetry mate (another copy of the molecule) are left out."""
    import gemmi

    index = {(r[0], r[2], r[3]): k for k, r in enumerate(residues) if r[1] == "CYS"}
    pairs = set()
    for connection in st.connections:
        if connection.type != gemmi.ConnectionType.Disulf or connection.asu == gemmi.Asu.Different:
            continue
        ends = [index.get((p.chain_name, p.res_id.seqid.num, p.res_id.seqid.icode.strip()))
                for p in (connection.partner1, connection.partner2)]
        if None not in ends and ends[0] != ends[1]:
            pairs.add(tuple(sorted(ends)))
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def _note_lines(notes: Counter) -> list[str]:
    lines = []
    if notes["segment ids as chain ids"]:
        lines.append(f"blank chain ids: the segment ids (columns 73-76) are the chains of "
                     f"{notes['segment ids as chain ids']} residues")
    if notes["residues without an author number"]:
        lines.append(f"{notes['residues without an author number']} residues without an author number "
                     "(auth_seq_id): numbered by their mmCIF label numbers")
    return lines


# ---------------------------------------------------------------------------
# writing


#: Longest chain id gemmi writes into a PDB file (columns 21-22), and longest segment id (columns 73-76).
PDB_CHAIN_ID_LENGTH, PDB_SEGMENT_ID_LENGTH = 2, 4


def pdb_chain_ids(structure: ProteinStructure) -> tuple[dict[str, str], str]:
    """Chain ids too long for a PDB file (a CHARMM segment id PROA, an mmCIF chain AAA) -> the free single
    letters they are written as, their own ids going to the segment-id columns; and a note saying so
    ("" when every id fits). Raises ConfigError where that cannot work: write mmCIF then."""
    ids = list(dict.fromkeys(str(c) for c in structure.chain_ids))
    long = [c for c in ids if len(c) > PDB_CHAIN_ID_LENGTH]
    if not long:
        return {}, ""
    free = [c for c in string.ascii_uppercase + string.ascii_lowercase + string.digits if c not in ids]
    too_long = [c for c in long if len(c) > PDB_SEGMENT_ID_LENGTH]
    if too_long or len(long) > len(free):
        what = f"chain id {too_long[0]!r} is" if too_long else f"{len(long)} chain ids are"
        raise ConfigError(f"{what} too long for the PDB format; write mmCIF (.cif), which keeps them")
    mapping = dict(zip(long, free))
    return mapping, ("chain ids too long for PDB written as " + ", ".join(f"{c} -> {mapping[c]}" for c in long)
                     + " (the segment-id columns keep them; mmCIF keeps them as chain ids)")


def _to_gemmi(structure: ProteinStructure, chain_names: dict[str, str] | None = None, split_at_breaks: bool = False):
    """The structure as a gemmi.Structure; ``split_at_breaks``: each chain in parts at its recorded
    :attr:`~ProteinStructure.breaks` (gemmi's PDB writer ends every part with a TER record)."""
    import gemmi

    chain_names = chain_names or {}
    st = gemmi.Structure()
    st.name = structure.entry_id or "model"
    starts = structure.residue_starts()
    part_starts = set()
    if split_at_breaks and structure.breaks is not None:
        part_starts = set(structure.breaks[:, 1].tolist())
    for f in range(structure.n_models):
        model = gemmi.Model(f + 1)
        positions = structure.positions[f]
        for chain_id, residues in structure.chains():
            chain = gemmi.Chain(chain_names.get(chain_id, chain_id))
            for position, r in enumerate(residues):
                if position and r in part_starts:
                    model.add_chain(chain)
                    chain = gemmi.Chain(chain.name)
                residue = gemmi.Residue()
                residue.label_seq = position + 1  # mmCIF label_seq_id: 1, 2, ... along the chain (else '.')
                residue.name = str(structure.residue_names[r])
                if chain_id in chain_names:
                    residue.segment = chain_id
                residue.seqid = gemmi.SeqId(int(structure.residue_numbers[r]), structure.insertion_codes[r] or " ")
                residue.het_flag = "A"
                residue.entity_type = gemmi.EntityType.Polymer
                for i in range(starts[r], starts[r + 1]):
                    atom = gemmi.Atom()
                    atom.name = str(structure.atom_names[i])
                    atom.element = gemmi.Element(str(structure.elements[i]))
                    atom.pos = gemmi.Position(*map(float, positions[i]))
                    atom.occ = 1.0
                    atom.b_iso = 0.0
                    residue.add_atom(atom)
                chain.add_residue(residue)
            model.add_chain(chain)
        st.add_model(model)
    st.setup_entities()
    _add_disulfides(st, structure, chain_names)
    return st


def _add_disulfides(st, structure: ProteinStructure, chain_names: dict[str, str]) -> None:
    """The structure's disulfides as gemmi connections (SSBOND records, ``struct_conn`` rows) between the SG
    atoms, or between the residues' beads in a coarse-grained structure (gemmi writes a connection only
    between atoms that are there)."""
    import gemmi

    starts = structure.residue_starts()

    def address(r: int):
        names = list(structure.atom_names[starts[r]:starts[r + 1]])
        chain_id = str(structure.chain_ids[r])
        return gemmi.AtomAddress(chain_names.get(chain_id, chain_id),
                                 gemmi.SeqId(int(structure.residue_numbers[r]), structure.insertion_codes[r] or " "),
                                 str(structure.residue_names[r]), "SG" if "SG" in names or not names else names[0])

    for k, (a, b) in enumerate(structure.disulfides.tolist()):
        connection = gemmi.Connection()
        connection.name, connection.type, connection.asu = f"disulf{k + 1}", gemmi.ConnectionType.Disulf, gemmi.Asu.Same
        connection.partner1, connection.partner2 = address(a), address(b)
        st.connections.append(connection)


def structure_text(structure: ProteinStructure, fmt: str = "pdb") -> str:
    """The structure as PDB (``fmt="pdb"``, one MODEL per frame if several) or mmCIF (``"cif"``) text."""
    return _structure_text(structure, fmt)[0]


def _structure_text(structure: ProteinStructure, fmt: str) -> tuple[str, list[str]]:
    """:func:`structure_text`, and notes on what the format changed (:func:`pdb_chain_ids`)."""
    import gemmi

    if not np.all(np.isfinite(structure.positions)):
        raise InputFileError(f"{structure.source or 'structure'}: coordinates are not finite; nothing written")
    if fmt not in ("pdb", "cif"):
        raise ConfigError(f"unknown structure format {fmt!r}; use pdb or cif")
    if fmt == "cif":
        groups = gemmi.MmcifOutputGroups(True)
        groups.cell = False
        groups.symmetry = False
        return _to_gemmi(structure).make_mmcif_document(groups).as_string(), []
    limit = 9999.9985  # the PDB format's %8.3f columns
    if np.abs(structure.positions).max(initial=0.0) > limit:
        raise ConfigError("coordinates exceed the PDB format's range (|x| < 10000 Å); write mmCIF (.cif)")
    chain_names, note = pdb_chain_ids(structure)
    options = gemmi.PdbWriteOptions()
    options.cryst1_record = False
    return _to_gemmi(structure, chain_names, split_at_breaks=True).make_pdb_string(options), [note] if note else []


def write_structure(structure: ProteinStructure, path: str | os.PathLike, fmt: str | None = None,
                    stdout: io.TextIOBase | None = None) -> list[str]:
    """Write ``structure`` to ``path`` (atomically) or, for ``"-"``, to ``stdout``; returns notes on what
    the format changed (:func:`pdb_chain_ids`).

    The format comes from ``fmt`` or else the extension (``.pdb``, ``.ent``,
    ``.cif``, ``.mmcif``; ``.gz`` adds gzip compression); stdout defaults to PDB.
    The whole text is built before anything is written, so a failure never
    leaves a partial file.
    """
    fmt = fmt or ("pdb" if str(path) == "-" else structure_format(path))
    text, notes = _structure_text(structure, fmt)
    if str(path) == "-":
        out = stdout or sys.stdout
        out.write(text)
        out.flush()
        return notes
    path = Path(path)
    data = text.encode("utf-8")
    if path.name.lower().endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    atomic_write_bytes(path, data)
    return notes
