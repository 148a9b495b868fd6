"""Build the backmapping dataset from PDB/mmCIF files (paper, "Protein coarse-grain backmapping").

Recipe, per structure file (one protein entry):

1. read the first model: standard amino acids, heavy atoms, one conformer
   per alternate location (:func:`gaatool.io.structure.read_structure`);
   atoms whose names are not in the residue's vocabulary are dropped;
2. one bead per residue (:mod:`.coarse_grain`: centroid, com or ca);
3. for every residue i, its K nearest beads j (any chain of the entry) as
   ``r_j - r_i`` with their residue types;
4. the target: the heavy atoms of residue i relative to its bead, labelled by
   (residue, atom) (:mod:`.residues`). Only complete residues (all heavy
   atoms of the residue present; OXT optional) are targets, because the bead
   of an incomplete residue is not where a simulation would put it;
   incomplete residues still serve as neighbour beads.

Splits are by entry, never by residue: every residue of an entry lands in the
same split, chosen by explicit entry lists or by seeded fractions.

Arrays of the saved file (M rows per split, K neighbours, A = 15 atoms):

* ``{split}/neighbor_positions`` (M, K, 3) float32, Å; ``{split}/neighbor_types`` (M, K) int16;
  ``{split}/neighbor_mask`` (M, K) bool; ``{split}/neighbor_offsets`` (M, K) int16: j - i along
  the chain for beads of the same chain segment, else 0 (:func:`.coarse_grain.sequence_offsets`);
* ``{split}/residue_types`` (M,) int16, index into ``residue_names``;
* ``{split}/atom_labels`` (M, A) int16, index into ``atom_labels``; ``{split}/atom_mask`` (M, A) bool;
* ``{split}/atom_positions`` (M, A, 3) float32, Å, relative to the bead;
* ``{split}/bead_positions`` (M, 3) float64, Å, absolute;
* ``{split}/entry`` (M,) int32, index into the metadata ``entries``;
* ``{split}/previous`` (M,) int64: row (same split) of the preceding residue in
  the chain if it is a row and no chain break lies between, else -1.
"""
from __future__ import annotations

import dataclasses
import gzip
import os
import re
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ... import __version__
from ...data.splits import SPLIT_NAMES, derive_rng
from ...data.store import save_dataset
from ...errors import ConfigError, DownloadError, InputFileError
from ...io.download import cache_dir, download, sha256_file
from ...io.structure import BCIF_SUFFIXES, ProteinStructure, parse_structure, read_structure
from .coarse_grain import (BEAD_KINDS, bead_positions, ca_counts, neighborhoods, residue_types_of,
                           sequence_offsets, structure_previous)
from .residues import MAX_ATOMS, RESIDUE_ATOMS, RESIDUE_NAMES, label_index, label_names

__all__ = [
    "TASK",
    "PAPER_ENTRIES",
    "RCSB_URL",
    "BackmapDatasetConfig",
    "EntrySummary",
    "BackmapDataset",
    "residue_targets",
    "entry_rows",
    "fetch_entries",
    "build_backmap_dataset",
    "structure_paths",
]

TASK = "backmap"

#: The 19 PDB entries of the paper's Appendix C.
PAPER_ENTRIES = ("3X2L", "3X32", "4TKJ", "3X0J", "5WQR", "6EQE", "6ETK", "6FJN", "6JGJ", "6RYG", "6IIP", "6Q01",
                 "6XVM", "6Y5S", "6YP6", "7A5M", "7K4T", "6YK4", "6SAY")
#: Where ``--ids`` downloads from; ``{id}`` is the upper-case entry id.
RCSB_URL = "https://files.rcsb.org/download/{id}.cif.gz"

_ID_PATTERN = re.compile(r"^([0-9][A-Za-z0-9]{3}|pdb_[0-9A-Za-z]{8})$")
STRUCTURE_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".pdb.gz", ".ent.gz", ".cif.gz", ".mmcif.gz")


#: Most neighbour beads per residue: the arrays grow linearly with it (100000 wrote 155 MB for 1AKI's 129
#: residues in a scratch run of session 18's audit) and
#: a rank-2 model's cost with its square; the paper uses 16.
MAX_NEIGHBORS = 256


