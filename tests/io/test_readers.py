import gsd.hoomd
import numpy as np
import pytest

from gaatool.errors import ConfigError, InputFileError
from gaatool.io.readers import parse_frame_selection, read_frames

LATTICE = np.array([[5.0, 0.0, 0.0], [1.0, 6.0, 0.0], [0.5, -0.5, 7.0]])


def xyz_text(positions, symbols, lattice=None, pbc=None):
    header = 'Properties=species:S:1:pos:R:3'
    if lattice is not None:
        header = f'Lattice="{" ".join(str(v) for v in np.asarray(lattice).ravel())}" ' + header
    if pbc is not None:
        header += f' pbc="{pbc}"'
    lines = [str(len(positions)), header]
    lines += [f"{s} {x:.10f} {y:.10f} {z:.10f}" for s, (x, y, z) in zip(symbols, positions)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def positions():
    return np.random.default_rng(3).uniform(0, 4, (6, 3))


def test_extxyz_with_lattice_is_periodic(tmp_path, positions):
    path = tmp_path / "cell.extxyz"
    symbols = ["Si", "O", "O", "Si", "O", "O"]
    path.write_text(xyz_text(positions, symbols, LATTICE) + xyz_text(positions + 1, symbols, LATTICE))
    frames = list(read_frames(path))
    assert [f.index for f in frames] == [0, 1]
    np.testing.assert_allclose(frames[0].box, LATTICE)
    np.testing.assert_allclose(frames[1].positions, positions + 1, atol=1e-9)
    # Types are the sorted symbols.
    assert frames[0].type_names == ["O", "Si"]
    assert frames[0].types.tolist() == [1, 0, 0, 1, 0, 0]
    assert [f.index for f in read_frames(path, slice(-1, None))] == [1]
    with pytest.raises(ConfigError, match="has its own lattice"):
        read_frames(path, box=[10, 10, 10])


def test_plain_xyz_is_non_periodic_unless_box_given(tmp_path, positions):
    path = tmp_path / "mol.xyz"
    path.write_text(xyz_text(positions, ["C"] * 6))
    (frame,) = read_frames(path)
    assert frame.box is None and frame.type_names == ["C"]
    (frame,) = read_frames(path, box=[10.0, 11.0, 12.0])
    np.testing.assert_array_equal(frame.box, np.diag([10.0, 11.0, 12.0]))


def test_pbc_flags(tmp_path, positions):
    off = tmp_path / "off.xyz"
    off.write_text(xyz_text(positions, ["C"] * 6, LATTICE, pbc="F F F"))
    assert next(iter(read_frames(off))).box is None
    partial = tmp_path / "slab.xyz"
    partial.write_text(xyz_text(positions, ["C"] * 6, LATTICE, pbc="T T F"))
    (slab,) = read_frames(partial)  # a slab: periodic along the first two lattice vectors only
    np.testing.assert_allclose(slab.box, LATTICE)
    assert slab.pbc == (True, True, False)
    with pytest.raises(ConfigError, match="has its own lattice"):
        read_frames(partial, box=[10, 10, 10])


def test_gsd_dispatch(tmp_path, positions):
    path = tmp_path / "traj.gsd"
    frame = gsd.hoomd.Frame()
    frame.configuration.box = [5, 5, 5, 0, 0, 0]
    frame.particles.N = 6
    frame.particles.position = positions.astype(np.float32)
    frame.particles.types = ["A"]
    frame.particles.typeid = np.zeros(6, np.uint32)
    with gsd.hoomd.open(str(path), mode="w") as handle:
        for step in range(2):
            frame.configuration.step = step
            handle.append(frame)
    assert [f.index for f in read_frames(path, slice(1, None))] == [1]
    with pytest.raises(ConfigError, match="carry their own box"):
        read_frames(path, box=[5, 5, 5])


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "protein.pdb").write_text("ATOM\n")
    (tmp_path / "snapshot").write_text("1\n")
    with pytest.raises(InputFileError, match=r"unknown file type '\.pdb'.*\.gsd, \.xyz, \.extxyz"):
        read_frames(tmp_path / "protein.pdb")
    with pytest.raises(InputFileError, match="no extension"):
        read_frames(tmp_path / "snapshot")
    for missing in ("missing.xyz", "missing.pdb"):  # missing first, whatever the name says
        with pytest.raises(InputFileError, match="no such file"):
            read_frames(tmp_path / missing)
    with pytest.raises(InputFileError, match="is a folder, not a particle file"):
        read_frames(tmp_path)


