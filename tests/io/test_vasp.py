"""VASP files as snapshots: POSCAR/CONTCAR (one frame) and XDATCAR (every configuration of a run)."""
import gzip

import numpy as np
import pytest

from gaatool.errors import ConfigError, InputFileError
from gaatool.io.readers import read_frames
from gaatool.io.vasp import read_poscar_cell, vasp_kind

LATTICE = np.array([[5.0, 0.0, 0.0], [1.0, 6.0, 0.0], [0.5, -0.5, 7.0]])
SPECIES = ["Si", "O"]
COUNTS = [2, 4]


def header(lattice=LATTICE, scale="1.0", comment="quartz-ish run"):
    rows = [" ".join(f"{v:.10f}" for v in row) for row in lattice]
    return [comment, scale, *rows, " ".join(SPECIES), " ".join(map(str, COUNTS))]


def configuration(step, fractional, word="Direct"):
    return [f"{word} configuration= {step:6d}"] + [" ".join(f"{v:.10f}" for v in row) for row in fractional]


@pytest.fixture
def fractional():
    rng = np.random.default_rng(4)
    return [rng.uniform(0, 1, (6, 3)) for _ in range(3)]


def test_xdatcar_frames_in_order_with_selection(tmp_path, fractional):
    lines = header()
    for step, frac in enumerate(fractional, 1):
        lines += configuration(step, frac)
    path = tmp_path / "XDATCAR"
    path.write_text("\n".join(lines) + "\n")
    frames = list(read_frames(path))
    assert [f.index for f in frames] == [0, 1, 2]
    for frame, frac in zip(frames, fractional):
        np.testing.assert_allclose(frame.box, LATTICE)
        np.testing.assert_allclose(frame.positions, frac @ LATTICE, atol=1e-9)
        assert frame.type_names == ["O", "Si"] and frame.types.tolist() == [1, 1, 0, 0, 0, 0]
    assert [f.index for f in read_frames(path, slice(-1, None))] == [2]
    assert [f.index for f in read_frames(path, slice(None, None, 2))] == [0, 2]
    assert [f.index for f in read_frames(path, slice(None, None, -1))] == [2, 1, 0]
    with pytest.raises(InputFileError, match="selects none of its 3 frames"):
        list(read_frames(path, slice(5, 9)))
    with pytest.raises(ConfigError, match="carry their own cell"):
        read_frames(path, box=[10, 10, 10])
    gz = tmp_path / "XDATCAR.gz"  # runs are often kept gzipped
    gz.write_bytes(gzip.compress(path.read_bytes()))
    np.testing.assert_allclose(list(read_frames(gz))[1].positions, frames[1].positions)


def test_xdatcar_of_a_variable_cell_run(tmp_path, fractional):
    """ISIF = 3 runs repeat the header (with the new cell and a volume as scale) before every configuration."""
    lines, cells = [], []
    for step, frac in enumerate(fractional, 1):
        cell = LATTICE * (1 + 0.01 * step)
        cells.append(cell)
        volume = abs(np.linalg.det(cell))
        lines += header(LATTICE, scale=f"{-volume:.10f}") + configuration(step, frac)
    path = tmp_path / "XDATCAR_npt"
    path.write_text("\n".join(lines) + "\n")
    for frame, cell, frac in zip(read_frames(path), cells, fractional):
        np.testing.assert_allclose(frame.box, cell, atol=1e-8)
        np.testing.assert_allclose(frame.positions, frac @ cell, atol=1e-8)


def test_cartesian_configurations_and_poscar(tmp_path, fractional):
    lines = header(scale="2.0") + configuration(1, fractional[0] @ LATTICE, word="Cartesian")
    path = tmp_path / "XDATCAR"
    path.write_text("\n".join(lines) + "\n")
    frame = next(read_frames(path))
    np.testing.assert_allclose(frame.box, 2 * LATTICE)
    np.testing.assert_allclose(frame.positions, 2 * fractional[0] @ LATTICE, atol=1e-9)  # scaled like the cell
    poscar = tmp_path / "CONTCAR"
    poscar.write_text("\n".join(header() + ["Direct"] + configuration(1, fractional[1])[1:]) + "\n")
    (frame,) = read_frames(poscar)
    np.testing.assert_allclose(frame.positions, fractional[1] @ LATTICE, atol=1e-9)
    np.testing.assert_allclose(read_poscar_cell(poscar).fractional, fractional[1], atol=1e-9)


def test_damaged_xdatcar_files_name_frame_and_line(tmp_path, fractional):
    good = header() + configuration(1, fractional[0]) + configuration(2, fractional[1])
    cases = {
        "truncated": (good[:-2], r"frame 1 \(line 19\): the file ends after 4 of 6 coordinate lines"),
        "junk": (good[:10] + ["0.1 zero 0.3"] + good[11:], r"frame 0 \(line 11\): coordinate line '0.1 zero 0.3'"),
        "no configurations": (header(), "holds no configurations"),
        "counts": (header()[:6] + ["2 x"] + configuration(1, fractional[0]), r"frame 0 \(line 7\): the species counts"),
    }
    for name, (lines, message) in cases.items():
        path = tmp_path / f"XDATCAR_{name.replace(' ', '_')}"
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(InputFileError, match=message):
            list(read_frames(path))
    empty = tmp_path / "XDATCAR_empty"
    empty.write_text("")
    with pytest.raises(InputFileError, match="empty"):
        list(read_frames(empty))
    with pytest.raises(InputFileError, match="no such file"):
        list(read_frames(tmp_path / "XDATCAR_missing"))


def test_vasp_files_are_told_by_name():
    assert vasp_kind("XDATCAR") == vasp_kind("md/XDATCAR_300K.gz") == "xdatcar"
    assert vasp_kind("POSCAR") == vasp_kind("CONTCAR.relaxed") == vasp_kind("Fe.vasp") == "poscar"
    assert vasp_kind("traj.xyz") is None and vasp_kind("notes.txt") is None
