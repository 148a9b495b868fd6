"""LAMMPS data files as one-frame snapshots: atom styles, triclinic boxes, skipped sections, damaged files."""
import numpy as np
import pytest

from gaatool.errors import ConfigError, InputFileError
from gaatool.io.lammps_data import is_lammps_data
from gaatool.io.readers import read_frames


def data_text(positions, types, style="atomic", tilt=None, comment=True, masses=True, image_flags=False):
    lines = ["LAMMPS data file via write_data", "", f"{len(positions)} atoms", f"{max(types)} atom types", "",
             "0.5 7.5 xlo xhi", "-1.0 6.0 ylo yhi", "0.0 8.0 zlo zhi"]
    if tilt is not None:
        lines.append(" ".join(map(str, tilt)) + " xy xz yz")
    if masses:
        lines += ["", "Masses", ""] + [f"{t} {12.0 * t}" for t in sorted(set(types))]
    lines += ["", "Atoms" + (f" # {style}" if comment else ""), ""]
    order = np.random.default_rng(0).permutation(len(positions))  # any id order
    for i in order:
        x, y, z = positions[i]
        extra = " 0 0 1" if image_flags else ""
        columns = {"atomic": f"{i + 1} {types[i]} {x} {y} {z}", "charge": f"{i + 1} {types[i]} 0.5 {x} {y} {z}",
                   "full": f"{i + 1} 7 {types[i]} -0.5 {x} {y} {z}", "molecular": f"{i + 1} 7 {types[i]} {x} {y} {z}"}
        lines.append(columns[style] + extra)
    lines += ["", "Velocities", ""] + [f"{i + 1} 0 0 0" for i in range(len(positions))]
    return "\n".join(lines) + "\n"


@pytest.fixture
def system():
    rng = np.random.default_rng(2)
    return rng.uniform(1, 6, (20, 3)), [1 + i % 2 for i in range(20)]


@pytest.mark.parametrize("style, comment, image_flags", [("atomic", True, False), ("charge", True, False),
                                                         ("full", True, True), ("molecular", True, False),
                                                         ("atomic", False, True), ("full", False, False)])
def test_atom_styles(tmp_path, system, style, comment, image_flags):
    positions, types = system
    path = tmp_path / "relaxed.data"
    path.write_text(data_text(positions, types, style, comment=comment, image_flags=image_flags))
    assert is_lammps_data(path)
    (frame,) = read_frames(path)
    np.testing.assert_allclose(frame.positions, positions)  # atom-id order
    np.testing.assert_allclose(frame.box, np.diag([7.0, 7.0, 8.0]))
    assert frame.type_names == ["1", "2"] and frame.types.tolist() == [t - 1 for t in types]


def test_triclinic_box_and_names(tmp_path, system):
    positions, types = system
    path = tmp_path / "data.slab"
    path.write_text(data_text(positions, types, tilt=(1.0, -0.5, 0.25), masses=False))
    (frame,) = read_frames(path)
    np.testing.assert_allclose(frame.box, [[7.0, 0, 0], [1.0, 7.0, 0], [-0.5, 0.25, 8.0]])
    with pytest.raises(ConfigError, match="carry their own box"):
        read_frames(path, box=[10, 10, 10])
    with pytest.raises(InputFileError, match="no such file"):
        read_frames(tmp_path / "missing.data")
    junk = tmp_path / "junk.data"
    junk.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputFileError, match="junk.data: not a"):
        list(read_frames(junk))


@pytest.mark.parametrize("damage, message", [
    (lambda t: t[: t.index("Atoms")], "ends before its Atoms section"),
    (lambda t: "\n".join(t[: t.index("Velocities")].rstrip().splitlines()[:-3]) + "\n", "ends after 17 of 20 atoms"),
    (lambda t: t.replace("# atomic", "# sphere"), "atom style 'sphere'"),
    (lambda t: t.replace("# atomic", "").replace("\n1 1 ", "\n1 1 0 0 "), "has (5|7) columns, the first had (7|5)"),
    (lambda t: t.replace("# atomic", "").replace("\n2 2 ", "\n2 2 0 ").replace("\n1 1 ", "\n1 1 0 "),
     "has (5|6) columns|cannot tell the atom style from 6 columns"),
    (lambda t: t.replace("0.0 8.0 zlo zhi", ""), "xlo xhi, ylo yhi and zlo zhi"),
])
def test_damaged_data_files(tmp_path, system, damage, message):
    positions, types = system
    path = tmp_path / "bad.data"
    path.write_text(damage(data_text(positions, types)))
    with pytest.raises(InputFileError, match=message):
        list(read_frames(path))
