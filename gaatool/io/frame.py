"""One snapshot of particles: positions, an optional periodic box and particle types.

Every reader (:mod:`gaatool.io.gsd`, :mod:`gaatool.io.readers`) yields
:class:`Frame` objects, so that the tasks never see file formats.

Boxes are stored as lattice matrices whose *rows* are the three lattice
vectors (the crystallographic convention, also used by ASE and extended XYZ);
``box=None`` means a non-periodic system. HOOMD/GSD boxes
``[Lx, Ly, Lz, xy, xz, yz]`` are converted with :func:`hoomd_box_to_lattice`.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ..errors import InputFileError

__all__ = ["Frame", "hoomd_box_to_lattice", "lattice_to_hoomd_box", "as_lattice", "lattice_problem", "describe_selection"]

# A lattice whose volume is below this fraction of the product of its vector
# lengths is treated as degenerate (vectors nearly coplanar).
_DEGENERATE_RELATIVE_VOLUME = 1e-6


def hoomd_box_to_lattice(box) -> np.ndarray:
    """Lattice rows from a HOOMD box ``[Lx, Ly, Lz, xy, xz, yz]``.

    Per HOOMD's convention the lattice vectors are ``a1 = (Lx, 0, 0)``,
    ``a2 = (xy Ly, Ly, 0)`` and ``a3 = (xz Lz, yz Lz, Lz)``.

    Parameters
    ----------
    box : array-like (6,)
        HOOMD box parameters, length unit of the file.

    Returns
    -------
    numpy.ndarray (3, 3) float64
        Rows are the lattice vectors.

    >>> hoomd_box_to_lattice([2, 3, 4, 0.5, 0, 0])
    array([[2. , 0. , 0. ],
           [1.5, 3. , 0. ],
           [0. , 0. , 4. ]])
    """
    lx, ly, lz, xy, xz, yz = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(6))
    return np.array([[lx, 0.0, 0.0], [xy * ly, ly, 0.0], [xz * lz, yz * lz, lz]])


def lattice_to_hoomd_box(lattice) -> np.ndarray:
    """HOOMD box ``[Lx, Ly, Lz, xy, xz, yz]`` of an upper-triangular (HOOMD-form) lattice.

    Inverse of :func:`hoomd_box_to_lattice`. The lattice must already be in
    HOOMD orientation (``a1`` along x, ``a2`` in the xy plane); use
    :func:`gaatool.data.neighbors.standard_orientation` to rotate a general one.

    >>> lattice_to_hoomd_box(hoomd_box_to_lattice([2, 3, 4, 0.5, 0.25, 0.0]))
    array([2.  , 3.  , 4.  , 0.5 , 0.25, 0.  ])
    """
    lat = np.asarray(lattice, dtype=np.float64).reshape(3, 3)
    lx, ly, lz = lat[0, 0], lat[1, 1], lat[2, 2]
    return np.array([lx, ly, lz, lat[1, 0] / ly, lat[2, 0] / lz, lat[2, 1] / lz])


def as_lattice(box) -> np.ndarray | None:
    """Normalise a user box to lattice rows.

    Accepts ``None`` (non-periodic), 3 edge lengths (orthorhombic box),
    6 HOOMD parameters ``[Lx, Ly, Lz, xy, xz, yz]`` or a (3, 3) matrix whose rows
    are the lattice vectors. The result is not validated; :class:`Frame` does that.

    >>> as_lattice([1, 2, 3])
    array([[1., 0., 0.],
           [0., 2., 0.],
           [0., 0., 3.]])
    """
    if box is None:
        return None
    arr = np.asarray(box, dtype=np.float64)
    if arr.shape == (3,):
        return np.diag(arr)
    if arr.shape == (6,):
        return hoomd_box_to_lattice(arr)
    if arr.shape == (3, 3):
        return arr.copy()
    raise InputFileError(
        f"box has shape {arr.shape}; give 3 lengths, 6 HOOMD parameters [Lx, Ly, Lz, xy, xz, yz] "
        "or a 3x3 matrix of lattice vectors (rows)"
    )


def describe_selection(frames: slice | None) -> str:
    """A frame slice as the user would type it.

    >>> describe_selection(slice(1, None)), describe_selection(slice(None, 10, 2)), describe_selection(None)
    ('1:', ':10:2', 'all')
    """
    if frames is None:
        return "all"
    text = f"{'' if frames.start is None else frames.start}:{'' if frames.stop is None else frames.stop}"
    return text if frames.step is None else f"{text}:{frames.step}"


def lattice_problem(lattice) -> str | None:
    """Why ``lattice`` (3, 3) is unusable as a periodic box, or None if it is fine.

    >>> lattice_problem(np.eye(3)) is None
    True
    >>> lattice_problem([[1.0, 0, 0], [0, 1.0, 0], [1.0, 1.0, 0]])
    'box is degenerate (zero volume; 2D boxes are not supported)'
    """
    lattice = np.asarray(lattice, dtype=np.float64)
    if lattice.shape != (3, 3):
        return f"box has shape {lattice.shape} instead of (3, 3)"
    if not np.all(np.isfinite(lattice)):
        return "box has NaN or infinite entries"
    lengths = np.linalg.norm(lattice, axis=1)
    if np.any(lengths == 0.0):
        return "box has a zero-length lattice vector"
    volume = abs(float(np.linalg.det(lattice)))
    if volume <= _DEGENERATE_RELATIVE_VOLUME * float(np.prod(lengths)):
        return "box is degenerate (zero volume; 2D boxes are not supported)"
    return None


@dataclasses.dataclass(eq=False)
class Frame:
    """One validated snapshot.

    Attributes
    ----------
    positions : numpy.ndarray (N, 3) float64
        Cartesian coordinates, length unit of the file.
    box : numpy.ndarray (3, 3) float64 or None
        Rows are the lattice vectors of the periodic box; None if non-periodic.
    types : numpy.ndarray (N,) int64
        Index of each particle's type into ``type_names``.
    type_names : list of str
        Names of the types (e.g. element symbols or HOOMD type names).
    source : str
        File the frame came from (used in error messages).
    index : int
        Position of the frame in that file (0-based).
    pbc : tuple of 3 bool or None
        Which lattice vectors of ``box`` are periodic: all of them (None given with a box) or some, as
        for a slab (``(True, True, False)``: no particle interacts across the third); None without a box.

    Raises
    ------
    InputFileError
        If the frame is empty, has NaN/infinite coordinates, a zero or
        degenerate box, or types that do not match ``type_names``. The message
        names the file and frame, e.g. ``traj.gsd: frame 12 has non-finite (NaN or infinite) coordinates``.

    >>> f = Frame(np.zeros((2, 3)), None, np.array([0, 0]), ["A"], "mem", 0)
    >>> f.n_particles, f.periodic
    (2, False)
    """

    positions: np.ndarray
    box: np.ndarray | None
    types: np.ndarray
    type_names: list[str]
    source: str = "<memory>"
    index: int = 0
    pbc: tuple[bool, bool, bool] | None = None

    def __post_init__(self) -> None:
        where = f"{self.source}: frame {self.index}"
        positions = np.asarray(self.positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise InputFileError(f"{where} has positions of shape {positions.shape}; expected (N, 3)")
        if positions.shape[0] == 0:
            raise InputFileError(f"{where} has no particles")
        if not np.all(np.isfinite(positions)):
            raise InputFileError(f"{where} has non-finite (NaN or infinite) coordinates")
        self.positions = positions
        if self.box is not None:
            box = np.asarray(self.box, dtype=np.float64)
            problem = lattice_problem(box)
            if problem is not None:
                raise InputFileError(f"{where}: {problem}")
            self.box = box
            pbc = (True, True, True) if self.pbc is None else tuple(bool(flag) for flag in self.pbc)
            if len(pbc) != 3 or not any(pbc):
                raise InputFileError(f"{where}: pbc must be 3 flags, at least one periodic, with a box (got {pbc})")
            self.pbc = pbc
        elif self.pbc is not None and any(self.pbc):
            raise InputFileError(f"{where}: periodic flags {tuple(self.pbc)} without a box")
        else:
            self.pbc = None
        types = np.asarray(self.types)
        if types.shape != (positions.shape[0],):
            raise InputFileError(
                f"{where} has {types.shape} type ids for {positions.shape[0]} particles"
            )
        if types.size and not np.issubdtype(types.dtype, np.integer):
            raise InputFileError(f"{where} has non-integer type ids")
        self.types = types.astype(np.int64)
        self.type_names = [str(name) for name in self.type_names]
        if self.types.size and (self.types.min() < 0 or self.types.max() >= len(self.type_names)):
            raise InputFileError(
                f"{where} has type ids outside 0..{len(self.type_names) - 1} "
                f"({len(self.type_names)} type names)"
            )

    @property
    def n_particles(self) -> int:
        """Number of particles N."""
        return int(self.positions.shape[0])

    @property
    def periodic(self) -> bool:
        """True when the frame has a periodic box."""
        return self.box is not None

    def type_labels(self) -> np.ndarray:
        """Type name of every particle, (N,) str."""
        return np.asarray(self.type_names, dtype=str)[self.types]

    def with_box(self, box: Sequence | np.ndarray | None) -> "Frame":
        """A copy with another box (any form accepted by :func:`as_lattice`), periodic along all its axes."""
        return dataclasses.replace(self, box=as_lattice(box), pbc=None)
