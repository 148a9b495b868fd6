import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gaatool.data.neighbors import (NeighborFinder, bond_vectors, nearest_neighbor_distance, nearest_neighbors,
                                    perpendicular_widths, standard_orientation)
from gaatool.errors import InputFileError
from gaatool.testing import assert_rotation_covariant


def cubic_crystal(basis, counts):
    """Positions of a cubic crystal with unit cubic cell replicated counts times (n, 3), lattice (3, 3)."""
    cells = np.stack(np.meshgrid(*[np.arange(c) for c in counts], indexing="ij"), -1).reshape(-1, 3)
    positions = (cells[:, None, :] + np.asarray(basis)[None]).reshape(-1, 3)
    return positions, np.diag(np.asarray(counts, dtype=float))


def brute_force(positions, lattice, k):
    """k nearest distinct neighbours with minimum-image vectors over 5^3 images (slow reference)."""
    delta = positions[None, :, :] - positions[:, None, :]
    shifts = np.stack(np.meshgrid(*[np.arange(-2, 3)] * 3, indexing="ij"), -1).reshape(-1, 3) @ lattice
    candidates = delta[:, :, None, :] + shifts[None, None]
    lengths = np.linalg.norm(candidates, axis=-1)
    best = lengths.argmin(-1)
    vectors = np.take_along_axis(candidates, best[..., None, None], axis=2)[:, :, 0]
    distances = lengths.min(-1)
    np.fill_diagonal(distances, np.inf)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(vectors, order[..., None], axis=1)


def test_perfect_fcc_has_12_identical_unit_environments():
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    positions, lattice = cubic_crystal(fcc, (4, 4, 4))
    scale = np.sqrt(2.0)  # nearest-neighbour distance 1
    index, r_ij = nearest_neighbors(positions * scale, lattice * scale, 12)
    assert index.shape == (256, 12) and r_ij.shape == (256, 12, 3)
    np.testing.assert_allclose(np.linalg.norm(r_ij, axis=-1), 1.0, atol=1e-12)
    # Every environment is the same set of 12 vectors (the cuboctahedron).
    reference = np.unique(np.round(r_ij[0], 9), axis=0)
    assert len(reference) == 12
    for environment in r_ij:
        np.testing.assert_allclose(np.unique(np.round(environment, 9), axis=0), reference, atol=1e-9)
    assert not np.any(index == np.arange(256)[:, None])


