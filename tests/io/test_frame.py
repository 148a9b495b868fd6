import numpy as np
import pytest

from gaatool.errors import GaatoolError, InputFileError
from gaatool.io.frame import Frame, as_lattice, hoomd_box_to_lattice, lattice_problem, lattice_to_hoomd_box


def make(positions=None, box=None, types=None, names=("A", "B"), source="traj.gsd", index=12):
    positions = np.random.default_rng(0).uniform(size=(5, 3)) if positions is None else positions
    types = np.array([0, 1, 0, 1, 1]) if types is None else types
    return Frame(positions, box, types, list(names), source, index)


def test_valid_frame_is_normalised():
    frame = make(positions=np.ones((5, 3), dtype=np.float32), box=np.eye(3) * 4, types=np.array([0, 1, 0, 1, 1], np.int32))
    assert frame.positions.dtype == np.float64
    assert frame.types.dtype == np.int64
    assert frame.n_particles == 5 and frame.periodic
    assert frame.type_labels().tolist() == ["A", "B", "A", "B", "B"]
    assert not make().periodic


def test_nan_coordinates_name_file_and_frame():
    positions = np.zeros((5, 3))
    positions[3, 1] = np.nan
    with pytest.raises(InputFileError, match=r"^traj\.gsd: frame 12 has non-finite \(NaN or infinite\) coordinates$"):
        make(positions=positions)
    positions[3, 1] = np.inf  # was reported as NaN
    with pytest.raises(InputFileError, match=r"^traj\.gsd: frame 12 has non-finite \(NaN or infinite\) coordinates$"):
        make(positions=positions)


@pytest.mark.parametrize(
    "box, message",
    [
        (np.zeros((3, 3)), "zero-length lattice vector"),
        (np.diag([1.0, 1.0, 0.0]), "zero-length lattice vector"),
        (np.array([[1.0, 0, 0], [0, 1, 0], [1, 1, 0]]), "degenerate"),
        (np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, np.nan]]), "NaN"),
        (np.eye(2), "shape"),
    ],
)
def test_bad_boxes_are_refused(box, message):
    with pytest.raises(InputFileError, match=rf"^traj\.gsd: frame 12: .*{message}"):
        make(box=box)


def test_empty_and_mismatched_frames():
    with pytest.raises(InputFileError, match="frame 12 has no particles"):
        make(positions=np.zeros((0, 3)), types=np.zeros(0, int))
    with pytest.raises(InputFileError, match=r"positions of shape \(5, 2\)"):
        make(positions=np.zeros((5, 2)))
    with pytest.raises(InputFileError, match="type ids for 5 particles"):
        make(types=np.array([0, 1]))
    with pytest.raises(InputFileError, match="outside 0..1"):
        make(types=np.array([0, 1, 2, 0, 0]))
    with pytest.raises(InputFileError, match="non-integer"):
        make(types=np.array([0.0, 1, 0, 1, 1]))
    assert issubclass(InputFileError, GaatoolError)


def test_hoomd_box_convention_and_round_trip():
    lattice = hoomd_box_to_lattice([2.0, 3.0, 4.0, 0.5, -0.25, 0.1])
    np.testing.assert_array_equal(lattice[0], [2.0, 0.0, 0.0])
    np.testing.assert_allclose(lattice[1], [0.5 * 3.0, 3.0, 0.0])
    np.testing.assert_allclose(lattice[2], [-0.25 * 4.0, 0.1 * 4.0, 4.0])
    np.testing.assert_allclose(lattice_to_hoomd_box(lattice), [2.0, 3.0, 4.0, 0.5, -0.25, 0.1])


def test_as_lattice_forms():
    assert as_lattice(None) is None
    np.testing.assert_array_equal(as_lattice([1, 2, 3]), np.diag([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(as_lattice([1, 2, 3, 0.5, 0, 0])[1], [1.0, 2.0, 0.0])
    matrix = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(as_lattice(matrix), matrix)
    with pytest.raises(InputFileError, match="box has shape"):
        as_lattice([1, 2])
    assert lattice_problem(np.eye(3)) is None


def test_with_box_replaces_and_validates():
    frame = make()
    periodic = frame.with_box([5.0, 5.0, 5.0])
    np.testing.assert_array_equal(periodic.box, np.diag([5.0, 5.0, 5.0]))
    assert frame.box is None
    with pytest.raises(InputFileError, match="frame 12"):
        frame.with_box([5.0, 0.0, 5.0])
