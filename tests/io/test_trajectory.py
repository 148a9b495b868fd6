"""Tests of gaatool.io.trajectory: DCD/XTC coordinates in Å, written and read back."""
from __future__ import annotations


import numpy as np
import pytest

from gaatool.errors import ConfigError, InputFileError
from gaatool.io.structure import read_structure
from gaatool.io.trajectory import is_trajectory, read_trajectory, write_trajectory



@pytest.fixture(scope="module")
def frames(pdb_files):
    # three frames of real coordinates: 1AJJ's heavy atoms, shifted by 0, 1 and 2 Å along x
    positions = read_structure(pdb_files / "1AJJ.pdb.gz").positions[0]
    return np.stack([positions + [i, 0.0, 0.0] for i in range(3)])


@pytest.mark.parametrize("suffix, atol", [(".dcd", 1e-4), (".xtc", 6e-3)])  # XTC stores 0.001 nm
def test_round_trip_in_angstrom(tmp_path, frames, suffix, atol):
    path = write_trajectory(tmp_path / f"t{suffix}", frames)
    xyz = read_trajectory(path, n_atoms=frames.shape[1])
    assert xyz.shape == frames.shape and xyz.dtype == np.float64
    assert np.abs(xyz - frames).max() < atol
    assert np.allclose(read_trajectory(path, frames=slice(1, None, 1)), xyz[1:])
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_reading_prints_nothing_on_stdout(tmp_path, frames, capfd):
    path = write_trajectory(tmp_path / "t.dcd", frames)
    capfd.readouterr()
    read_trajectory(path)
    assert capfd.readouterr().out == ""  # the DCD plugin's chatter must not reach stdout



def test_a_truncated_xtc_prints_nothing_but_the_error(tmp_path, frames, capfd):
    """The xdrfile library writes '(xdrfile error) ...' to file descriptor 2, in front of gaatool's one line."""
    path = write_trajectory(tmp_path / "t.xtc", frames)
    path.write_bytes(path.read_bytes()[:-300])
    capfd.readouterr()
    with pytest.raises(InputFileError, match="cannot read the trajectory"):
        read_trajectory(path)
    assert capfd.readouterr() == ("", "")


def test_errors(tmp_path, frames):
    path = write_trajectory(tmp_path / "t.dcd", frames)
    with pytest.raises(InputFileError, match="topology has 5"):
        read_trajectory(path, n_atoms=5)
    with pytest.raises(ConfigError, match="empty"):
        read_trajectory(path, frames=slice(10, None))
    with pytest.raises(InputFileError, match="no such file"):
        read_trajectory(tmp_path / "missing.xtc")
    with pytest.raises(InputFileError, match="not a trajectory"):
        read_trajectory(tmp_path / "x.pdb")
    cut = tmp_path / "cut.dcd"
    cut.write_bytes(path.read_bytes()[:150])
    with pytest.raises(InputFileError):
        read_trajectory(cut)
    junk = tmp_path / "junk.xtc"
    junk.write_bytes(b"not an xtc file at all" * 10)
    with pytest.raises(InputFileError):
        read_trajectory(junk)
    with pytest.raises(ConfigError):
        write_trajectory(tmp_path / "x.pdb", frames)
    assert is_trajectory("a.XTC") and not is_trajectory("a.pdb")


@pytest.mark.parametrize("cut", [200, "frame"])
def test_a_truncated_dcd_is_refused(tmp_path, frames, cut):
    """mdtraj reads as many whole frames as the file size holds; the header's count shows what is missing."""
    whole = write_trajectory(tmp_path / "t.dcd", frames).read_bytes()
    frame_bytes = (len(whole) - len(write_trajectory(tmp_path / "one.dcd", frames[:1]).read_bytes())) // 2
    short = tmp_path / "short.dcd"
    short.write_bytes(whole[:-(200 if cut == 200 else frame_bytes)])  # the last frame cut, or all of it
    with pytest.raises(InputFileError) as info:
        read_trajectory(short)
    assert str(info.value) == f"{short}: truncated: the header says 3 frames, 2 could be read"
    unknown = tmp_path / "unknown.dcd"  # a header count of 0: some writers leave it so
    unknown.write_bytes(whole[:8] + bytes(4) + whole[12:])
    assert read_trajectory(unknown).shape == frames.shape