@pytest.mark.parametrize("name, basis", [("bcc", [[0, 0, 0], [0.5, 0.5, 0.5]])])
def test_bcc_has_8_at_unit_distance_then_4_farther(name, basis):
    positions, lattice = cubic_crystal(basis, (4, 4, 4))
    scale = 2.0 / np.sqrt(3.0)
    index, r_ij = nearest_neighbors(positions * scale, lattice * scale, 12)
    distances = np.linalg.norm(r_ij, axis=-1)
    np.testing.assert_allclose(distances[:, :8], 1.0, atol=1e-12)
    np.testing.assert_allclose(distances[:, 8:], 2.0 / np.sqrt(3.0), atol=1e-12)
    # In CsCl (types = the two bcc sublattices) the first 8 are the other type.
    types = np.tile([0, 1], len(positions) // 2)
    assert np.all(types[index[:, :8]] != types[:, None])
    assert np.all(types[index[:, 8:]] == types[:, None])


def test_sorted_by_distance():
    positions = np.random.default_rng(0).uniform(0, 6, (120, 3))
    _, r_ij = nearest_neighbors(positions, 6 * np.eye(3), 10)
    distances = np.linalg.norm(r_ij, axis=-1)
    assert np.all(np.diff(distances, axis=1) >= 0)


@pytest.mark.parametrize("left_handed", [False, True])
def test_triclinic_minimum_image_matches_brute_force(left_handed):
    rng = np.random.default_rng(5)
    lattice = np.array([[6.0, 0.0, 0.0], [2.0, 5.5, 0.0], [-1.5, 1.8, 6.2]])
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    lattice = lattice @ rotation.T
    if left_handed:
        lattice = lattice[[1, 0, 2]]
    fractional = rng.uniform(size=(150, 3))
    # Some points outside the cell: the search must wrap them.
    positions = (fractional + rng.integers(-2, 3, size=(150, 3))) @ lattice
    index, r_ij = nearest_neighbors(positions, lattice, 8)
    expected_index, expected_r = brute_force(fractional @ lattice, lattice, 8)
    np.testing.assert_array_equal(index, expected_index)
    np.testing.assert_allclose(r_ij, expected_r, atol=1e-12)
    np.testing.assert_allclose(bond_vectors(positions, index, lattice), r_ij, atol=1e-12)


@pytest.mark.parametrize("length", [1e-20, 1e14, 1e30])
@pytest.mark.parametrize("periodic", [True, False])
def test_any_length_unit_gives_the_same_neighbours(length, periodic):
    # freud's float32 box overflowed past ~1e12 (a 1e14 box hung or failed); the search is scale-free now
    rng = np.random.default_rng(11)
    positions = rng.uniform(0, 6, (120, 3))
    box = 6 * np.eye(3) if periodic else None
    index, r_ij = nearest_neighbors(positions, box, 8)
    scaled_index, scaled_r = nearest_neighbors(positions * length, None if box is None else box * length, 8)
    np.testing.assert_array_equal(scaled_index, index)
    np.testing.assert_allclose(scaled_r / length, r_ij, rtol=1e-12, atol=1e-12)
    assert nearest_neighbor_distance(positions * length, None if box is None else box * length) == pytest.approx(
        length * nearest_neighbor_distance(positions, box), rel=1e-12)


def test_non_periodic_matches_brute_force():
    rng = np.random.default_rng(7)
    positions = rng.normal(size=(60, 3)) * 3 + 100.0
    index, r_ij = nearest_neighbors(positions, None, 6)
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    expected = np.argsort(distances, axis=1)[:, :6]
    np.testing.assert_array_equal(index, expected)
    np.testing.assert_allclose(r_ij, positions[expected] - positions[:, None], atol=1e-12)


@given(seed=st.integers(0, 2**16), reflect=st.booleans())
def test_bond_vectors_rotate_with_the_points(seed, reflect):
    positions = torch.from_numpy(np.random.default_rng(seed).normal(size=(20, 3)))
    assert_rotation_covariant(
        lambda p: torch.from_numpy(nearest_neighbors(p.numpy(), None, 5)[1]), positions, seed=seed, reflect=reflect
    )


@pytest.mark.parametrize("basis, k, shells", [
    ([[0.0, 0, 0]], 12, [(12, np.sqrt(0.5))]),  # fcc's one-atom primitive cell: 12 images of the atom
    ([[0.0, 0, 0], [0.5, 0.5, 0.5]], 12, [(8, np.sqrt(0.75)), (4, 1.0)]),  # bcc's two-atom cell
])
def test_periodic_cells_with_fewer_points_than_neighbours(basis, k, shells):
    # a unit cell of 1-8 atoms (a POSCAR) is searched through copies; neighbours may be images of one point
    positions = np.asarray(basis, dtype=float)
    lattice = np.eye(3) if len(basis) == 2 else np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
    index, r_ij = nearest_neighbors(positions, lattice, k)
    distances = np.linalg.norm(r_ij, axis=-1)
    start = 0
    for count, length in shells:
        np.testing.assert_allclose(distances[:, start:start + count], length, atol=1e-12)
        start += count
    assert index.max() < len(basis)
    assert len(np.unique(np.round(r_ij[0], 9), axis=0)) == k  # k different images, none counted twice
    assert nearest_neighbor_distance(positions, lattice) == pytest.approx(shells[0][1])


def test_errors():
    with pytest.raises(InputFileError, match="8 particles are too few for 12 neighbours; need at least 13"):
        nearest_neighbors(np.zeros((8, 3)), None, 12)
    with pytest.raises(InputFileError, match="degenerate"):
        nearest_neighbors(np.random.default_rng(0).normal(size=(20, 3)), np.diag([1.0, 1.0, 0.0]) + [[0, 0, 0], [0, 0, 0], [1, 1, 0]], 4)
    with pytest.raises(InputFileError, match="NaN"):
        nearest_neighbors(np.full((20, 3), np.nan), None, 4)
    with pytest.raises(InputFileError, match="at least 1"):
        nearest_neighbors(np.zeros((20, 3)), None, 0)


def test_standard_orientation_and_widths():
    rng = np.random.default_rng(2)
    lattice = rng.normal(size=(3, 3)) + 3 * np.eye(3)
    hoomd, transform = standard_orientation(lattice)
    np.testing.assert_allclose(lattice @ transform, hoomd, atol=1e-12)
    np.testing.assert_allclose(transform @ transform.T, np.eye(3), atol=1e-12)
    assert hoomd[0, 1] == hoomd[0, 2] == hoomd[1, 2] == 0.0
    assert np.all(np.diag(hoomd) > 0)
    widths = perpendicular_widths(lattice)
    np.testing.assert_allclose(widths, perpendicular_widths(hoomd), atol=1e-12)
    np.testing.assert_allclose(widths[2], hoomd[2, 2], atol=1e-12)
    np.testing.assert_allclose(abs(np.linalg.det(lattice)), np.prod(np.diag(hoomd)), atol=1e-9)


@pytest.mark.parametrize("periodic", [True, False])
def test_queries_by_range_equal_the_whole_search(periodic):
    rng = np.random.default_rng(11)
    lattice = np.array([[7.0, 0.0, 0.0], [1.0, 6.5, 0.0], [-0.5, 1.2, 7.2]])
    positions = rng.uniform(size=(200, 3)) @ lattice
    box = lattice if periodic else None
    index, r_ij = nearest_neighbors(positions, box, 6)
    finder = NeighborFinder(positions, box, 6)
    parts = [finder.query(start, start + 37) for start in range(0, 200, 37)]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), index)
    np.testing.assert_allclose(np.concatenate([p[1] for p in parts]), r_ij, atol=1e-12)
    assert not np.any(index == np.arange(200)[:, None])  # never its own neighbour
    expected_index, expected_r = brute_force(positions, lattice, 6) if periodic else (None, None)
    if periodic:
        np.testing.assert_array_equal(finder.query(50, 60)[0], expected_index[50:60])


