"""Tests of gaatool.io.xyz with real MD17 / rMD17 XYZ files (tests/files/xyz, see SOURCES.md)."""
from __future__ import annotations

import io
import re
import sys

import ase.io
import numpy as np
import pytest
from ase import Atoms

from gaatool.errors import InputFileError
from gaatool.io.xyz import XYZFrame, atomic_number, iter_xyz, read_xyz, write_extxyz

# SOURCES.md: the extxyz lists the atoms as H6 C2 O; atom i of the xyz is atom PERM[i] of the npz.
PERM = [3, 4, 5, 6, 7, 8, 0, 1, 2]


def test_sgdml_export_matches_the_npz(md17_50, sgdml_xyz):
    frames = read_xyz(sgdml_xyz)
    assert len(frames) == 3
    npz = np.load(md17_50)  # its frame 0 is MD17 frame 0, like the first xyz frame
    first = frames[0]
    assert first.symbols.tolist() == ["C", "C", "O", "H", "H", "H", "H", "H", "H"]
    assert [atomic_number(s) for s in first.symbols] == npz["z"].tolist()
    assert first.info == {"energy": -97208.40600498248}  # sGDML's documented ethanol frame-0 energy
    assert first.info["energy"] == npz["E"][0, 0]
    np.testing.assert_array_equal(first.positions, npz["R"][0])
    np.testing.assert_array_equal(first.arrays["forces"], npz["F"][0])
    assert first.lattice is None and first.pbc is None
    assert frames[2].info["energy"] != frames[1].info["energy"]


def test_extxyz_matches_the_rmd17_npz_and_ase(rmd17_50, extxyz):
    frames = read_xyz(extxyz)
    assert len(frames) == 5
    npz = np.load(rmd17_50)
    ase_frames = ase.io.read(extxyz, index=":")
    for i, (frame, atoms) in enumerate(zip(frames, ase_frames)):
        assert frame.symbols.tolist() == atoms.get_chemical_symbols()
        np.testing.assert_array_equal(frame.positions, atoms.positions)
        np.testing.assert_array_equal(frame.arrays["forces"], atoms.get_forces())
        assert frame.info["energy"] == atoms.get_potential_energy()
        np.testing.assert_array_equal(frame.positions, npz["coords"][i][PERM])
        np.testing.assert_array_equal(frame.arrays["forces"], npz["forces"][i][PERM])
        assert frame.info["energy"] == npz["energies"][i]
        assert set(frame.arrays) == {"forces"}


def test_iter_is_lazy_and_stdin(monkeypatch, extxyz, sgdml_xyz):
    it = iter_xyz(extxyz)
    assert next(it).n_atoms == 9
    monkeypatch.setattr(sys, "stdin", io.StringIO(sgdml_xyz.read_text()))
    assert len(read_xyz("-")) == 3


def _frame_with_everything(extxyz) -> XYZFrame:
    """A real rMD17 frame with a cell, periodic flags and several info/array types added."""
    frame = read_xyz(extxyz)[0]
    frame.lattice = np.array([[10.0, 0.0, 0.0], [0.5, 11.0, 0.0], [0.25, 0.125, 12.0]])
    frame.pbc = np.array([True, False, True])
    frame.info.update(name='ethanol "rMD17" frame', step=7, converged=True, weights=np.array([0.5, 1.5]),
                      label="1.5", tag="T")
    frame.arrays["charges"] = np.linspace(-0.5, 0.5, 9)
    frame.arrays["fixed"] = np.array([True, False] * 4 + [True])
    frame.arrays["index"] = np.arange(9, dtype=np.int64)
    return frame


