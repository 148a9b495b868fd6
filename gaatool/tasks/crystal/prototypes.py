"""Crystal structure prototypes: unit cells built from space group + Wyckoff positions.

The 8 classes of the paper's structure-identification benchmark are the AFLOW
prototypes listed in :data:`PROTOTYPE_NAMES`. Their lattice parameters and
Wyckoff representatives ship with the package
(``prototypes/aflow_prototypes.json``, provenance in
``prototypes/PROVENANCE.md``); the full conventional cell is generated here
from the space group's operations (gemmi, origin choice 2 for group 227) with
positions deduplicated modulo lattice translations.

Users add their own classes with :func:`load_unit_cell` (CIF via gemmi,
VASP POSCAR, or the first frame of a GSD file).

Frames: ``lattice`` rows are the lattice vectors (length unit of the source,
angstrom for the prototypes); ``fractional`` coordinates are in [0, 1).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ...errors import ConfigError, InputFileError
from ...io.text import check_input_file

__all__ = [
    "PROTOTYPE_NAMES",
    "UnitCell",
    "prototype_definitions",
    "prototype_cell",
    "prototype_cells",
    "cell_from_wyckoff",
    "lattice_from_parameters",
    "load_unit_cell",
    "read_poscar",
    "check_no_overlaps",
    "OVERLAP_FRACTION",
]

#: The paper's 8 classes, in the order used for class labels.
PROTOTYPE_NAMES = (
    "cF4-Cu",
    "hP2-Mg",
    "cI2-W",
    "cP2-CsCl",
    "cF8-ZnS",
    "cF8-C",
    "cP46-Si",
    "cF136-Si",
)

_DATA_FILE = "aflow_prototypes.json"
# Two fractional positions closer than this (per coordinate, modulo 1) are one site.
_SAME_SITE_TOL = 1e-4
# Atoms of a user's cell closer than this fraction of the mean spacing (V/N)^(1/3) are taken for a mistake
# (overlapping or duplicated sites, a wrong origin choice): real crystals stay above ~0.3 (solid H2: 0.28).
OVERLAP_FRACTION = 0.1


@dataclasses.dataclass(frozen=True, eq=False)
class UnitCell:
    """A periodic unit cell with typed sites.

    Attributes
    ----------
    name : str
        Class name (e.g. ``"cF4-Cu"`` or a file stem).
    lattice : numpy.ndarray (3, 3) float64
        Rows are the lattice vectors, length unit of the source.
    fractional : numpy.ndarray (n, 3) float64
        Site coordinates in the lattice basis, in [0, 1).
    types : numpy.ndarray (n,) int64
        Type index of each site into ``type_names``.
    type_names : tuple of str
        Species of each type, in order of first appearance.
    source : str
        Where the cell came from (file or prototype label).

    >>> cell = prototype_cell("cI2-W")
    >>> cell.n_sites, round(cell.nearest_neighbor_distance(), 4)
    (2, 2.7323)
    """

    name: str
    lattice: np.ndarray
    fractional: np.ndarray
    types: np.ndarray
    type_names: tuple[str, ...]
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or self.name
        lattice = np.asarray(self.lattice, dtype=np.float64)
        fractional = np.asarray(self.fractional, dtype=np.float64)
        types = np.asarray(self.types)
        if lattice.shape != (3, 3) or not np.all(np.isfinite(lattice)):
            raise InputFileError(f"{where}: unit cell lattice must be a finite 3x3 matrix")
        lengths = np.linalg.norm(lattice, axis=1)
        if np.any(lengths == 0) or abs(np.linalg.det(lattice)) <= 1e-6 * np.prod(lengths):
            raise InputFileError(f"{where}: unit cell lattice is degenerate (zero volume)")
        if fractional.ndim != 2 or fractional.shape[1] != 3 or fractional.shape[0] == 0:
            raise InputFileError(f"{where}: unit cell has no sites")
        if not np.all(np.isfinite(fractional)):
            raise InputFileError(f"{where}: unit cell has non-finite (NaN or infinite) coordinates")
        if types.shape != (fractional.shape[0],) or (types.size and not np.issubdtype(types.dtype, np.integer)):
            raise InputFileError(f"{where}: unit cell needs one integer type per site")
        names = tuple(str(t) for t in self.type_names)
        if types.min() < 0 or types.max() >= len(names):
            raise InputFileError(f"{where}: unit cell type ids do not match its {len(names)} type names")
        object.__setattr__(self, "lattice", lattice)
        object.__setattr__(self, "fractional", np.mod(fractional, 1.0))
        object.__setattr__(self, "types", types.astype(np.int64))
        object.__setattr__(self, "type_names", names)

    @property
    def n_sites(self) -> int:
        """Number of sites n in the cell."""
        return int(self.fractional.shape[0])

    @property
    def positions(self) -> np.ndarray:
        """Cartesian site positions (n, 3), ``fractional @ lattice``."""
        return self.fractional @ self.lattice

    def neighbor_distances(self, r_max: float) -> list[np.ndarray]:
        """Sorted distances from each site to every other atom (all periodic images) within ``r_max``.

        Returns a list of n arrays; a site's own images count, the site itself does not.
        """
        from ...data.neighbors import perpendicular_widths

        reach = np.ceil(r_max / perpendicular_widths(self.lattice)).astype(int)
        grids = [np.arange(-m, m + 1) for m in reach]
        shifts = np.stack(np.meshgrid(*grids, indexing="ij"), -1).reshape(-1, 3)
        images = (self.fractional[None, :, :] + shifts[:, None, :]).reshape(-1, 3) @ self.lattice
        result = []
        for position in self.positions:
            d = np.linalg.norm(images - position, axis=1)
            d = d[(d > 1e-8) & (d <= r_max)]
            result.append(np.sort(d))
        return result

    def nearest_neighbor_distance(self) -> float:
        """Shortest distance between two atoms of the periodic structure."""
        # A site's own image along the shortest lattice vector bounds the answer.
        r_max = float(np.linalg.norm(self.lattice, axis=1).min()) * (1 + 1e-9)
        return float(min(d[0] for d in self.neighbor_distances(r_max) if d.size))

    def scaled(self, factor: float) -> "UnitCell":
        """The same cell with all lengths multiplied by ``factor``."""
        return dataclasses.replace(self, lattice=self.lattice * float(factor))

    def with_unit_nearest_neighbor(self) -> "UnitCell":
        """Rescaled so that the shortest nearest-neighbour distance is 1."""
        return self.scaled(1.0 / self.nearest_neighbor_distance())

    def supercell(self, counts: Sequence[int]) -> "UnitCell":
        """The cell replicated ``counts = (n1, n2, n3)`` times along its lattice vectors.

        Sites are ordered cell by cell (n1 slowest), the unit cell's order inside.

        >>> prototype_cell("cF4-Cu").supercell((2, 1, 1)).n_sites
        8
        """
        counts = np.asarray(counts, dtype=np.int64).reshape(3)
        if np.any(counts < 1):
            raise ConfigError(f"replication counts must be positive, got {counts.tolist()}")
        grids = [np.arange(c) for c in counts]
        shifts = np.stack(np.meshgrid(*grids, indexing="ij"), -1).reshape(-1, 3)
        fractional = (self.fractional[None, :, :] + shifts[:, None, :]).reshape(-1, 3) / counts
        types = np.tile(self.types, len(shifts))
        return dataclasses.replace(
            self, lattice=self.lattice * counts[:, None], fractional=fractional, types=types
        )

    def to_dict(self) -> dict:
        """JSON-serialisable description (stored in dataset metadata)."""
        return {
            "name": self.name,
            "source": self.source,
            "lattice": self.lattice.tolist(),
            "fractional": self.fractional.tolist(),
            "types": self.types.tolist(),
            "type_names": list(self.type_names),
        }


def lattice_from_parameters(a: float, b: float, c: float, alpha: float, beta: float, gamma: float) -> np.ndarray:
    """Lattice rows from cell lengths and angles (degrees): ``a`` along x, ``b`` in the xy plane.

    >>> np.round(lattice_from_parameters(2, 2, 3, 90, 90, 120), 6) + 0.0
    array([[ 2.      ,  0.      ,  0.      ],
           [-1.      ,  1.732051,  0.      ],
           [ 0.      ,  0.      ,  3.      ]])
    """
    al, be, ga = np.radians([alpha, beta, gamma])
    cos_al, cos_be, cos_ga, sin_ga = np.cos(al), np.cos(be), np.cos(ga), np.sin(ga)
    # Exact zeros for right angles keep cubic cells exactly diagonal.
    cos_al, cos_be, cos_ga = (0.0 if abs(v) < 1e-15 else v for v in (cos_al, cos_be, cos_ga))
    cx = cos_be
    cy = (cos_al - cos_be * cos_ga) / sin_ga
    cz2 = 1.0 - cx * cx - cy * cy
    if cz2 <= 1e-8:
        raise InputFileError(f"cell angles {alpha}, {beta}, {gamma} do not form a 3D cell")
    return np.array([
        [a, 0.0, 0.0],
        [b * cos_ga, b * sin_ga, 0.0],
        [c * cx, c * cy, c * np.sqrt(cz2)],
    ])


def _dedupe(fractional: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep: list[int] = []
    wrapped = np.mod(fractional, 1.0)
    for i in range(len(wrapped)):
        duplicate = False
        for j in keep:
            delta = wrapped[i] - wrapped[j]
            if np.all(np.abs(delta - np.rint(delta)) < _SAME_SITE_TOL):
                if types[i] != types[j]:
                    raise InputFileError(
                        f"two different species occupy fractional position {np.round(wrapped[i], 4).tolist()}"
                    )
                duplicate = True
                break
        if not duplicate:
            keep.append(i)
    # Values within rounding of 1.0 wrap to 0 so equivalent cells compare equal.
    result = wrapped[keep]
    result[np.abs(result - 1.0) < 1e-12] = 0.0
    return result, types[keep]


def _space_group(spacegroup: int | str, setting: int = 1):
    import gemmi

    try:
        if isinstance(spacegroup, str):
            return gemmi.SpaceGroup(spacegroup)
        sg = gemmi.find_spacegroup_by_number(int(spacegroup))
        if sg is None:
            raise ValueError(f"no space group number {spacegroup}")
        if sg.ext in ("1", "2"):
            # Groups with two origin choices: gemmi defaults to choice 1.
            sg = gemmi.SpaceGroup(f"{sg.hm}:{int(setting)}")
        return sg
    except (ValueError, RuntimeError) as err:
        raise ConfigError(f"unknown space group {spacegroup!r} (setting {setting}): {err}") from err


def cell_from_wyckoff(
    name: str,
    spacegroup: int | str,
    lattice,
    sites: Iterable[tuple[str, Sequence[float]]],
    setting: int = 1,
    source: str = "",
) -> UnitCell:
    """The full conventional cell generated from Wyckoff representatives.

    Parameters
    ----------
    name : str
        Class name of the cell.
    spacegroup : int or str
        International number (with ``setting`` = origin choice for groups
        that have two) or a Hermann-Mauguin symbol gemmi understands
        (``"F d -3 m:2"``).
    lattice : array-like (3, 3)
        Rows are the conventional lattice vectors.
    sites : iterable of (species, (x, y, z))
        One representative per Wyckoff orbit, fractional coordinates.
    setting : int
        Origin choice (1 or 2) when ``spacegroup`` is a number.
    source : str
        Provenance string kept on the cell.

    Returns
    -------
    UnitCell
        All symmetry-equivalent positions (modulo 1, deduplicated); types in
        order of the species' first appearance in ``sites``.

    >>> cell_from_wyckoff("C", 227, 3.55 * np.eye(3), [("C", (0.125, 0.125, 0.125))], setting=2).n_sites
    8
    """
    sg = _space_group(spacegroup, setting)
    ops = list(sg.operations())
    type_names: list[str] = []
    fractional: list[list[float]] = []
    types: list[int] = []
    for species, coords in sites:
        if species not in type_names:
            type_names.append(species)
        t = type_names.index(species)
        xyz = [float(v) for v in coords]
        for op in ops:
            fractional.append(op.apply_to_xyz(xyz))
            types.append(t)
    unique, unique_types = _dedupe(np.array(fractional), np.array(types))
    return UnitCell(name, np.asarray(lattice, dtype=np.float64), unique, unique_types, tuple(type_names), source)


@lru_cache(maxsize=1)
def _load_definitions() -> str:
    return (resources.files(__package__) / "prototypes" / _DATA_FILE).read_text(encoding="utf-8")


def prototype_definitions() -> list[dict]:
    """The shipped prototype records (AFLOW label, space group, setting, a, c/a, Wyckoff sites, checks).

    A fresh copy each call; see ``prototypes/PROVENANCE.md`` for the sources.
    """
    return json.loads(_load_definitions())["prototypes"]


def _definition(name: str) -> dict:
    for record in prototype_definitions():
        if name in (record["paper_name"], record["aflow_label"]):
            return record
    raise ConfigError(f"unknown prototype {name!r}; choose from {', '.join(PROTOTYPE_NAMES)}")


def prototype_cell(name: str) -> UnitCell:
    """The conventional cell of a shipped prototype (angstrom), by paper name or AFLOW label.

    >>> cell = prototype_cell("cP2-CsCl")
    >>> cell.n_sites, cell.type_names
    (2, ('Cl', 'Cs'))
    """
    record = _definition(name)
    a = float(record["a"])
    c = a * float(record["c_over_a"])
    if record["pearson"].startswith("h"):
        lattice = lattice_from_parameters(a, a, c, 90.0, 90.0, 120.0)
    else:
        lattice = lattice_from_parameters(a, a, c, 90.0, 90.0, 90.0)
    sites = [(site["element"], site["coords"]) for site in record["sites"]]
    source = f"AFLOW prototype {record['aflow_label']}"
    return cell_from_wyckoff(
        record["paper_name"], int(record["spacegroup"]), lattice, sites, int(record["setting"]), source
    )


def prototype_cells(names: Sequence[str] | None = None) -> list[UnitCell]:
    """Conventional cells of ``names`` (default: all of :data:`PROTOTYPE_NAMES`, in order)."""
    return [prototype_cell(name) for name in (PROTOTYPE_NAMES if names is None else names)]


# ---------------------------------------------------------------------------
# User cells from files


def _types_from_labels(labels: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    names: list[str] = []
    types = []
    for label in labels:
        if label not in names:
            names.append(label)
        types.append(names.index(label))
    return np.array(types, dtype=np.int64), tuple(names)


def _cif_block(path: Path):
    """The data block of a CIF that holds the atom sites (journal CIFs often open with a global block)."""
    import gemmi

    try:
        document = gemmi.cif.read(str(path))
    except Exception as err:  # gemmi: RuntimeError for syntax, others for odd files
        raise InputFileError(f"{path}: cannot read CIF ({err})") from err
    blocks = [block for block in document if len(block.find_values("_atom_site_fract_x"))]
    if len(blocks) != 1:
        found = "no data block with atom sites (_atom_site_fract_x ...)" if not blocks else \
            f"{len(blocks)} data blocks with atom sites ({', '.join(b.name for b in blocks)}); give one structure per file"
        raise InputFileError(f"{path}: CIF has {found}")
    return blocks[0]


def _cif_species(site) -> str:
    """The element of a CIF site: from ``_atom_site_type_symbol`` or, without one, the label (gemmi's reading),
    so that ``Na1+`` and sites labelled ``Cr1``, ``Cr2`` are all one species, as in a simulation file."""
    if site.element.name != "X":
        return site.element.name
    symbol = site.type_symbol or site.label  # not an element (dummy atoms, 'A1'): its name without digits/charge
    return re.sub(r"[0-9+-]+$", "", symbol) or symbol


def _cif_symmetry(structure, path: Path) -> None:
    """Make sure the CIF's symmetry was understood: symmetry operations, or a space group gemmi knows (from a
    Hermann-Mauguin or Hall symbol, or only the International Tables number), else a one-line error; a CIF
    without any is not read as P1 (a forgotten space group line would silently make another structure)."""
    import gemmi

    if len(structure.symops) or structure.spacegroup is not None:
        return
    symbol = (structure.spacegroup_hm or structure.spacegroup_hall or "").strip()
    if symbol:
        raise InputFileError(f"{path}: unknown space group {symbol!r}; give a Hermann-Mauguin symbol such as "
                             "'F m -3 m' or the symmetry operations (_space_group_symop_operation_xyz)")
    if structure.spacegroup_number:
        group = gemmi.find_spacegroup_by_number(int(structure.spacegroup_number))
        if group is None:
            raise InputFileError(f"{path}: no space group number {structure.spacegroup_number}")
        # origin choice 2 where there are two, as gemmi reads a bare Hermann-Mauguin symbol
        structure.spacegroup_hm = group.hm + (":2" if group.ext in ("1", "2") else "")
        structure.determine_and_set_spacegroup("1")  # R groups: rhombohedral or hexagonal axes from the cell
        return
    raise InputFileError(f"{path}: CIF gives no space group or symmetry operations; add "
                         "_space_group_name_H-M_alt 'P 1' if its sites are the whole cell")


def _read_cif(path: Path, name: str) -> UnitCell:
    import gemmi

    block = _cif_block(path)
    # gemmi takes a missing cell for a = b = c = 1: the lengths must be there (angles default to 90 in CIF)
    missing = [tag for tag in ("_cell_length_a", "_cell_length_b", "_cell_length_c")
               if not np.isfinite(gemmi.cif.as_number(block.find_value(tag) or "?"))]
    if missing:
        raise InputFileError(f"{path}: CIF has no unit cell ({', '.join(missing)} missing)")
    try:
        structure = gemmi.make_small_structure_from_block(block)
    except Exception as err:
        raise InputFileError(f"{path}: cannot read CIF ({err})") from err
    cell = structure.cell
    if cell.a <= 0 or cell.volume <= 0:
        raise InputFileError(f"{path}: CIF has no unit cell (_cell_length_*, _cell_angle_*)")
    _cif_symmetry(structure, path)
    sites = structure.get_all_unit_cell_sites()
    if not sites:
        raise InputFileError(f"{path}: CIF has no atom sites")
    partial = list(dict.fromkeys(s.label for s in sites if s.occ < 0.999))
    if partial:
        raise InputFileError(
            f"{path}: sites {', '.join(partial[:3])} are partially occupied; give an ordered structure"
        )
    types, type_names = _types_from_labels([_cif_species(s) for s in sites])
    fractional = np.array([[s.fract.x, s.fract.y, s.fract.z] for s in sites])
    lattice = lattice_from_parameters(cell.a, cell.b, cell.c, cell.alpha, cell.beta, cell.gamma)
    return UnitCell(name, lattice, fractional, types, type_names, str(path))


def read_poscar(path: str | os.PathLike, name: str | None = None) -> UnitCell:
    """Read a VASP POSCAR/CONTCAR file (VASP 4 or 5 layout) as a :class:`UnitCell`
    (:func:`gaatool.io.vasp.read_poscar_cell`: scale forms, species line, selective dynamics, Direct or
    Cartesian coordinates; VASP 4 files get types ``X0, X1, ...``)."""
    from ...io.vasp import read_poscar_cell

    path = Path(path)
    cell = read_poscar_cell(path)
    # repeated species names (e.g. "Si O Si") share one type
    types, type_names = _types_from_labels(cell.labels)
    return UnitCell(name or path.stem, cell.lattice, cell.fractional, types, type_names, str(path))


def _read_gsd_cell(path: Path, name: str) -> UnitCell:
    from ...io.gsd import read_gsd

    frame = next(iter(read_gsd(path, slice(0, 1))))
    if frame.box is None:
        raise InputFileError(f"{path}: frame 0 has no box")
    # HOOMD boxes are centred on the origin: fractional 0 is the corner at -L/2.
    fractional = np.linalg.solve(frame.box.T, frame.positions.T).T + 0.5
    # Keep only the types that occur, in order of first appearance.
    labels = [frame.type_names[t] for t in frame.types]
    types, type_names = _types_from_labels(labels)
    return UnitCell(name, frame.box, fractional, types, type_names, str(path))


def check_no_overlaps(cell: UnitCell) -> None:
    """Refuse a cell with two atoms (or an atom and a periodic image) closer than :data:`OVERLAP_FRACTION` of
    the mean spacing ``(V / n)^(1/3)``: overlapping or duplicated sites would set the nearest-neighbour
    distance (the dataset's length unit) and give environments with atoms on top of each other."""
    from ...data.neighbors import perpendicular_widths

    spacing = (abs(np.linalg.det(cell.lattice)) / cell.n_sites) ** (1.0 / 3.0)
    r_max = OVERLAP_FRACTION * spacing
    reach = np.ceil(r_max / perpendicular_widths(cell.lattice)).astype(int)
    shifts = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in reach], indexing="ij"), -1).reshape(-1, 3)
    images = (cell.fractional[None, :, :] + shifts[:, None, :]).reshape(-1, 3) @ cell.lattice
    owner = np.tile(np.arange(cell.n_sites), len(shifts))
    zero = np.repeat(np.all(shifts == 0, axis=1), cell.n_sites)
    species = np.asarray(cell.type_names)[cell.types]
    for i, position in enumerate(cell.positions):
        d = np.linalg.norm(images - position, axis=1)
        d[zero & (owner == i)] = np.inf  # the atom itself
        k = int(np.argmin(d))
        if d[k] < r_max:
            j = int(owner[k])
            at = (lambda f: "(" + ", ".join(f"{v:.4g}" for v in f) + ")")
            raise InputFileError(
                f"{cell.source or cell.name}: atoms {species[i]} at {at(cell.fractional[i])} and {species[j]} at "
                f"{at(cell.fractional[j])} are {d[k]:.3g} apart, {d[k] / spacing:.1%} of the mean spacing "
                f"{spacing:.3g}: overlapping atoms (a site listed twice, or a wrong origin choice?)")