@pytest.mark.parametrize("periodic", [True, False])
def test_near_ties_are_ranked_in_float64(periodic):
    # Two candidates for the last neighbour place whose distances differ by less than float32 resolves
    # (1e-10 .. 3e-8 relative): freud's float32 order is arbitrary there; the result must be the truly nearer.
    rng = np.random.default_rng(5)
    lattice = 20.0 * np.eye(3)
    for _ in range(60):
        u = rng.normal(size=(2, 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        eps = 10 ** rng.uniform(-10, -7.5)
        pair = [u[0], u[1] * (1.0 + eps)]
        order = rng.permutation(2)
        centre = rng.uniform(2, 18, size=3)
        positions = centre + np.array([[0, 0, 0], [0, 0, 0.5]] + [pair[o] for o in order] + [[3.0, 3, 3], [-3.0, 3, 3]])
        index, r_ij = nearest_neighbors(positions, lattice if periodic else None, 2)
        nearer = 2 + int(np.argmin(order))  # row of pair[0]
        assert index[0, 1] == nearer
        assert np.linalg.norm(r_ij[0, 1]) == pytest.approx(1.0, abs=1e-12)


def test_empty_range_query():
    finder = NeighborFinder(np.random.default_rng(0).normal(size=(20, 3)), None, 4)
    index, r_ij = finder.query(5, 5)
    assert index.shape == (0, 4) and r_ij.shape == (0, 4, 3)


def test_nearest_neighbor_distance_in_chunks(monkeypatch):
    from gaatool.data import neighbors

    rng = np.random.default_rng(8)
    positions = rng.uniform(0, 12, size=(3000, 3))
    _, r_ij = nearest_neighbors(positions, 12 * np.eye(3), 1)
    expected = float(np.median(np.linalg.norm(r_ij[:, 0], axis=-1)))
    monkeypatch.setattr(neighbors, "DISTANCE_CHUNK", 257)
    assert neighbors.nearest_neighbor_distance(positions, 12 * np.eye(3)) == expected


def brute_force_images(positions, lattice, k, reach=4):
    """k nearest points among all periodic images within ``reach`` boxes (the point itself excluded, its
    images not): (index (N, k), r_ij (N, k, 3)), for boxes smaller than the neighbour shell."""
    shifts = np.stack(np.meshgrid(*[np.arange(-reach, reach + 1)] * 3, indexing="ij"), -1).reshape(-1, 3) @ lattice
    n = len(positions)
    candidates = (positions[None, :, None, :] + shifts[None, None]) - positions[:, None, None, :]  # (N, N, S, 3)
    candidates = candidates.reshape(n, -1, 3)
    lengths = np.linalg.norm(candidates, axis=-1)
    lengths[lengths == 0] = np.inf
    order = np.argsort(lengths, axis=1)[:, :k]
    return order // len(shifts), np.take_along_axis(candidates, order[..., None], axis=1)


@pytest.mark.parametrize("seed", range(4))
def test_boxes_smaller_than_the_neighbour_shell_are_searched_as_supercells(seed):
    """A 16-point triclinic box whose 12th neighbours lie beyond half its width (as in a small ab initio MD
    cell): every neighbour is the true one, several of them images of one point."""
    rng = np.random.default_rng(seed)
    lattice = np.diag([2.0, 2.2, 1.8]) + rng.uniform(-0.3, 0.3, size=(3, 3))
    positions = rng.uniform(size=(16, 3)) @ lattice
    index, r_ij = nearest_neighbors(positions, lattice, 12)
    expected_index, expected_r = brute_force_images(positions, lattice, 12)
    np.testing.assert_array_equal(index, expected_index)
    np.testing.assert_allclose(r_ij, expected_r, atol=1e-12)
    assert np.linalg.norm(r_ij, axis=-1).max() > 0.5 * perpendicular_widths(lattice).min()
    assert any(len(set(row)) < 12 for row in index)  # images of one point
    # chunked queries grow the supercell as they go: the same answer
    finder = NeighborFinder(positions, lattice, 12)
    parts = [finder.query(start, start + 5) for start in range(0, 16, 5)]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), index)