@dataclasses.dataclass(frozen=True)
class BackmapDatasetConfig:
    """Settings of :func:`build_backmap_dataset` (saved in the dataset metadata).

    Attributes
    ----------
    bead : str
        ``centroid`` (paper), ``com`` or ``ca``.
    neighbors : int
        Neighbour beads K per residue.
    val_fraction, test_fraction : float
        Fractions of the entries for validation and test (at least one entry
        each when positive and enough entries exist); used only when no
        explicit lists are given.
    val_entries, test_entries : tuple of str
        Explicit entry ids; when either is given, the splits are exactly these
        lists and every other entry trains.
    seed : int
        Seeds the assignment of entries to splits.
    """

    bead: str = "centroid"
    neighbors: int = 16
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    val_entries: tuple[str, ...] = ()
    test_entries: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "val_entries", tuple(str(e).upper() for e in self.val_entries))
        object.__setattr__(self, "test_entries", tuple(str(e).upper() for e in self.test_entries))
        if self.bead not in BEAD_KINDS:
            raise ConfigError(f"unknown bead kind {self.bead!r}; choose one of {', '.join(BEAD_KINDS)}")
        if isinstance(self.neighbors, bool) or not 1 <= int(self.neighbors) <= MAX_NEIGHBORS:
            raise ConfigError(f"neighbors must be from 1 to {MAX_NEIGHBORS}, got {self.neighbors}")
        for name in ("val_fraction", "test_fraction"):
            value = float(getattr(self, name))
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError("val_fraction + test_fraction must leave entries for training (sum < 1)")
        both = sorted(set(self.val_entries) & set(self.test_entries))
        if both:
            raise ConfigError(f"entries {both} are listed for both validation and test")
        if isinstance(self.seed, bool) or int(self.seed) < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["val_entries"], out["test_entries"] = list(self.val_entries), list(self.test_entries)
        return out


@dataclasses.dataclass
class EntrySummary:
    """What one structure file gave: counts, split, and what was left out (reason -> count)."""

    entry: str
    source: str
    sha256: str
    split: str = ""
    chains: int = 0
    residues: int = 0
    rows: int = 0
    atoms: int = 0
    skipped: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class BackmapDataset:
    """A built dataset: arrays and metadata as saved, plus the per-entry summary."""

    arrays: dict[str, np.ndarray]
    metadata: dict[str, Any]
    entries: list[EntrySummary]
    skipped_files: list[tuple[str, str]]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the dataset file (atomically)."""
        return save_dataset(path, self.arrays, self.metadata)

    def split_counts(self) -> dict[str, dict[str, int]]:
        """{split: {"entries", "rows"}}."""
        return {s: {"entries": sum(e.split == s for e in self.entries),
                    "rows": int(len(self.arrays[f"{s}/entry"]))} for s in SPLIT_NAMES}

    def to_dict(self) -> dict[str, Any]:
        return {"splits": self.split_counts(), "entries": [e.to_dict() for e in self.entries],
                "skipped_files": [{"source": s, "reason": r} for s, r in self.skipped_files],
                "skipped": dict(sum((Counter(e.skipped) for e in self.entries), Counter())),
                "config": self.metadata["config"]}


# ---------------------------------------------------------------------------
# inputs


def structure_paths(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files as given, and the structure files (by extension, sorted) inside any folder given.

    Returns the paths (PDB, mmCIF and BinaryCIF) and (path, reason) pairs of
    files left out (none at present: the list stays for callers). Raises
    InputFileError for a path that does not exist.
    """
    result: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            for child in sorted(p for p in path.iterdir() if p.is_file()):
                name = child.name.lower()
                if name.endswith(STRUCTURE_SUFFIXES + BCIF_SUFFIXES):
                    result.append(child)
        elif path.exists():
            result.append(path)
        else:
            raise InputFileError(f"{path}: no such file or folder")
    return result, skipped


def _check_ids(ids: Sequence[str]) -> list[str]:
    result = []
    for raw in ids:
        entry = str(raw).strip()
        if not _ID_PATTERN.match(entry):
            raise ConfigError(f"{raw!r} is not a PDB entry id (4 characters such as 1AKI); "
                              "use --ids 1AKI,2VB1 or --ids paper")
        result.append(entry.upper() if len(entry) == 4 else entry.lower())
    return result


