"""Nearest-neighbour search in periodic (any triclinic box) and non-periodic systems.

The search itself runs in freud (``freud.locality.AABBQuery``); this module
deals with the conventions around it:

* boxes are lattice matrices whose rows are the lattice vectors (as in
  :class:`gaatool.io.frame.Frame`). freud wants HOOMD's upper-triangular
  orientation, so positions are mapped into that orientation through their
  fractional coordinates and the bond vectors are mapped back, which keeps
  ``r_ij`` in the caller's frame for any lattice, left-handed ones included;
* ``r_ij = r_j - r_i`` is returned in float64: freud works in float32, so its
  vector only selects the periodic image and the difference is recomputed in
  float64; freud is asked for a few candidates more than needed and they are
  ranked by the float64 distances, so two neighbours closer in distance than
  float32 can resolve still come out in their true order;
* a box too small for the requested neighbour count (the k-th neighbour
  beyond half the narrowest box width, where a single search would count some
  periodic images twice and miss others) is searched as a supercell of enough
  copies of the box along its narrow directions, so that small simulation cells
  (a 16-atom bcc or hcp cell of an ab initio MD run) get their true
  neighbours: several of them may then be images of one particle;
* boxes periodic along some axes only (a slab: ``pbc = (True, True, False)``)
  are searched with each open axis's lattice vector stretched so that the
  particles' extent along it plus an empty gap fills it, the gap wider than
  the farthest neighbour found: no particle can reach across it.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputFileError
from ..io.frame import lattice_problem

# Points per query when measuring the nearest-neighbour distance of a whole frame.
DISTANCE_CHUNK = 65536

# Candidates beyond k that freud returns for the float64 re-ranking: enough for a
# near-tie (in float32) of this many extra points at the k-th place.
EXTRA_CANDIDATES = 2

# Most points a supercell of a small box may hold (the frame's points times its copies).
MAX_SUPERCELL_POINTS = 4_000_000

__all__ = ["nearest_neighbors", "NeighborFinder", "bond_vectors", "perpendicular_widths", "standard_orientation"]


def perpendicular_widths(lattice) -> np.ndarray:
    """Distances between opposite faces of the cell spanned by the lattice rows.

    lattice (3, 3) rows = lattice vectors -> (3,) widths, same length unit.
    A sphere of radius ``min(widths) / 2`` fits in the cell.

    >>> perpendicular_widths(np.diag([1.0, 2.0, 3.0]))
    array([1., 2., 3.])
    """
    lat = np.asarray(lattice, dtype=np.float64)
    volume = abs(np.linalg.det(lat))
    areas = np.array([
        np.linalg.norm(np.cross(lat[1], lat[2])),
        np.linalg.norm(np.cross(lat[2], lat[0])),
        np.linalg.norm(np.cross(lat[0], lat[1])),
    ])
    return volume / areas


def standard_orientation(lattice) -> tuple[np.ndarray, np.ndarray]:
    """The same lattice rotated into HOOMD/freud orientation.

    Parameters
    ----------
    lattice : array-like (3, 3)
        Rows are lattice vectors.

    Returns
    -------
    hoomd_lattice : numpy.ndarray (3, 3)
        Lower-triangular rows (``a1`` along x, ``a2`` in the xy plane), with
        positive diagonal: the Cholesky factor of the metric ``L L^T``, so all
        lengths and angles are kept.
    transform : numpy.ndarray (3, 3)
        Orthogonal matrix ``Q`` with ``lattice @ Q == hoomd_lattice``; map
        positions with ``positions @ Q`` and vectors back with ``v @ Q.T``.
        ``det(Q) = -1`` for a left-handed lattice.

    >>> hl, q = standard_orientation([[0.0, 2.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    >>> np.round(hl, 12) + 0.0
    array([[2., 0., 0.],
           [0., 1., 0.],
           [0., 0., 3.]])
    """
    lat = np.asarray(lattice, dtype=np.float64)
    hoomd_lattice = np.linalg.cholesky(lat @ lat.T)
    transform = np.linalg.solve(lat, hoomd_lattice)
    return hoomd_lattice, transform


def _freud_box(hoomd_lattice: np.ndarray):
    import freud

    return freud.box.Box.from_matrix(hoomd_lattice.T)


def nearest_neighbors(positions, box, k: int, pbc=None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest neighbours of every point, sorted by distance.

    Parameters
    ----------
    positions : array-like (N, 3)
        Cartesian coordinates, any length unit.
    box : array-like (3, 3) or None
        Rows are the periodic lattice vectors; None for a non-periodic system.
    k : int
        Number of neighbours K per point (a point is never its own neighbour).
    pbc : sequence of 3 bool, optional
        Which lattice vectors are periodic (default: all); the others bound
        nothing (a slab's vacuum direction).

    Returns
    -------
    neighbor_index : numpy.ndarray (N, K) int64
        Index of each neighbour j, nearest first by float64 distance; exact
        ties go to the smaller index.
    r_ij : numpy.ndarray (N, K, 3) float64
        Bond vectors ``r_j - r_i`` (minimum image if periodic), same unit.

    Raises
    ------
    InputFileError
        If N < K + 1, the box is degenerate, or a box too small for K neighbours
        would need a supercell of more than :data:`MAX_SUPERCELL_POINTS` points
        (a nearly flat box). A small box otherwise gives the true neighbours,
        some of them periodic images of one particle (possibly of itself).

    >>> pos = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 2.0, 0]])
    >>> idx, r_ij = nearest_neighbors(pos, None, 1)
    >>> idx[:, 0].tolist(), r_ij[2, 0].tolist()
    ([1, 0, 0], [0.0, -2.0, 0.0])
    """
    finder = NeighborFinder(positions, box, k, pbc)
    return finder.query(0, finder.n)


class NeighborFinder:
    """k-nearest-neighbour search built once, queried for ranges of points (bounded memory for big frames).

    Same conventions and errors as :func:`nearest_neighbors`, which is
    ``NeighborFinder(positions, box, k).query(0, N)``.

    >>> finder = NeighborFinder(np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 2.0, 0]]), None, 1)
    >>> finder.query(2, 3)[0].tolist()
    [[0]]
    """

    def __init__(self, positions, box, k: int, pbc=None):
        import freud

        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise InputFileError(f"positions have shape {positions.shape}; expected (N, 3)")
        k = int(k)
        n = positions.shape[0]
        if k < 1:
            raise InputFileError(f"neighbour count must be at least 1, got {k}")
        if n < k + 1 and box is None:  # a periodic box is searched through copies (a unit cell of 1-8 atoms)
            raise InputFileError(f"{n} particles are too few for {k} neighbours; need at least {k + 1}")
        if n < 1:
            raise InputFileError("no particles")
        if not np.all(np.isfinite(positions)):
            raise InputFileError("positions contain NaN or infinite coordinates")

        # freud works in float32 and overflows on boxes past ~1e12 (their volume): the search runs in units of
        # a power of two near the system's size, which scales every float exactly, and r_ij is scaled back
        self.unit = _power_of_two_unit(positions, box)
        positions = positions / self.unit
        box = None if box is None else np.asarray(box, dtype=np.float64) / self.unit
        self.positions, self.n, self.k = positions, n, k
        if box is None:
            centered = positions - positions.mean(axis=0)
            # Any two points are closer than the cube's diagonal 2*sqrt(3)*extent,
            # so a box of twice that never lets a periodic image get in.
            extent = float(np.abs(centered).max())
            self.lattice = self.half_width = None
            self.open_axes = []
            self._index(freud.box.Box.cube(4.0 * np.sqrt(3.0) * extent + 2.0), centered)
        else:
            self.lattice = np.array(box, dtype=np.float64)  # a copy: open axes stretch it
            problem = lattice_problem(self.lattice)
            if problem is not None:
                raise InputFileError(problem)
            self.open_axes = [] if pbc is None else [axis for axis in range(3) if not pbc[axis]]
            if len(self.open_axes) == 3:
                raise InputFileError("a box that is periodic along no axis; give no box for a non-periodic frame")
            # open axes: each lattice vector stretched to the particles' extent plus a gap as wide as the
            # widest periodic direction to begin with (widened while a neighbour reaches as far)
            widths = perpendicular_widths(self.lattice)
            start = max(widths[axis] for axis in range(3) if axis not in self.open_axes)
            self.gaps = {axis: start for axis in self.open_axes}
            self._stretch_open_axes()
            # enough copies along the periodic axes for k neighbours and the float64 re-ranking's candidates
            periodic = 3 - len(self.open_axes)
            factor = 1
            while n * factor ** periodic < k + 1 + EXTRA_CANDIDATES:
                factor += 1
            self._periodic_search(tuple(1 if axis in self.open_axes else factor for axis in range(3)))

    def _stretch_open_axes(self) -> None:
        """Scale each open axis's lattice vector so that its width is the particles' extent along it plus its gap."""
        for axis in self.open_axes:
            others = [a for a in range(3) if a != axis]
            normal = np.cross(self.lattice[others[0]], self.lattice[others[1]])
            normal /= np.linalg.norm(normal)
            extent = float(np.ptp(self.positions @ normal))
            width = float(perpendicular_widths(self.lattice)[axis])
            self.lattice[axis] *= (extent + self.gaps[axis]) / width

    def _index(self, fbox, points) -> None:
        import freud

        self.points = np.ascontiguousarray(points, dtype=np.float32)
        try:
            self._query = freud.locality.AABBQuery(fbox, self.points)
        except (RuntimeError, ValueError) as err:
            raise InputFileError(f"neighbour search failed: {err}") from err

    def _periodic_search(self, copies: tuple[int, int, int]) -> None:
        """Index the box repeated ``copies`` times along its lattice vectors (the frame's points first)."""
        self.copies = copies
        shifts = np.stack(np.meshgrid(*[np.arange(c) for c in copies], indexing="ij"), -1).reshape(-1, 3)
        self.search_lattice = np.asarray(copies, dtype=np.float64)[:, None] * self.lattice
        self.search_positions = (self.positions if len(shifts) == 1 else
                                 (self.positions[None] + (shifts @ self.lattice)[:, None]).reshape(-1, 3))
        hoomd_lattice, self.transform = standard_orientation(self.search_lattice)
        fbox = _freud_box(hoomd_lattice)
        fractional = np.linalg.solve(self.search_lattice.T, self.search_positions.T).T
        self._index(fbox, fbox.make_absolute(fractional - np.floor(fractional)))
        self.half_width = 0.5 * float(perpendicular_widths(self.search_lattice).min())

    def _widen_gaps(self, axes: list[int], farthest: float) -> None:
        """Widen the gaps of these open axes to 2.2 times ``farthest`` (never narrower) and stretch their vectors."""
        for axis in axes:
            self.gaps[axis] = max(self.gaps[axis], 2.2 * farthest)
        self._stretch_open_axes()

    def _more_copies(self, farthest: float) -> bool:
        """Repeat the box along each direction narrower than twice ``farthest`` (with a margin); False
        when the supercell would exceed MAX_SUPERCELL_POINTS."""
        # the farthest neighbour found in too small a box may fall short of the true one: the caller asks again
        widths = perpendicular_widths(self.search_lattice)
        factors = [1 if axis in self.open_axes else max(1, int(np.ceil(2.2 * farthest / width)))
                   for axis, width in enumerate(widths)]
        # an open axis is never repeated: its gap grows instead
        self._widen_gaps([axis for axis in self.open_axes if widths[axis] <= 2.2 * farthest], farthest)
        copies = tuple(c * f for c, f in zip(self.copies, factors))
        if self.n * int(np.prod(copies)) > MAX_SUPERCELL_POINTS:
            return False
        self._periodic_search(copies)
        return True

    def query(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(neighbor_index (M, K), r_ij (M, K, 3)) of points start..stop-1, as :func:`nearest_neighbors`."""
        start, stop = max(0, int(start)), min(self.n, int(stop))
        while True:
            found = self._query_range(start, stop)
            if found is not None:
                return found

    def _query_range(self, start: int, stop: int):
        """The neighbours of points start..stop-1, or None when the box had to be repeated (ask again)."""
        m, k, positions, lattice = stop - start, self.k, self.positions, self.lattice
        if lattice is not None:
            positions, lattice = self.search_positions, self.search_lattice
        # freud's exclude_ii compares query and point *positions in their arrays*, which differ for a
        # range; ask for the point itself too and drop it, plus a few candidates for the float64 ranking
        candidates = min(len(self.points), k + 1 + EXTRA_CANDIDATES)
        try:
            nlist = self._query.query(self.points[start:stop], {"num_neighbors": candidates, "exclude_ii": False})
            nlist = nlist.toNeighborList()
        except (RuntimeError, ValueError) as err:
            raise InputFileError(f"neighbour search failed: {err}") from err
        i = np.asarray(nlist.query_point_indices, dtype=np.int64) + start
        j = np.asarray(nlist.point_indices, dtype=np.int64)
        vectors = np.asarray(nlist.vectors, dtype=np.float64)
        other = j != i
        i, j, vectors = i[other], j[other], vectors[other]
        counts = np.bincount(i - start, minlength=m)
        if np.any(counts < k):
            raise InputFileError(
                f"neighbour search found {counts.min()} instead of {k} neighbours for some particles"
            )
        delta = positions[j] - self.positions[i]
        if lattice is not None:
            # freud's float32 vector only picks the image; the lattice translation
            # it implies is an exact integer vector, applied to the float64 difference.
            image_vectors = vectors @ self.transform.T
            shift = np.rint(np.linalg.solve(lattice.T, (image_vectors - delta).T).T)
            delta = delta + shift @ lattice
        distances = np.linalg.norm(delta, axis=1)
        order = np.lexsort((j, distances, i))
        # sorted by point, then distance: the first k rows of each point's group
        first_row = np.cumsum(counts) - counts
        keep = order[(first_row[:, None] + np.arange(k)).reshape(-1)]
        neighbor_index = j[keep].reshape(m, k) % self.n  # a copy in the supercell -> the particle it copies
        r_ij = delta[keep].reshape(m, k, 3)
        distances = distances[keep]
        if lattice is not None and m:
            farthest = float(distances.max())
            narrow = [axis for axis in self.open_axes if self.gaps[axis] <= farthest]
            if narrow:  # a neighbour may lie across the gap: widen it, index again, ask again
                self._widen_gaps(narrow, farthest)
                self._periodic_search(self.copies)
                return None
            if farthest >= self.half_width:
                if self._more_copies(farthest):
                    return None
                raise InputFileError(
                    f"the periodic box is too small for {k} neighbours: one lies at {farthest * self.unit:.4g}, "
                    f"beyond half the narrowest width ({self.half_width * self.unit:.4g}) of "
                    f"{int(np.prod(self.copies))} copies of the box; is the box right?")
        return neighbor_index, r_ij * self.unit


def _power_of_two_unit(positions: np.ndarray, box) -> float:
    """The power of two nearest the longest lattice vector (or the points' extent without a box); 1 for
    a single point."""
    if box is None:
        size = float(np.abs(positions - positions.mean(axis=0)).max())
    else:
        lattice = np.asarray(box, dtype=np.float64)
        size = float(np.linalg.norm(lattice, axis=1).max()) if lattice.shape == (3, 3) else 1.0  # refused later
    if not (np.isfinite(size) and size > 0):
        return 1.0
    return float(2.0 ** np.round(np.log2(size)))


def bond_vectors(positions, neighbors, box=None) -> np.ndarray:
    """r_ij = r_j - r_i, minimum image if ``box`` is given.

    positions (N, 3), any length unit; neighbors (N, K) int; box (3, 3) lattice
    rows or None -> (N, K, 3) float64. The minimum image is searched among the
    27 images around the rounded fractional difference, exact unless the box is
    extremely skewed.

    >>> bond_vectors(np.zeros((2, 3)), np.array([[1], [0]])).shape
    (2, 1, 3)
    >>> bond_vectors(np.array([[0.1, 0, 0], [0.9, 0, 0]]), np.array([[1], [0]]), np.eye(3))[0, 0]
    array([-0.2,  0. ,  0. ])
    """
    positions = np.asarray(positions, dtype=np.float64)
    neighbors = np.asarray(neighbors, dtype=np.int64)
    delta = positions[neighbors] - positions[:, None, :]
    if box is None:
        return delta
    lattice = np.asarray(box, dtype=np.float64)
    fractional = np.linalg.solve(lattice.T, delta.reshape(-1, 3).T).T
    fractional -= np.rint(fractional)
    shifts = np.stack(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1], indexing="ij"), -1).reshape(-1, 3)
    candidates = (fractional[:, None, :] + shifts[None]) @ lattice  # (N*K, 27, 3)
    best = np.argmin(np.einsum("mcx,mcx->mc", candidates, candidates), axis=1)
    return candidates[np.arange(len(best)), best].reshape(delta.shape)


def nearest_neighbor_distance(positions, box, pbc=None) -> float:
    """The length unit of crystal environments: median over points of the distance to the closest point.

    positions (N, 3); box (3, 3) lattice rows or None -> float, same unit as positions.
    The same estimate is applied to training replicas and to user snapshots, so
    its bias under thermal noise (the closest of ~12 noisy neighbours is nearer
    than the lattice distance) is the same on both sides.

    >>> round(nearest_neighbor_distance(np.array([[0.0, 0, 0], [1.5, 0, 0], [0, 2.0, 0]]), None), 6)
    1.5
    """
    finder = NeighborFinder(positions, box, 1, pbc)
    # in chunks: the search's temporary arrays stay bounded for frames of millions of particles
    distances = [np.linalg.norm(finder.query(start, start + DISTANCE_CHUNK)[1][:, 0], axis=-1)
                 for start in range(0, finder.n, DISTANCE_CHUNK)]
    return float(np.median(np.concatenate(distances)))