def test_a_flat_box_that_needs_too_many_copies_is_refused(monkeypatch):
    from gaatool.data import neighbors

    positions, lattice = cubic_crystal([[0, 0, 0], [0.5, 0.5, 0.5]], (2, 2, 2))
    monkeypatch.setattr(neighbors, "MAX_SUPERCELL_POINTS", 64)
    with pytest.raises(InputFileError, match="periodic box is too small for 12 neighbours.*is the box right"):
        nearest_neighbors(positions, lattice, 12)


def brute_force_open(positions, lattice, k, pbc, reach=3):
    """k nearest points among images along the periodic axes only (as brute_force_images)."""
    ranges = [np.arange(-reach, reach + 1) if periodic else np.array([0]) for periodic in pbc]
    shifts = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, 3) @ lattice
    n = len(positions)
    candidates = ((positions[None, :, None, :] + shifts[None, None]) - positions[:, None, None, :]).reshape(n, -1, 3)
    lengths = np.linalg.norm(candidates, axis=-1)
    lengths[lengths == 0] = np.inf
    order = np.argsort(lengths, axis=1)[:, :k]
    return order // len(shifts), np.take_along_axis(candidates, order[..., None], axis=1)


@pytest.mark.parametrize("pbc", [(True, True, False), (False, True, True), (True, False, False)])
def test_boxes_periodic_along_some_axes_only(pbc):
    """A slab (or a wire): no neighbour across an open axis, however thin its cell along it; the periodic axes as
    usual, small ones included."""
    rng = np.random.default_rng(sum(pbc) * 7 + pbc[0])
    lattice = np.diag([3.0, 3.2, 2.9]) + rng.uniform(-0.3, 0.3, size=(3, 3))
    positions = rng.uniform(size=(40, 3)) @ lattice
    index, r_ij = nearest_neighbors(positions, lattice, 12, pbc=pbc)
    expected_index, expected_r = brute_force_open(positions, lattice, 12, pbc)
    np.testing.assert_array_equal(index, expected_index)
    np.testing.assert_allclose(r_ij, expected_r, atol=1e-12)
    fully = nearest_neighbors(positions, lattice, 12)[1]
    assert not np.allclose(np.linalg.norm(fully, axis=-1), np.linalg.norm(r_ij, axis=-1))  # the open axis matters
    lattice_before = lattice.copy()
    NeighborFinder(positions, lattice, 12, pbc=pbc)
    np.testing.assert_array_equal(lattice, lattice_before)  # the caller's box is left alone
    with pytest.raises(InputFileError, match="periodic along no axis"):
        NeighborFinder(positions, lattice, 12, pbc=(False, False, False))