def fetch_entries(ids: Sequence[str], cache: str | os.PathLike | None = None, url_template: str = RCSB_URL,
                  progress: Callable[[str], None] | None = None) -> list[Path]:
    """Download mmCIF files of PDB entries into the cache (once) and return their paths.

    Parameters
    ----------
    ids : sequence of str
        PDB entry ids such as ``"1AKI"``.
    cache : path-like, optional
        Cache folder (default :func:`gaatool.io.download.cache_dir`); files go to ``<cache>/pdb/<ID>.cif.gz``.
    url_template : str
        Download address with ``{id}`` (default RCSB; PDBe/PDBj mirrors work).
    progress : callable, optional
        Called with one line per entry.

    Each download is checked by parsing it and comparing its ``_entry.id``;
    a failed or mismatching download raises :class:`DownloadError` and leaves
    nothing in the cache.
    """
    if "{id}" not in url_template:
        raise ConfigError(f"download address {url_template!r} needs an {{id}} placeholder")
    folder = cache_dir(cache) / "pdb"
    paths = []
    for entry in _check_ids(ids):
        def verify(path: Path, entry=entry) -> None:
            try:
                text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
            except (OSError, EOFError, zlib.error) as err:  # zlib.error: damaged deflate data
                raise InputFileError(f"not a gzip file or a damaged one ({err})") from err
            structure = parse_structure(text, "cif", source=entry)
            if structure.entry_id.upper() != entry.upper():
                raise InputFileError(f"the file is entry {structure.entry_id!r}, not {entry}")

        if progress is not None:
            progress(f"fetching {entry}")
        try:
            paths.append(download(url_template.format(id=entry), folder / f"{entry}.cif.gz", verify=verify))
        except DownloadError as err:
            # download() advises --from FILE; here the alternative is passing the file itself
            what = str(err).split("; retry")[0]
            raise DownloadError(f"{what}; retry, or download {entry}.cif yourself and pass the file "
                                "instead of --ids") from err
    return paths


# ---------------------------------------------------------------------------
# one entry


def residue_targets(structure: ProteinStructure) -> tuple[ProteinStructure, Counter]:
    """Keep only vocabulary atoms (first of duplicates); return the structure and what was dropped."""
    dropped: Counter = Counter()
    keep = np.zeros(structure.n_atoms, dtype=bool)
    starts = structure.residue_starts()
    for r in range(structure.n_residues):
        seen = set()
        name = str(structure.residue_names[r])
        for i in range(starts[r], starts[r + 1]):
            atom = str(structure.atom_names[i])
            if label_index(name, atom) < 0:
                dropped[f"atom not in the {name} vocabulary ({atom})"] += 1
            elif atom in seen:
                dropped["duplicate atom name in a residue"] += 1
            else:
                seen.add(atom)
                keep[i] = True
    kept_structure = dataclasses.replace(
        structure, atom_names=structure.atom_names[keep], elements=structure.elements[keep],
        atom_residues=structure.atom_residues[keep], positions=structure.positions[:, keep],
        file_atom_index=None if structure.file_atom_index is None else structure.file_atom_index[keep])
    has_atoms = np.bincount(kept_structure.atom_residues, minlength=structure.n_residues) > 0
    if not has_atoms.all():
        dropped["residue without vocabulary atoms"] += int((~has_atoms).sum())
        kept_structure = kept_structure.select_residues(has_atoms)
    return kept_structure, dropped