def test_round_trip_is_exact(tmp_path, extxyz, sgdml_xyz):
    frames = [_frame_with_everything(extxyz), read_xyz(sgdml_xyz)[1]]
    path = tmp_path / "out.xyz"
    write_extxyz(path, frames)
    back = read_xyz(path)
    assert len(back) == 2
    for a, b in zip(frames, back):
        assert a.symbols.tolist() == b.symbols.tolist()
        np.testing.assert_array_equal(a.positions, b.positions)
        assert (a.lattice is None) == (b.lattice is None)
        if a.lattice is not None:
            np.testing.assert_array_equal(a.lattice, b.lattice)
            np.testing.assert_array_equal(a.pbc, b.pbc)
        assert a.info.keys() == b.info.keys()
        for key in a.info:
            np.testing.assert_array_equal(a.info[key], b.info[key])
            assert type(np.asarray(a.info[key]).tolist()) is type(np.asarray(b.info[key]).tolist())
        assert a.arrays.keys() == b.arrays.keys()
        for key in a.arrays:
            np.testing.assert_array_equal(a.arrays[key], b.arrays[key])
            assert a.arrays[key].dtype.kind == b.arrays[key].dtype.kind
    header = path.read_text().splitlines()[1]
    assert header.startswith('Lattice="10.0 0.0 0.0 0.5 11.0 0.0 0.25 0.125 12.0" '
                             "Properties=species:S:1:pos:R:3:forces:R:3:charges:R:1:fixed:L:1:index:I:1 ")
    assert header.endswith('pbc="T F T"')


def test_ase_reads_what_we_write(tmp_path, extxyz):
    frame = _frame_with_everything(extxyz)
    path = tmp_path / "out.xyz"
    write_extxyz(path, [frame])
    atoms = ase.io.read(path)
    np.testing.assert_array_equal(atoms.cell.array, frame.lattice)
    assert atoms.pbc.tolist() == [True, False, True]
    np.testing.assert_array_equal(atoms.positions, frame.positions)
    np.testing.assert_array_equal(atoms.get_forces(), frame.arrays["forces"])
    assert atoms.get_potential_energy() == frame.info["energy"]
    assert atoms.info["step"] == 7


def test_we_read_what_ase_writes(tmp_path, extxyz):
    source = read_xyz(extxyz)[1]
    atoms = Atoms(symbols=source.symbols.tolist(), positions=source.positions,
                  cell=[[9.0, 0, 0], [0, 9.5, 0], [0.5, 0, 10.0]], pbc=[True, True, False])
    atoms.arrays["forces_ref"] = source.arrays["forces"]
    atoms.info["energy_ref"] = source.info["energy"]
    atoms.info["label"] = "two words"
    atoms.info["run id"] = 3  # a key with a space: ASE quotes it
    ase.io.write(tmp_path / "ase.xyz", atoms, format="extxyz")
    frame = read_xyz(tmp_path / "ase.xyz")[0]
    np.testing.assert_array_equal(frame.lattice, atoms.cell.array)
    assert frame.pbc.tolist() == [True, True, False]
    np.testing.assert_allclose(frame.positions, source.positions, rtol=0, atol=1e-7)
    np.testing.assert_allclose(frame.arrays["forces_ref"], source.arrays["forces"], rtol=1e-7)
    assert frame.info["energy_ref"] == pytest.approx(source.info["energy"], rel=1e-12)
    assert frame.info["label"] == "two words" and frame.info["run id"] == 3
    write_extxyz(tmp_path / "again.xyz", [frame])  # and written back so that both read it
    assert read_xyz(tmp_path / "again.xyz")[0].info["run id"] == 3
    assert ase.io.read(tmp_path / "again.xyz").info["run id"] == 3


def test_plain_xyz_comment_and_lattice_implies_pbc():
    text = "2\nwater fragment\nO 0 0 0\nH 0 0 0.96\n"
    frame = read_xyz(io.StringIO(text))[0]
    assert frame.info == {"comment": "water fragment"} and frame.arrays == {}
    frame = read_xyz(io.StringIO("1\nE = -5.3, it's relaxed\nH 0 0 0\n"))[0]
    assert frame.info == {"comment": "E = -5.3, it's relaxed"}
    text = '1\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 flag\nCu 0 0 0\n\n\n'
    frame = read_xyz(io.StringIO(text))[0]
    assert frame.pbc.tolist() == [True, True, True] and frame.info == {"flag": True}


