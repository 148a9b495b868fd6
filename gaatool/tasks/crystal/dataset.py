"""Build the crystal-structure identification dataset (paper, "Crystal structure identification").

Recipe, per class (one unit cell each: the 8 shipped prototypes plus any user
cells):

1. rescale the cell so that its shortest nearest-neighbour distance is 1 (all
   lengths in the dataset are in units of that distance);
2. replicate it near-cubically to at least ``min_particles`` particles (more
   if needed so that the box is wide enough for ``neighbors`` neighbours);
3. for every noise level sigma, add Gaussian noise of standard deviation
   sigma to a *separate* copy of the perfect crystal (noise never accumulates
   across levels);
4. for every particle i, take its ``neighbors`` nearest neighbours j (freud,
   periodic minimum image) and store the bond vectors ``r_ij = r_j - r_i`` and
   the type encoding ``[t_i - t_j, t_i + t_j]`` with t one-hot over the
   dataset's types.

Train, validation and test sets are independently generated replicas: every
split draws its noise from its own seeds derived from ``seed``
(:func:`gaatool.data.splits.replica_seeds`), so the splits never share rows.

Arrays of the saved file (M rows per split):

* ``{split}/r_ij`` (M, K, 3) float32, unit: nearest-neighbour distance;
* ``{split}/type_pairs`` (M, K, 2T) float32;
* ``{split}/labels`` (M,) int64, index into ``class_names``;
* ``{split}/noise`` (M,) float32, sigma of the row's copy;
* ``{split}/steinhardt`` (M, F) float32, only with ``steinhardt=True``
  (baseline features, see :mod:`gaatool.tasks.crystal.steinhardt`).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ... import __version__
from ...data.neighbors import nearest_neighbor_distance, nearest_neighbors, perpendicular_widths
from ...data.splits import SPLIT_NAMES, derive_rng, replica_seeds
from ...data.store import load_dataset, save_dataset
from ...errors import ConfigError, InputFileError
from .distinct import refuse_indistinguishable
from .prototypes import (PROTOTYPE_NAMES, UnitCell, check_no_overlaps, load_unit_cell, prototype_cell,
                         prototype_definitions)
from .steinhardt import DEFAULT_L_VALUES, DEFAULT_NEIGHBORS, steinhardt_feature_names, steinhardt_features_from_bonds

__all__ = [
    "TASK",
    "CrystalDatasetConfig",
    "CrystalSystem",
    "CrystalDataset",
    "build_crystal_dataset",
    "replication_counts",
    "perfect_crystal",
    "add_noise",
    "type_pair_encoding",
    "environments",
    "align_species",
]

TASK = "crystal"

PROVENANCE = (
    "Prototype lattice parameters and Wyckoff positions from the AFLOW Library of Crystallographic "
    "Prototypes (Mehl et al., Comp. Mat. Sci. 136, S1 (2017); Hicks et al., Comp. Mat. Sci. 161, S1 "
    "(2019)), cross-checked against pyriodic-aflow 0.1.1; cF136-Si uses the 4-connected Si136 cell "
    "(x(32e) = 0.2179). See gaatool/tasks/crystal/prototypes/PROVENANCE.md."
)


def _default_replicas() -> dict[str, int]:
    return {name: 1 for name in SPLIT_NAMES}


@dataclasses.dataclass(frozen=True)
class CrystalDatasetConfig:
    """Settings of :func:`build_crystal_dataset` (all saved in the dataset metadata).

    Attributes
    ----------
    seed : int
        Master seed; every random stream is derived from it.
    noise_levels : tuple of float
        Gaussian noise standard deviations (unit: nearest-neighbour distance),
        each applied to its own copy of the perfect crystal.
    min_particles : int
        Each replicated crystal has at least this many particles.
    neighbors : int
        Neighbours K per environment.
    replicas : mapping of str to int
        Independent replicas per split (``train``, ``val``, ``test``); 0 drops a split.
    prototypes : tuple of str
        Shipped prototypes to include (default: all 8 of the paper).
    steinhardt : bool
        Also store the Steinhardt baseline features.
    steinhardt_neighbors, steinhardt_l_values : tuple of int
        Neighbourhood sizes and orders of those features.
    """

    seed: int = 0
    noise_levels: tuple[float, ...] = (0.001, 0.05, 0.1)
    min_particles: int = 2048
    neighbors: int = 12
    replicas: Mapping[str, int] = dataclasses.field(default_factory=_default_replicas)
    prototypes: tuple[str, ...] = PROTOTYPE_NAMES
    steinhardt: bool = False
    steinhardt_neighbors: tuple[int, ...] = DEFAULT_NEIGHBORS
    steinhardt_l_values: tuple[int, ...] = DEFAULT_L_VALUES

    def __post_init__(self) -> None:
        # Normalise sequences so configs compare and serialise predictably.
        object.__setattr__(self, "noise_levels", tuple(float(s) for s in self.noise_levels))
        object.__setattr__(self, "prototypes", tuple(str(p) for p in self.prototypes))
        object.__setattr__(self, "replicas", dict(self.replicas))
        object.__setattr__(self, "steinhardt_neighbors", tuple(int(k) for k in self.steinhardt_neighbors))
        object.__setattr__(self, "steinhardt_l_values", tuple(int(l) for l in self.steinhardt_l_values))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values that cannot build a dataset."""
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not self.noise_levels:
            raise ConfigError("give at least one noise level")
        for sigma in self.noise_levels:
            if not np.isfinite(sigma) or sigma < 0:
                raise ConfigError(f"noise levels must be finite and >= 0, got {sigma}")
        if len(set(self.noise_levels)) != len(self.noise_levels):
            raise ConfigError(f"noise levels repeat: {list(self.noise_levels)}")
        if int(self.neighbors) < 1:
            raise ConfigError(f"neighbors must be at least 1, got {self.neighbors}")
        if int(self.min_particles) < int(self.neighbors) + 1:
            raise ConfigError(
                f"min_particles ({self.min_particles}) must exceed the neighbour count ({self.neighbors})"
            )
        unknown_splits = [s for s in self.replicas if s not in SPLIT_NAMES]
        if unknown_splits:
            raise ConfigError(f"unknown split {unknown_splits[0]!r}; splits are {', '.join(SPLIT_NAMES)}")
        for split, count in self.replicas.items():
            if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
                raise ConfigError(f"replicas for {split!r} must be a non-negative integer, got {count!r}")
        if sum(self.replicas.values()) == 0:
            raise ConfigError("every split has 0 replicas; the dataset would be empty")
        unknown = [p for p in self.prototypes if p not in PROTOTYPE_NAMES]
        if unknown:
            raise ConfigError(f"unknown prototype {unknown[0]!r}; choose from {', '.join(PROTOTYPE_NAMES)}")
        if len(set(self.prototypes)) != len(self.prototypes):
            raise ConfigError("prototypes repeat")
        if self.steinhardt and max(self.steinhardt_neighbors, default=0) > int(self.neighbors):
            raise ConfigError(
                f"Steinhardt neighbourhoods up to {max(self.steinhardt_neighbors)} need neighbors >= that, "
                f"got {self.neighbors}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        out = dataclasses.asdict(self)
        out["noise_levels"] = list(self.noise_levels)
        out["prototypes"] = list(self.prototypes)
        out["steinhardt_neighbors"] = list(self.steinhardt_neighbors)
        out["steinhardt_l_values"] = list(self.steinhardt_l_values)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "CrystalDatasetConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        extra = set(values) - names
        if extra:
            raise ConfigError(f"unknown crystal dataset setting {sorted(extra)[0]!r}")
        return cls(**dict(values))


@dataclasses.dataclass(eq=False)
class CrystalSystem:
    """One generated (noisy) crystal: what the environments of a split were cut from.

    Attributes
    ----------
    split : str
    replica : int
    label : int
        Class index.
    class_name : str
    noise : float
        Standard deviation of the added noise (nearest-neighbour units).
    positions : numpy.ndarray (N, 3) float64
    box : numpy.ndarray (3, 3) float64
        Lattice rows of the periodic box.
    types : numpy.ndarray (N,) int64
        Dataset type ids.
    neighbor_index : numpy.ndarray (N, K) int32
        The neighbours each particle's environment was cut from (rows of ``positions``).
    """

    split: str
    replica: int
    label: int
    class_name: str
    noise: float
    positions: np.ndarray
    box: np.ndarray
    types: np.ndarray
    neighbor_index: np.ndarray | None = None


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def replication_counts(lattice, n_sites: int, min_particles: int, min_width: float = 0.0) -> tuple[int, int, int]:
    """Near-cubic replication counts ``(n1, n2, n3)`` of a cell.

    The smallest total count of cells such that ``n1*n2*n3*n_sites >=
    min_particles``, every box width ``n_i * w_i >= min_width``, and the
    supercell's widths differ by at most a factor 1.5 (if no such count
    exists up to 8 times the minimum, the most cubic choice found is used).
    Ties go to the most cubic, then the lexicographically smallest counts.

    >>> replication_counts(np.sqrt(2) * np.eye(3), 4, 2048)
    (8, 8, 8)
    """
    widths = perpendicular_widths(lattice)
    needed = max(1, -(-int(min_particles) // int(n_sites)))
    floor = np.maximum(1, np.ceil(min_width / widths - 1e-9)).astype(int)
    needed = max(needed, int(np.prod(floor)))
    best: tuple[float, tuple[int, int, int]] | None = None
    for total in range(needed, 8 * needed + 1):
        candidates = []
        for n1 in _divisors(total):
            if n1 < floor[0]:
                continue
            for n2 in _divisors(total // n1):
                n3 = total // n1 // n2
                if n2 < floor[1] or n3 < floor[2]:
                    continue
                sizes = np.array([n1, n2, n3]) * widths
                candidates.append((float(sizes.max() / sizes.min()), (n1, n2, n3)))
        if not candidates:
            continue
        candidate = min(candidates)
        if best is None or candidate[0] < best[0]:
            best = candidate
        if candidate[0] <= 1.5:
            return candidate[1]
    assert best is not None  # total = prod(floor) always has a candidate
    return best[1]


def perfect_crystal(cell: UnitCell, min_particles: int, neighbors: int, noise: float = 0.0) -> tuple[UnitCell, tuple[int, int, int]]:
    """The cell rescaled to unit nearest-neighbour distance and replicated.

    The replication is near-cubic (:func:`replication_counts`) with at least
    ``min_particles`` particles, and wide enough that the ``neighbors``-th
    neighbour stays well inside half the box even with noise of standard
    deviation ``noise`` (margin ``10 * noise + 0.25``).

    Returns
    -------
    supercell : UnitCell
        Lengths in units of the nearest-neighbour distance.
    counts : tuple of int
        Replication counts along the three lattice vectors.
    """
    unit = cell.with_unit_nearest_neighbor()
    margin = 10.0 * float(noise) + 0.25
    # Start from a supercell big enough to measure the k-th neighbour distance.
    reach = 0.0
    for _ in range(8):
        counts = replication_counts(unit.lattice, unit.n_sites, max(min_particles, neighbors + 1), 2.0 * (reach + margin))
        supercell = unit.supercell(counts)
        try:
            _, r_ij = nearest_neighbors(supercell.positions, supercell.lattice, neighbors)
        except InputFileError:  # a nearly flat supercell the search refuses: widen and retry
            reach = max(2.0 * reach, 1.0)
            continue
        kth = float(np.linalg.norm(r_ij[:, -1], axis=-1).max())
        if 0.5 * perpendicular_widths(supercell.lattice).min() >= kth + margin:
            return supercell, counts
        reach = kth
    raise ConfigError(f"{cell.name}: could not build a box wide enough for {neighbors} neighbours")


def add_noise(positions, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``positions + N(0, sigma^2)`` per coordinate, as a new array (N, 3) float64.

    >>> add_noise(np.zeros((2, 3)), 0.0, np.random.default_rng(0)).tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    positions = np.asarray(positions, dtype=np.float64)
    return positions + rng.normal(0.0, float(sigma), size=positions.shape)


def type_pair_encoding(types, neighbor_index, n_types: int, start: int = 0) -> np.ndarray:
    """The per-bond type signal ``[t_i - t_j, t_i + t_j]`` (paper, crystal task).

    Parameters
    ----------
    types : array-like (N,) int
        Type id of every particle, in ``0 .. n_types - 1``.
    neighbor_index : array-like (N, K) int
        Neighbour j of each bond.
    n_types : int
        Size T of the one-hot type vector t.
    start : int
        Particle of the first row of ``neighbor_index`` (for chunks of a frame).

    Returns
    -------
    numpy.ndarray (N, K, 2T) float32

    >>> type_pair_encoding(np.array([0, 1]), np.array([[1], [1]]), 2)[:, 0].tolist()
    [[1.0, -1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 2.0]]
    """
    types = np.asarray(types, dtype=np.int64)
    neighbor_index = np.asarray(neighbor_index, dtype=np.int64)
    eye = np.eye(int(n_types), dtype=np.float32)
    # rows of neighbor_index are particles start, start + 1, ... (a chunk of a frame): one-hot only those
    t_i = eye[types[start:start + len(neighbor_index)]][:, None, :]
    t_j = eye[types[neighbor_index]]
    t_i = np.broadcast_to(t_i, t_j.shape)
    return np.concatenate([t_i - t_j, t_i + t_j], axis=-1)


def environments(positions, box, types, neighbors: int, n_types: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model inputs of every particle: neighbours, bond vectors and type encoding.

    positions (N, 3); box (3, 3) lattice rows or None; types (N,) int ->
    neighbor_index (N, K) int64, r_ij (N, K, 3) float64, type_pairs (N, K, 2T) float32.
    """
    index, r_ij = nearest_neighbors(positions, box, neighbors)
    return index, r_ij, type_pair_encoding(types, index, n_types)


def _type_letters(n: int) -> list[str]:
    return [chr(ord("A") + i) if i < 26 else f"T{i}" for i in range(n)]


@dataclasses.dataclass(eq=False)
class CrystalDataset:
    """A built (or loaded) crystal dataset.

    Attributes
    ----------
    config : CrystalDatasetConfig
    class_names : list of str
        Class of each label index.
    type_names : list of str
        Dataset particle types (``A``, ``B``, ...: the AFLOW species letters).
    arrays : dict of str to numpy.ndarray
        ``{split}/r_ij``, ``{split}/type_pairs``, ``{split}/labels``,
        ``{split}/noise`` (and ``{split}/steinhardt``), see the module docs.
    metadata : dict
        Everything saved next to the arrays (config, classes with their
        rescaled cells, particle counts, seeds, provenance).
    systems : list of CrystalSystem
        The generated crystals (empty for a loaded dataset).
    """

    config: CrystalDatasetConfig
    class_names: list[str]
    type_names: list[str]
    arrays: dict[str, np.ndarray]
    metadata: dict[str, Any]
    systems: list[CrystalSystem] = dataclasses.field(default_factory=list)

    @property
    def splits(self) -> list[str]:
        """Splits present, in the order train, val, test."""
        return [s for s in SPLIT_NAMES if f"{s}/labels" in self.arrays]

    def split(self, name: str) -> dict[str, np.ndarray]:
        """Arrays of one split without the ``{split}/`` prefix."""
        if name not in self.splits:
            raise ConfigError(f"the dataset has no {name!r} split; it has {', '.join(self.splits)}")
        prefix = f"{name}/"
        return {key[len(prefix):]: value for key, value in self.arrays.items() if key.startswith(prefix)}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the dataset to one ``.npz`` file (atomic; see :mod:`gaatool.data.store`)."""
        return save_dataset(path, self.arrays, self.metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CrystalDataset":
        """Read a file written by :meth:`save` (raises InputFileError for other files)."""
        arrays, metadata = load_dataset(path, expected_task=TASK)
        config = CrystalDatasetConfig.from_dict(metadata["config"])
        return cls(config, list(metadata["class_names"]), list(metadata["type_names"]), arrays, metadata)

    def summary(self) -> list[dict[str, Any]]:
        """One row per class: ``class``, ``species`` (dataset type = element of its cell, e.g. ``A=Na B=Cl``),
        ``particles`` (per generated crystal) and rows per split.

        Split columns count environments over all replicas and noise levels.
        """
        rows = []
        for label, name in enumerate(self.class_names):
            info = self.metadata["classes"][label]
            species = " ".join(f"{t}={e}" for t, e in info.get("species", {}).items())
            row: dict[str, Any] = {"class": name, "species": species, "particles": int(info["particles"])}
            for split in self.splits:
                row[split] = int(np.count_nonzero(self.arrays[f"{split}/labels"] == label))
            rows.append(row)
        return rows


def align_species(cells: Sequence[UnitCell]) -> list[UnitCell]:
    """The cells with each one's species reordered so that an element keeps one dataset type (A, B, ...)
    across classes where it can.

    A cell's types are its species in order of first appearance in its file, so NaCl written Na first and
    its CsCl-type high-pressure phase written Cl first would make Na type A in one class and B in the
    other, and no type map of a Na/Cl snapshot could fit both classes. Here an element seen in an earlier
    class keeps the type it got there (the earliest-seen element wins a contested type); the others take
    the free types in their order; a cell of k species keeps types 0..k-1. Cells that need no change are
    returned as they are (the shipped prototypes share no element, so they never change), and the result
    is the same when applied again.
    """
    seen: dict[str, int] = {}  # element -> type it got in the first class that has it
    rank: dict[str, int] = {}  # element -> order in which the classes first showed it
    result = []
    for cell in cells:
        k = len(cell.type_names)
        assigned: dict[str, int] = {}
        for species in sorted((s for s in cell.type_names if s in seen), key=rank.__getitem__):
            if seen[species] < k and seen[species] not in assigned.values():
                assigned[species] = seen[species]
        free = iter(t for t in range(k) if t not in assigned.values())
        for species in cell.type_names:
            if species not in assigned:
                assigned[species] = next(free)
        for species in cell.type_names:
            rank.setdefault(species, len(rank))
            seen.setdefault(species, assigned[species])
        order = tuple(sorted(cell.type_names, key=assigned.__getitem__))
        if order == cell.type_names:
            result.append(cell)
            continue
        remap = np.array([assigned[species] for species in cell.type_names], dtype=np.int64)
        result.append(dataclasses.replace(cell, types=remap[cell.types], type_names=order))
    return result


def _resolve_cells(config: CrystalDatasetConfig, extra_cells: Sequence[UnitCell | str | os.PathLike],
                   align: bool = True) -> list[UnitCell]:
    cells = [prototype_cell(name) for name in config.prototypes]
    for extra in extra_cells:
        if isinstance(extra, UnitCell):
            check_no_overlaps(extra)
            cells.append(extra)
        else:
            cells.append(load_unit_cell(extra))
    if align:
        cells = align_species(cells)
    names = [c.name for c in cells]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"two classes are named {name!r}; an added class is named after its file without the "
                              "extension: rename or copy one (a POSCAR to nacl.vasp, say)")
    if not cells:
        raise ConfigError("no classes: select at least one prototype or give a unit cell")
    return cells


def build_crystal_dataset(
    config: CrystalDatasetConfig | None = None,
    *,
    extra_cells: Sequence[UnitCell | str | os.PathLike] = (),
    align: bool = True,
    **settings: Any,
) -> CrystalDataset:
    """Generate the crystal-structure identification dataset.

    Parameters
    ----------
    config : CrystalDatasetConfig, optional
        All settings; keyword ``settings`` (any field of the config, e.g.
        ``seed=1, min_particles=64, replicas={"train": 2, "val": 1, "test": 1}``)
        override it.
    extra_cells : sequence of UnitCell or path
        Additional classes (CIF, POSCAR or GSD unit cells, see
        :func:`~gaatool.tasks.crystal.prototypes.load_unit_cell`), labelled after the prototypes.
    align : bool
        Give an element the same type in every class where it can (:func:`align_species`). Rebuilding
        a saved dataset from its stored cells (already aligned, or saved before alignment) passes False.

    Returns
    -------
    CrystalDataset
        Deterministic given the settings.

    >>> ds = build_crystal_dataset(prototypes=("cF4-Cu",), min_particles=64, noise_levels=(0.05,))
    >>> ds.arrays["train/r_ij"].shape[1:], ds.type_names
    ((12, 3), ['A'])
    """
    if config is None:
        config = CrystalDatasetConfig(**settings)
    elif settings:
        config = dataclasses.replace(config, **settings)
    cells = _resolve_cells(config, extra_cells, align)
    n_types = max(len(c.type_names) for c in cells)
    type_names = _type_letters(n_types)
    class_names = [c.name for c in cells]
    seeds = replica_seeds(config.seed, config.replicas)
    max_noise = max(config.noise_levels)

    classes_meta = []
    crystals = []
    for label, cell in enumerate(cells):
        supercell, counts = perfect_crystal(cell, config.min_particles, config.neighbors, max_noise)
        crystals.append(supercell)
        original_nn = cell.nearest_neighbor_distance()
        classes_meta.append({
            "name": cell.name,
            "label": label,
            "source": cell.source,
            "particles": supercell.n_sites,
            "replication": list(counts),
            "cell_sites": cell.n_sites,
            "nearest_neighbor_distance_original": original_nn,
            "species": {type_names[t]: species for t, species in enumerate(cell.type_names)},
            "unit_cell": cell.scaled(1.0 / original_nn).to_dict(),
        })
    refuse_indistinguishable(cells, config.neighbors)

    arrays: dict[str, np.ndarray] = {}
    systems: list[CrystalSystem] = []
    for split in SPLIT_NAMES:
        if config.replicas.get(split, 0) == 0:
            continue
        chunks: dict[str, list[np.ndarray]] = {"r_ij": [], "type_pairs": [], "labels": [], "noise": [], "steinhardt": []}
        for replica, replica_seed in enumerate(seeds[split]):
            for label, supercell in enumerate(crystals):
                for sigma in config.noise_levels:
                    # Keyed by class name and sigma, not position: adding a class
                    # or a noise level leaves the other copies unchanged.
                    rng = derive_rng(replica_seed, supercell.name, repr(float(sigma)))
                    positions = add_noise(supercell.positions, sigma, rng)
                    # Lengths in units of the *measured* nearest-neighbour distance of
                    # this noisy copy, exactly as `gaatool identify` measures user frames.
                    scale = nearest_neighbor_distance(positions, supercell.lattice)
                    index, r_ij, pairs = environments(
                        positions / scale, supercell.lattice / scale, supercell.types, config.neighbors, n_types
                    )
                    n = len(positions)
                    chunks["r_ij"].append(r_ij.astype(np.float32))
                    chunks["type_pairs"].append(pairs)
                    chunks["labels"].append(np.full(n, label, dtype=np.int64))
                    chunks["noise"].append(np.full(n, sigma, dtype=np.float32))
                    if config.steinhardt:
                        same = supercell.types[index] == supercell.types[:, None]
                        chunks["steinhardt"].append(steinhardt_features_from_bonds(
                            r_ij, same, config.steinhardt_neighbors, config.steinhardt_l_values
                        ))
                    systems.append(CrystalSystem(
                        split, replica, label, supercell.name, float(sigma), positions,
                        supercell.lattice.copy(), supercell.types.copy(), index.astype(np.int32),
                    ))
        for key, parts in chunks.items():
            if parts:
                arrays[f"{split}/{key}"] = np.concatenate(parts)

    metadata: dict[str, Any] = {
        "task": TASK,
        "gaatool_version": __version__,
        "config": config.to_dict(),
        "seed": config.seed,
        "neighbors": config.neighbors,
        "noise_levels": list(config.noise_levels),
        "class_names": class_names,
        "type_names": type_names,
        "splits": [s for s in SPLIT_NAMES if config.replicas.get(s, 0) > 0],
        "replica_seeds": seeds,
        "classes": classes_meta,
        "length_unit": "median nearest-neighbour distance of each noisy copy (data.neighbors.nearest_neighbor_distance)",
        "type_encoding": "type_pairs[..., :T] = t_i - t_j, type_pairs[..., T:] = t_i + t_j; t one-hot over type_names",
        "provenance": PROVENANCE,
        "prototype_labels": {
            r["paper_name"]: r["aflow_label"] for r in prototype_definitions() if r["paper_name"] in config.prototypes
        },
    }
    if config.steinhardt:
        metadata["steinhardt_features"] = steinhardt_feature_names(
            config.steinhardt_neighbors, config.steinhardt_l_values
        )
    return CrystalDataset(config, class_names, type_names, arrays, metadata, systems)


def stored_recipe(metadata: Mapping[str, Any], source: str,
                  purpose: str) -> tuple[CrystalDatasetConfig, list[UnitCell]]:
    """How a saved dataset was built: its config and its added unit cells (the classes beyond the prototypes).

    ``purpose`` names what needs the recipe, for the error message.
    """
    try:
        config = CrystalDatasetConfig.from_dict(metadata["config"])
        extra = [UnitCell(**c["unit_cell"]) for c in metadata["classes"] if c["name"] not in config.prototypes]
    except (KeyError, TypeError, ValueError) as err:
        raise InputFileError(f"{source}: its metadata does not say how it was built ({err}); {purpose} needs a "
                             "dataset from `gaatool data crystals`") from None
    return config, extra


def split_neighbor_index(metadata: Mapping[str, Any], arrays: Mapping[str, np.ndarray], split: str,
                         source: str = "dataset") -> np.ndarray:
    """The neighbours of every environment of a saved split, as row indices into that split (M, K) int64.

    The file keeps environments, not particles, so the split is built again
    from its stored recipe (deterministic) and checked against the saved
    bond vectors; each crystal's neighbours are offset to its rows.
    """
    config, extra = stored_recipe(metadata, source, "neighbour averaging")
    count = config.replicas.get(split, 0)
    if count < 1:
        raise ConfigError(f"{source}: the dataset has no {split!r} split")
    config = dataclasses.replace(config, replicas={split: count}, steinhardt=False)
    rebuilt = build_crystal_dataset(config, extra_cells=extra, align=False)  # the cells as stored
    stored = arrays.get(f"{split}/r_ij")
    if stored is None or not np.array_equal(rebuilt.arrays[f"{split}/r_ij"], stored):
        raise InputFileError(f"{source}: its {split} split could not be rebuilt from its recipe (rows rearranged, "
                             "or made by another version of gaatool or freud?), so its particles' neighbours are unknown")
    parts, offset = [], 0
    for system in rebuilt.systems:
        parts.append(system.neighbor_index.astype(np.int64) + offset)
        offset += len(system.positions)
    return np.concatenate(parts)