def entry_rows(structure: ProteinStructure, bead: str, k: int) -> tuple[dict[str, np.ndarray], Counter]:
    """Rows (one per complete residue) of one entry, without the split-level fields.

    Returns arrays as in the module docstring plus ``local_previous`` (row
    index within this entry or -1), and the counts of what was left out.
    """
    structure, dropped = residue_targets(structure)
    if bead == "ca":  # a residue without its CA has no bead: not a target, not a neighbour
        has_ca = ca_counts(structure) == 1
        if not has_ca.all():
            dropped["residue without one CA (no CA bead)"] += int((~has_ca).sum())
            structure = structure.select_residues(has_ca)
    if structure.n_residues == 0:
        return {}, dropped
    beads = bead_positions(structure, bead)[0]
    types = residue_types_of(structure)
    env = neighborhoods(beads, types, k)
    starts = structure.residue_starts()
    n_res = structure.n_residues
    complete = np.zeros(n_res, dtype=bool)
    labels = np.zeros((n_res, MAX_ATOMS), dtype=np.int16)
    atom_mask = np.zeros((n_res, MAX_ATOMS), dtype=bool)
    atom_positions = np.zeros((n_res, MAX_ATOMS, 3), dtype=np.float64)
    for r in range(n_res):
        name = str(structure.residue_names[r])
        atoms = [str(a) for a in structure.atom_names[starts[r]:starts[r + 1]]]
        complete[r] = set(RESIDUE_ATOMS[name]) <= set(atoms)
        n = len(atoms)
        labels[r, :n] = [label_index(name, a) for a in atoms]
        atom_mask[r, :n] = True
        atom_positions[r, :n] = structure.positions[0, starts[r]:starts[r + 1]] - beads[r]
    incomplete = int((~complete).sum())
    if incomplete:
        dropped["incomplete residue (neighbour bead only)"] += incomplete
    rows = np.flatnonzero(complete)
    row_of = np.full(n_res, -1, dtype=np.int64)
    row_of[rows] = np.arange(len(rows))
    previous = structure_previous(structure)
    previous = np.where(previous >= 0, row_of[previous], -1)
    arrays = {
        "neighbor_positions": env["neighbor_positions"][rows].astype(np.float32),
        "neighbor_types": env["neighbor_types"][rows].astype(np.int16),
        "neighbor_mask": env["neighbor_mask"][rows],
        "neighbor_offsets": sequence_offsets(structure, env["neighbor_index"])[rows].astype(np.int16),
        "residue_types": types[rows].astype(np.int16),
        "atom_labels": labels[rows],
        "atom_mask": atom_mask[rows],
        "atom_positions": atom_positions[rows].astype(np.float32),
        "bead_positions": beads[rows],
        "local_previous": previous[rows],
    }
    return arrays, dropped


# ---------------------------------------------------------------------------
# the dataset


def _assign_splits(entries: list[str], config: BackmapDatasetConfig) -> dict[str, str]:
    if config.val_entries or config.test_entries:
        known = set(entries)
        for split, listed in (("validation", config.val_entries), ("test", config.test_entries)):
            missing = sorted(set(listed) - known)
            if missing:
                raise ConfigError(f"{split} entries {missing} are not among the entries read "
                                  f"({', '.join(entries)})")
        return {e: "val" if e in config.val_entries else "test" if e in config.test_entries else "train"
                for e in entries}
    n = len(entries)
    counts = {}
    for split, fraction in (("val", config.val_fraction), ("test", config.test_fraction)):
        counts[split] = max(1, int(round(fraction * n))) if fraction > 0 else 0
    # never take the last training entry
    while counts["val"] + counts["test"] >= n and counts["val"] + counts["test"] > 0:
        bigger = "test" if counts["test"] >= counts["val"] else "val"
        counts[bigger] -= 1
    order = derive_rng(config.seed, "backmap", "entry-split").permutation(sorted(entries))
    result = {str(e): "train" for e in order}
    for e in order[: counts["val"]]:
        result[str(e)] = "val"
    for e in order[counts["val"]: counts["val"] + counts["test"]]:
        result[str(e)] = "test"
    return result