def test_stdout(capsys, sgdml_xyz):
    frames = read_xyz(sgdml_xyz)
    write_extxyz("-", frames)
    back = read_xyz(io.StringIO(capsys.readouterr().out))
    assert [f.info["energy"] for f in back] == [f.info["energy"] for f in frames]
    np.testing.assert_array_equal(back[2].arrays["forces"], frames[2].arrays["forces"])


# --------------------------------------------------------------------------- errors


def _error(tmp_path, text: str) -> str:
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    with pytest.raises(InputFileError) as info:
        read_xyz(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_truncated_file(tmp_path, sgdml_xyz):
    lines = sgdml_xyz.read_text().splitlines(keepends=True)
    message = _error(tmp_path, "".join(lines[:-3]))  # the third frame loses 3 atom lines
    assert ": frame 2:" in message and "truncated" in message  # frames count from 0, like --frames
    message = _error(tmp_path, "".join(lines[:12]))  # ends right after frame 1's atom count
    assert ": frame 1:" in message and "truncated" in message


def test_bad_count_and_values(tmp_path, sgdml_xyz):
    lines = sgdml_xyz.read_text().splitlines(keepends=True)
    message = _error(tmp_path, "".join(lines[:11] + ["nine\n"] + lines[12:]))
    assert "frame 1 (line 12)" in message and "number of atoms" in message
    bad = lines[:]
    bad[26] = bad[26].replace("0.", "x.", 1)  # frame 2, its third atom line (line 27)
    message = _error(tmp_path, "".join(bad))
    assert "frame 2 (line 27)" in message and "not a number" in message
    assert re.search(r"pos value 'x\.\d*' is not a number", message)  # a plain string, not np.str_('x.…')
    bad = lines[:]
    bad[3] = "C 0.0 0.0\n"  # frame 0, second atom: too few columns
    message = _error(tmp_path, "".join(bad))
    assert "frame 0 (line 4)" in message and "columns" in message
    message = _error(tmp_path, "".join(lines[:11] + ["\n"] + lines[11:]))
    assert "blank line" in message
    assert "no frames" in _error(tmp_path, "")


def test_unknown_element_symbol_is_shown_as_written():
    """Atomic numbers in the first column: the message shows '6', not np.str_('6')."""
    frame = read_xyz(io.StringIO("1\ncarbon\n6 0 0 0\n"))[0]
    with pytest.raises(InputFileError, match=r"^unknown element symbol '6'; use a symbol"):
        atomic_number(frame.symbols[0])


def test_bad_extended_header(tmp_path):
    head = "1\n{}\nH 0 0 0 1\n"
    assert "Lattice" in _error(tmp_path, head.format('Lattice="1 0 0 0 1 0 0 0" Properties=species:S:1:pos:R:3:q:R:1'))
    assert "Properties" in _error(tmp_path, head.format("Properties=species:S:1:pos:R:3"))
    assert "pbc" in _error(tmp_path, head.format('pbc="T T" Properties=species:S:1:pos:R:3:q:R:1'))
    assert "invalid" in _error(tmp_path, head.format("Properties=species:S:1:pos:Q:3:q:R:1"))


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_xyz(tmp_path / "absent.xyz")


def test_failed_write_leaves_existing_file(tmp_path, sgdml_xyz):
    path = tmp_path / "out.xyz"
    path.write_text("old\n")
    frame = read_xyz(sgdml_xyz)[0]
    frame.arrays["bad"] = np.zeros(5)  # wrong number of rows
    with pytest.raises(InputFileError, match="bad"):
        write_extxyz(path, [read_xyz(sgdml_xyz)[1], frame])
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.xyz"]