def test_empty_selection(tmp_path, positions):
    path = tmp_path / "mol.xyz"
    path.write_text(xyz_text(positions, ["C"] * 6))
    with pytest.raises(InputFileError, match="frame selection 3: selects none of its 1 frames"):
        read_frames(path, slice(3, None))


@pytest.mark.parametrize(
    "text, expected",
    [
        (None, None),
        ("", None),
        (":", None),
        ("4", slice(4, 5)),
        ("-1", slice(-1, None)),
        ("-3", slice(-3, -2)),
        ("10:", slice(10, None)),
        (":5", slice(None, 5)),
        ("0:100:10", slice(0, 100, 10)),
        ("::-1", slice(None, None, -1)),
    ],
)
def test_parse_frame_selection(text, expected):
    assert parse_frame_selection(text) == expected


@pytest.mark.parametrize("text", ["a", "1:2:3:4", "1.5", "::0"])
def test_parse_frame_selection_errors(text):
    with pytest.raises(ConfigError, match="frame selection"):
        parse_frame_selection(text)


def test_gzipped_xyz_reads_like_the_plain_file(tmp_path, positions):
    import gzip

    symbols = ["Si", "O", "O", "Si", "O", "O"]
    text = xyz_text(positions, symbols, LATTICE) * 2
    plain, packed = tmp_path / "cell.extxyz", tmp_path / "cell.extxyz.gz"
    plain.write_text(text)
    packed.write_bytes(gzip.compress(text.encode()))
    for a, b in zip(read_frames(plain), read_frames(packed)):
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.box, b.box)
        assert a.type_names == b.type_names
    damaged = tmp_path / "cut.xyz.gz"
    damaged.write_bytes(gzip.compress(text.encode())[:-30])
    with pytest.raises(InputFileError, match="damaged gzip data") as err:
        list(read_frames(damaged))
    assert "\n" not in str(err.value) and "cut.xyz.gz" in str(err.value)
    (tmp_path / "frames.gsd.gz").write_bytes(b"")
    with pytest.raises(InputFileError, match=r"unknown file type '\.gz'"):
        read_frames(tmp_path / "frames.gsd.gz")


def test_stdin_content_is_told_apart():
    """What comes on stdin is read as what it is: the temporary file's name picks the reader."""
    from gaatool.io.readers import GSD_MAGIC, _stdin_name

    xyz = "3\nenergy=1.5\nC 0 0 0\nH 1 0 0\nH 0 1 0\n"
    numeric_xyz = "3\n-97208.4\n6 0 0 0\n1 1 0 0\n1 0 1 0\n1 0 0 1\n1 1 1 1\n1 2 2 2\n"  # count, energy, Z x y z
    poscar = "Cu fcc\n1.0\n3.6 0 0\n0 3.6 0\n0 0 3.6\nCu\n4\nDirect\n0 0 0\n0.5 0.5 0\n0.5 0 0.5\n0 0.5 0.5\n"
    xdatcar = poscar.replace("Direct\n", "Direct configuration=     1\n")
    data = "LAMMPS data\n\n4 atoms\n1 atom types\n\n0 3.6 xlo xhi\n0 3.6 ylo yhi\n0 3.6 zlo zhi\n\nAtoms # atomic\n"
    names = {"xyz": xyz, "numeric xyz": numeric_xyz, "POSCAR": poscar, "XDATCAR": xdatcar, "data": data,
             "dump": "ITEM: TIMESTEP\n0\n"}
    found = {key: _stdin_name(text.encode()) for key, text in names.items()}
    assert found == {"xyz": "stdin.xyz", "numeric xyz": "stdin.xyz", "POSCAR": "POSCAR", "XDATCAR": "XDATCAR",
                     "data": "stdin.data", "dump": "stdin.lammpstrj"}
    assert _stdin_name(GSD_MAGIC + b"rest") == "stdin.gsd"