def build_backmap_dataset(paths: Sequence[str | os.PathLike], config: BackmapDatasetConfig | None = None,
                          progress: Callable[[str], None] | None = None, every_entry_in: str | None = None
                          ) -> BackmapDataset:
    """Read structure files and build the backmapping dataset (see the module docstring).

    ``every_entry_in``: put every entry in this split (``test``: structures to evaluate a model on)
    instead of assigning splits by ``config``.

    Files that cannot be read as PDB/mmCIF, hold no standard residues, or repeat
    an entry already read are skipped and reported in ``skipped_files``.

    Raises
    ------
    InputFileError
        A path does not exist, or no file gives any residue.
    ConfigError
        Bad settings, or split lists naming entries that were not read.
    """
    config = config or BackmapDatasetConfig()
    files, skipped_files = structure_paths(paths)
    if not files:
        raise InputFileError("no structure files given; pass files, a folder, or --ids")
    per_entry: dict[str, tuple[EntrySummary, dict[str, np.ndarray]]] = {}
    for path in files:
        if progress is not None:
            progress(f"reading {path}")
        try:
            structure = read_structure(path)
        except InputFileError as err:
            skipped_files.append((str(path), str(err).replace(f"{path}: ", "")))
            continue
        entry = structure.entry_id.upper()
        if entry in per_entry:
            skipped_files.append((str(path), f"entry {entry} already read from {per_entry[entry][0].source}"))
            continue
        arrays, dropped = entry_rows(structure, config.bead, config.neighbors)
        skipped = Counter(structure.skipped)
        skipped.update(dropped)
        rows = len(arrays.get("residue_types", ()))
        if rows == 0:
            one_each = structure.n_residues and structure.n_atoms == structure.n_residues
            skipped_files.append((str(path), "one atom per residue, a coarse-grained structure? Heavy-atom "
                                  "targets need the all-atom structure" if one_each
                                  else "no complete standard amino-acid residues"))
            continue
        summary = EntrySummary(
            entry=entry, source=str(path), sha256=sha256_file(path), chains=len(structure.chains()),
            residues=structure.n_residues, rows=rows, atoms=int(arrays["atom_mask"].sum()), skipped=dict(skipped))
        per_entry[entry] = (summary, arrays)
    if not per_entry:
        reasons = "; ".join(f"{Path(s).name}: {r}" for s, r in skipped_files[:3])
        raise InputFileError(f"no usable structures ({reasons})")
    names = sorted(per_entry)
    splits = _assign_splits(names, config) if every_entry_in is None else dict.fromkeys(names, every_entry_in)
    arrays_out: dict[str, np.ndarray] = {}
    entries: list[EntrySummary] = []
    for name in names:
        per_entry[name][0].split = splits[name]
        entries.append(per_entry[name][0])
    for split in SPLIT_NAMES:
        parts = [(i, per_entry[name][1]) for i, name in enumerate(names) if splits[name] == split]
        arrays_out.update(_stack_split(split, parts, config.neighbors))
    metadata = {
        "task": TASK,
        "config": config.to_dict(),
        "bead": config.bead,
        "neighbors": int(config.neighbors),
        "residue_names": list(RESIDUE_NAMES),
        "atom_labels": label_names(),
        "length_unit": "Å",
        "entries": [e.to_dict() for e in entries],
        "skipped_files": [{"source": s, "reason": r} for s, r in skipped_files],
        "gaatool_version": __version__,
    }
    return BackmapDataset(arrays_out, metadata, entries, skipped_files)


def _stack_split(split: str, parts: list[tuple[int, dict[str, np.ndarray]]], k: int) -> dict[str, np.ndarray]:
    empty = {
        "neighbor_positions": np.zeros((0, k, 3), np.float32), "neighbor_types": np.zeros((0, k), np.int16),
        "neighbor_mask": np.zeros((0, k), bool), "neighbor_offsets": np.zeros((0, k), np.int16),
        "residue_types": np.zeros(0, np.int16),
        "atom_labels": np.zeros((0, MAX_ATOMS), np.int16), "atom_mask": np.zeros((0, MAX_ATOMS), bool),
        "atom_positions": np.zeros((0, MAX_ATOMS, 3), np.float32), "bead_positions": np.zeros((0, 3)),
    }
    out = {f"{split}/{key}": value for key, value in empty.items()}
    out[f"{split}/entry"] = np.zeros(0, np.int32)
    out[f"{split}/previous"] = np.zeros(0, np.int64)
    if not parts:
        return out
    offset = 0
    previous, entry = [], []
    for index, arrays in parts:
        local = arrays["local_previous"]
        previous.append(np.where(local >= 0, local + offset, -1))
        entry.append(np.full(len(local), index, dtype=np.int32))
        offset += len(local)
    for key in empty:
        out[f"{split}/{key}"] = np.concatenate([arrays[key] for _, arrays in parts])
    out[f"{split}/entry"] = np.concatenate(entry)
    out[f"{split}/previous"] = np.concatenate(previous).astype(np.int64)
    return out
