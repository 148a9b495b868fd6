"""LAMMPS text dumps: boxes (orthogonal, tilted, general), position columns, ids, types, bad input."""
import gzip

import numpy as np
import pytest

from gaatool.errors import ConfigError, InputFileError
from gaatool.io.lammps import count_lammps_frames, is_lammps_dump, read_lammps_dump
from gaatool.io.readers import read_frames

# LAMMPS restricted triclinic box: a along x, b in the xy plane.
LATTICE = np.array([[6.0, 0.0, 0.0], [1.5, 5.0, 0.0], [-0.75, 0.5, 7.0]])
ORIGIN = np.array([-1.0, 0.5, 2.0])


def bounds_lines(lattice, origin):
    """BOX BOUNDS lines of a tilted box: LAMMPS writes the bounding box of the tilted cell."""
    (lx, _, _), (xy, ly, _), (xz, yz, lz) = np.asarray(lattice).tolist()
    xlo, ylo, zlo = np.asarray(origin).tolist()
    xlo_b = xlo + min(0.0, xy, xz, xy + xz)
    xhi_b = xlo + lx + max(0.0, xy, xz, xy + xz)
    ylo_b, yhi_b = ylo + min(0.0, yz), ylo + ly + max(0.0, yz)
    return [f"{xlo_b!r} {xhi_b!r} {xy!r}", f"{ylo_b!r} {yhi_b!r} {xz!r}", f"{zlo!r} {zlo + lz!r} {yz!r}"]


def dump_frame(positions, types, lattice=LATTICE, origin=ORIGIN, columns="id type x y z", ids=None,
               boundary="pp pp pp", timestep=0):
    n = len(positions)
    ids = np.arange(1, n + 1) if ids is None else ids
    lines = ["ITEM: TIMESTEP", str(timestep), "ITEM: NUMBER OF ATOMS", str(n),
             f"ITEM: BOX BOUNDS xy xz yz {boundary}", *bounds_lines(lattice, origin), f"ITEM: ATOMS {columns}"]
    fractions = (positions - origin) @ np.linalg.inv(lattice)
    for k in range(n):
        values = {"id": str(ids[k]), "type": str(types[k]), "element": str(types[k]),
                  "x": positions[k, 0], "y": positions[k, 1], "z": positions[k, 2],
                  "xu": positions[k, 0], "yu": positions[k, 1], "zu": positions[k, 2],
                  "xs": fractions[k, 0], "ys": fractions[k, 1], "zs": fractions[k, 2], "vx": 0.25}
        lines.append(" ".join(v if isinstance(v, str) else repr(float(v)) for v in (values[c] for c in columns.split())))
    return "\n".join(lines) + "\n"


@pytest.fixture
def positions():
    rng = np.random.default_rng(7)
    return ORIGIN + rng.uniform(0, 1, (20, 3)) @ LATTICE


def test_tilted_box_positions_and_types(tmp_path, positions):
    types = [1, 2] * 10
    path = tmp_path / "run.lammpstrj"
    path.write_text(dump_frame(positions, types) + dump_frame(positions + 0.1, types, timestep=100))
    frames = list(read_lammps_dump(path))
    assert [f.index for f in frames] == [0, 1]
    np.testing.assert_allclose(frames[0].box, LATTICE, atol=1e-12)
    np.testing.assert_allclose(frames[0].positions, positions, atol=1e-12)
    np.testing.assert_allclose(frames[1].positions, positions + 0.1, atol=1e-12)
    assert frames[0].type_names == ["1", "2"] and frames[0].types.tolist() == [0, 1] * 10
    assert count_lammps_frames(path) == 2


def test_agrees_with_ase_reader(tmp_path, positions):
    ase_io = pytest.importorskip("ase.io")
    path = tmp_path / "run.lammpstrj"
    path.write_text(dump_frame(positions, [1] * 20, columns="id type xs ys zs"))
    (ours,) = read_lammps_dump(path)
    (theirs,) = ase_io.read(path, format="lammps-dump-text", index=":")
    np.testing.assert_allclose(ours.box, theirs.cell[:], atol=1e-10)
    # ASE shifts the origin to 0; bond vectors (what identify uses) agree
    np.testing.assert_allclose(ours.positions - ours.positions[0], theirs.positions - theirs.positions[0], atol=1e-10)


@pytest.mark.parametrize("columns", ["id type x y z", "id type xu yu zu vx", "id type xs ys zs", "type x y z"])
def test_position_columns(tmp_path, positions, columns):
    path = tmp_path / "a.dump"
    path.write_text(dump_frame(positions, [1] * 20, columns=columns))
    (frame,) = read_lammps_dump(path)
    np.testing.assert_allclose(frame.positions, positions, atol=1e-10)


def test_rows_in_atom_id_order_and_element_names(tmp_path, positions):
    ids = np.random.default_rng(0).permutation(np.arange(1, 21))
    elements = np.array(["Zn", "S"] * 10)
    path = tmp_path / "a.lammpstrj"
    path.write_text(dump_frame(positions, elements, columns="id element x y z", ids=ids))
    (frame,) = read_lammps_dump(path)
    order = np.argsort(ids)
    np.testing.assert_allclose(frame.positions, positions[order])
    assert frame.type_names == ["S", "Zn"]
    assert [frame.type_names[t] for t in frame.types] == elements[order].tolist()


