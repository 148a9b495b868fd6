import json

import gsd.hoomd
import numpy as np
import pytest

from gaatool.errors import InputFileError
from gaatool.io.gsd import CLASS_NAMES_KEY, CONFIDENCE_KEY, LABEL_KEY, count_gsd_frames, read_gsd, write_labeled_gsd

BOX = [4.0, 5.0, 6.0, 0.2, -0.1, 0.3]


def snapshot(step, n=10, seed=0, dimensions=3, position=None):
    rng = np.random.default_rng(seed + step)
    frame = gsd.hoomd.Frame()
    frame.configuration.step = step
    frame.configuration.box = BOX if dimensions == 3 else [4.0, 5.0, 0.0, 0.2, 0.0, 0.0]
    frame.configuration.dimensions = dimensions
    frame.particles.N = n
    frame.particles.types = ["A", "B"]
    frame.particles.typeid = (np.arange(n) % 2).astype(np.uint32)
    frame.particles.position = (rng.uniform(-2, 2, (n, 3)) if position is None else position).astype(np.float32)
    frame.particles.charge = np.linspace(-1, 1, n).astype(np.float32)
    return frame


@pytest.fixture
def trajectory(tmp_path):
    path = tmp_path / "traj.gsd"
    with gsd.hoomd.open(str(path), mode="w") as handle:
        for step in range(4):
            handle.append(snapshot(step))
    return path


def test_round_trip_positions_box_types(trajectory):
    frames = list(read_gsd(trajectory))
    assert [f.index for f in frames] == [0, 1, 2, 3]
    reference = snapshot(2)
    frame = frames[2]
    np.testing.assert_array_equal(frame.positions, reference.particles.position.astype(np.float64))
    assert frame.positions.dtype == np.float64
    lx, ly, lz, xy, xz, yz = BOX
    np.testing.assert_allclose(frame.box, [[lx, 0, 0], [xy * ly, ly, 0], [xz * lz, yz * lz, lz]], rtol=1e-7)
    assert frame.type_names == ["A", "B"]
    assert frame.types.tolist() == [0, 1] * 5
    assert frame.source == str(trajectory)
    assert count_gsd_frames(trajectory) == 4


def test_frame_selection(trajectory):
    assert [f.index for f in read_gsd(trajectory, slice(1, 3))] == [1, 2]
    assert [f.index for f in read_gsd(trajectory, slice(-1, None))] == [3]
    assert [f.index for f in read_gsd(trajectory, slice(None, None, 2))] == [0, 2]
    last = next(iter(read_gsd(trajectory, slice(-1, None))))
    np.testing.assert_array_equal(last.positions, snapshot(3).particles.position)
    with pytest.raises(InputFileError, match="selects none of its 4 frames"):
        read_gsd(trajectory, slice(10, 20))


def test_missing_folder_and_empty_files(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_gsd(tmp_path / "missing.gsd")
    with pytest.raises(InputFileError, match="is a folder"):
        read_gsd(tmp_path)
    empty = tmp_path / "empty.gsd"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match=r"empty\.gsd: not a HOOMD GSD file, or truncated/damaged"):
        read_gsd(empty)
    no_frames = tmp_path / "noframes.gsd"
    with gsd.hoomd.open(str(no_frames), mode="w"):
        pass
    with pytest.raises(InputFileError, match=r"noframes\.gsd: has no frames"):
        read_gsd(no_frames)


@pytest.mark.parametrize("fraction", [0.001, 0.05, 0.5, 0.99])
def test_truncated_file_is_reported(trajectory, tmp_path, fraction):
    data = trajectory.read_bytes()
    broken = tmp_path / "broken.gsd"
    broken.write_bytes(data[: max(1, int(len(data) * fraction))])
    with pytest.raises(InputFileError, match=r"broken\.gsd: .*(truncated|damaged)"):
        list(read_gsd(broken))


def test_garbage_file_is_reported(tmp_path):
    garbage = tmp_path / "text.gsd"
    garbage.write_text("this is not a gsd file\n" * 50)
    with pytest.raises(InputFileError, match="not a HOOMD GSD file"):
        read_gsd(garbage)