def load_unit_cell(path: str | os.PathLike, name: str | None = None) -> UnitCell:
    """Read a unit cell from a CIF (gemmi; symmetry expanded), a POSCAR/CONTCAR or a GSD file.

    Parameters
    ----------
    path : path-like
        ``*.cif``; ``POSCAR*``, ``CONTCAR*``, ``*.vasp`` or ``*.poscar``;
        ``*.gsd`` (frame 0, whose box is the cell; HOOMD's origin-centred
        box, so fractional 0 is the box corner at ``-(a1 + a2 + a3) / 2``).
    name : str, optional
        Class name; defaults to the file name without extension.

    Returns
    -------
    UnitCell

    Raises
    ------
    InputFileError
        Missing or malformed file, unsupported format, partially occupied sites, overlapping atoms
        (:func:`check_no_overlaps`); a CIF without a cell or without any symmetry (``P 1`` must be said).
    """
    path = Path(path)
    check_input_file(path, "a unit cell file")
    name = name or path.stem
    suffix = path.suffix.lower()
    base = path.name.upper()
    if suffix == ".cif":
        cell = _read_cif(path, name)
    elif suffix in (".vasp", ".poscar") or base.startswith("POSCAR") or base.startswith("CONTCAR"):
        cell = read_poscar(path, name)
    elif suffix == ".gsd":
        cell = _read_gsd_cell(path, name)
    else:
        raise InputFileError(
            f"{path}: unknown unit cell format; use a .cif, POSCAR/CONTCAR/.vasp or .gsd file"
        )
    check_no_overlaps(cell)
    return cell