def test_orthogonal_and_general_triclinic_boxes(tmp_path):
    text = ("ITEM: TIMESTEP\n5\nITEM: NUMBER OF ATOMS\n1\nITEM: BOX BOUNDS pp pp pp\n0 4\n-1 2\n0.5 3.5\n"
            "ITEM: ATOMS id type xs ys zs\n1 1 0.5 0.5 0.5\n")
    (tmp_path / "o.dump").write_text(text)
    (frame,) = read_lammps_dump(tmp_path / "o.dump")
    np.testing.assert_allclose(frame.box, np.diag([4.0, 3.0, 3.0]))
    np.testing.assert_allclose(frame.positions, [[2.0, 0.5, 2.0]])
    general = ("ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n1\nITEM: BOX BOUNDS abc origin pp pp pp\n"
               "3 1 0 1\n0 3 1 2\n1 0 3 3\nITEM: ATOMS id type xs ys zs\n1 1 0.5 0 0\n")
    (tmp_path / "g.dump").write_text(general)
    (frame,) = read_lammps_dump(tmp_path / "g.dump")
    np.testing.assert_allclose(frame.box, [[3, 1, 0], [0, 3, 1], [1, 0, 3]])
    np.testing.assert_allclose(frame.positions, [[2.5, 2.5, 3.0]])


def test_non_periodic_units_time_and_gzip(tmp_path, positions):
    text = dump_frame(positions, [1] * 20, boundary="ff ss mm")
    text = "ITEM: UNITS\nmetal\nITEM: TIME\n0.5\n" + text
    path = tmp_path / "cluster.lammpstrj.gz"
    path.write_bytes(gzip.compress(text.encode()))
    (frame,) = read_frames(path)
    assert frame.box is None
    np.testing.assert_allclose(frame.positions, positions, atol=1e-12)


def test_frame_selection_streams_and_keeps_order(tmp_path, positions):
    path = tmp_path / "t.lammpstrj"
    path.write_text("".join(dump_frame(positions + k, [1] * 20, timestep=k) for k in range(5)))
    assert [f.index for f in read_frames(path, slice(1, None, 2))] == [1, 3]
    assert [f.index for f in read_frames(path, slice(None, None, -2))] == [4, 2, 0]
    (last,) = read_frames(path, slice(-1, None))
    np.testing.assert_allclose(last.positions, positions + 4, atol=1e-12)
    with pytest.raises(InputFileError, match=r"t\.lammpstrj: frame selection 7: selects none of its 5 frames"):
        read_frames(path, slice(7, None))


def test_sniffed_by_content_and_box_refused(tmp_path, positions):
    path = tmp_path / "dump.melt"
    path.write_text(dump_frame(positions, [1] * 20))
    assert is_lammps_dump(path) and not is_lammps_dump(tmp_path / "missing.melt")
    assert len(list(read_frames(path))) == 1
    with pytest.raises(ConfigError, match="carry their own box"):
        read_frames(path, box=[10, 10, 10])


@pytest.mark.parametrize("damage, message", [
    (lambda t: t[: t.rindex("\n", 0, len(t) - 1)], r"frame 0 is truncated \(file ends before atom 20 of 20\)"),
    (lambda t: t.replace("id type x y z", "id type vx vy vz"), r"frame 0, line 9: ATOMS has no position columns"),
    (lambda t: t.replace("ITEM: NUMBER OF ATOMS\n20", "ITEM: NUMBER OF ATOMS\ntwenty"),
     r"frame 0, line 4: expected 1 numbers for the atom count"),
    (lambda t: "hello\n" + t, r"frame 0, line 1: expected an ITEM: line"),
    (lambda t: t.replace("ITEM: NUMBER OF ATOMS\n20", "ITEM: NUMBER OF ATOMS\n21"), r"only 20 of 21 atoms|truncated"),
    (lambda t: t.replace("\n5 1 ", "\n4 1 "), r"frame 0 has repeated atom ids"),
    (lambda t: "", r"the file is empty"),
])
def test_bad_dumps_fail_with_file_frame_and_line(tmp_path, positions, damage, message):
    path = tmp_path / "bad.lammpstrj"
    path.write_text(damage(dump_frame(positions, [1] * 20)))
    with pytest.raises(InputFileError, match=r"bad\.lammpstrj: " + message):
        list(read_frames(path))


def test_nan_and_binary_input(tmp_path, positions):
    bad = positions.copy()
    bad[3, 1] = np.nan
    path = tmp_path / "nan.lammpstrj"
    path.write_text(dump_frame(bad, [1] * 20))
    with pytest.raises(InputFileError, match=r"nan\.lammpstrj: frame 0 has non-finite \(NaN or infinite\) coordinates"):
        list(read_frames(path))
    binary = tmp_path / "bin.lammpstrj"
    binary.write_bytes(b"ITEM: TIMESTEP\n\xff\xfe\x00\x81")
    with pytest.raises(InputFileError, match="not a text file"):
        list(read_frames(binary))


def test_mixed_boundaries_make_a_slab(tmp_path, positions):
    path = tmp_path / "slab.lammpstrj"
    path.write_text(dump_frame(positions, [1] * 20).replace("pp pp pp", "pp pp ff"))
    (frame,) = read_frames(path)
    assert frame.pbc == (True, True, False) and frame.box is not None
    path.write_text(dump_frame(positions, [1] * 20).replace("pp pp pp", "ff ss fm"))
    (frame,) = read_frames(path)
    assert frame.box is None and frame.pbc is None