def test_invalid_frames_name_the_frame(tmp_path):
    path = tmp_path / "bad.gsd"
    positions = np.zeros((10, 3))
    positions[4] = np.nan
    with gsd.hoomd.open(str(path), mode="w") as handle:
        handle.append(snapshot(0))
        handle.append(snapshot(1, position=positions))
    frames = read_gsd(path)
    next(frames)
    with pytest.raises(InputFileError, match=r"bad\.gsd: frame 1 has non-finite \(NaN or infinite\) coordinates"):
        next(frames)

    flat = tmp_path / "flat.gsd"
    with gsd.hoomd.open(str(flat), mode="w") as handle:
        handle.append(snapshot(0, dimensions=2))
    with pytest.raises(InputFileError, match="frame 0 is two-dimensional"):
        list(read_gsd(flat))


@pytest.mark.parametrize("box, kind", [([0.0] * 6, "zero-length box (Lx=0, Ly=0, Lz=0)"),
                                       ([4.0, 0.0, 0.0, 0, 0, 0], "zero-length box (Lx=4, Ly=0, Lz=0)"),
                                       ([4.0, -5.0, 6.0, 0, 0, 0], "negative-length box (Lx=4, Ly=-5, Lz=6)"),
                                       ([4.0, 5.0, -6.0, 0, 0, 0], "negative-length box (Lx=4, Ly=5, Lz=-6)")])
def test_a_zero_box_is_not_called_two_dimensional(tmp_path, box, kind):
    """gsd infers dimensions 2 from Lz = 0, so an all-zero box was reported as a 2D system."""
    path = tmp_path / "zero.gsd"
    frame = snapshot(0)
    frame.configuration = gsd.hoomd.ConfigurationData()  # dimensions unset, as most writers leave it
    frame.configuration.box = box
    with gsd.hoomd.open(str(path), mode="w") as handle:
        handle.append(snapshot(1))
        handle.append(frame)
    with pytest.raises(InputFileError) as info:
        list(read_gsd(path))
    assert str(info.value) == f"{path}: frame 1 has a {kind}"


def test_write_labeled_gsd_adds_logged_labels(trajectory, tmp_path):
    out = tmp_path / "labeled.gsd"
    labels = [np.arange(10) % 3, np.full(10, -1)]
    confidence = [np.linspace(0, 1, 10), np.zeros(10)]
    write_labeled_gsd(trajectory, out, labels, [2, 0], ["cF4-Cu", "hP2-Mg", "cI2-W"], confidence)
    with gsd.hoomd.open(str(out), mode="r") as handle:
        assert len(handle) == 2
        first, second = handle[0], handle[1]
        assert first.configuration.step == 2 and second.configuration.step == 0
        np.testing.assert_array_equal(first.particles.position, snapshot(2).particles.position)
        np.testing.assert_array_equal(first.particles.typeid, np.arange(10) % 2)
        np.testing.assert_array_equal(first.particles.charge, snapshot(2).particles.charge)
        assert first.particles.types == ["A", "B"]
        np.testing.assert_array_equal(first.log[LABEL_KEY], labels[0])
        assert first.log[LABEL_KEY].dtype == np.int32
        np.testing.assert_array_equal(second.log[LABEL_KEY], labels[1])
        np.testing.assert_allclose(first.log[CONFIDENCE_KEY], confidence[0], rtol=1e-6)
        assert json.loads(first.log[CLASS_NAMES_KEY]) == ["cF4-Cu", "hP2-Mg", "cI2-W"]
    # The labelled file is itself readable as frames.
    assert [f.index for f in read_gsd(out)] == [0, 1]


def test_write_labeled_gsd_in_place(trajectory):
    write_labeled_gsd(trajectory, trajectory, [np.zeros(10, int)], [1], ["x"])
    with gsd.hoomd.open(str(trajectory), mode="r") as handle:
        assert len(handle) == 1
        np.testing.assert_array_equal(handle[0].particles.position, snapshot(1).particles.position)


def test_write_labeled_gsd_errors_leave_no_file(trajectory, tmp_path):
    out = tmp_path / "out.gsd"
    with pytest.raises(ValueError, match="shape"):
        write_labeled_gsd(trajectory, out, [np.zeros(10, int), np.zeros(9, int)], [0, 1], ["x"])
    with pytest.raises(ValueError, match=r"outside -1..0"):
        write_labeled_gsd(trajectory, out, [np.ones(10, int)], [0], ["x"])
    with pytest.raises(InputFileError, match="frame 7 does not exist"):
        write_labeled_gsd(trajectory, out, [np.zeros(10, int)], [7], ["x"])
    with pytest.raises(ValueError, match="label arrays"):
        write_labeled_gsd(trajectory, out, [np.zeros(10, int)], [0, 1], ["x"])
    assert not out.exists()
    assert list(tmp_path.glob(".out.gsd*")) == []
