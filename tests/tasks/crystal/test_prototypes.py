import gsd.hoomd
import numpy as np
import pytest

from gaatool.errors import ConfigError, InputFileError
from gaatool.tasks.crystal.prototypes import (
    PROTOTYPE_NAMES,
    UnitCell,
    cell_from_wyckoff,
    lattice_from_parameters,
    load_unit_cell,
    prototype_cell,
    prototype_definitions,
    read_poscar,
)

EXPECTED_SITES = dict(zip(PROTOTYPE_NAMES, (4, 2, 2, 2, 8, 8, 46, 136)))


def same_sites(a: UnitCell, b: UnitCell, tol=1e-6) -> bool:
    """Same species at the same fractional positions modulo lattice translations."""
    if a.n_sites != b.n_sites:
        return False
    species_a = np.array(a.type_names)[a.types]
    species_b = np.array(b.type_names)[b.types]
    used = np.zeros(b.n_sites, bool)
    for position, species in zip(a.fractional, species_a):
        delta = b.fractional - position
        delta -= np.rint(delta)
        match = np.flatnonzero(np.all(np.abs(delta) < tol, axis=1) & (species_b == species) & ~used)
        if len(match) != 1:
            return False
        used[match[0]] = True
    return bool(used.all())


def metric(lattice):
    return lattice @ lattice.T


def test_definitions_cover_the_paper_classes():
    names = [record["paper_name"] for record in prototype_definitions()]
    assert names == list(PROTOTYPE_NAMES)


@pytest.mark.parametrize("name", PROTOTYPE_NAMES)
def test_generated_cell_matches_reference_cif(name, reference_cifs):
    cell = prototype_cell(name)
    record = next(r for r in prototype_definitions() if r["paper_name"] == name)
    reference = load_unit_cell(reference_cifs / f"{record['aflow_label']}.cif")
    assert cell.n_sites == EXPECTED_SITES[name] == record["n_atoms_conventional"] == reference.n_sites
    np.testing.assert_allclose(metric(cell.lattice), metric(reference.lattice), atol=1e-9)
    assert set(cell.type_names) == set(reference.type_names)
    assert same_sites(cell, reference)
    # The comparison itself can fail: a shifted cell is not accepted.
    shifted = UnitCell(name, cell.lattice, cell.fractional + [0.01, 0, 0], cell.types, cell.type_names)
    assert not same_sites(shifted, reference)


@pytest.mark.parametrize("name", PROTOTYPE_NAMES)
def test_nearest_neighbor_distance_and_coordination(name):
    cell = prototype_cell(name)
    record = next(r for r in prototype_definitions() if r["paper_name"] == name)
    assert cell.nearest_neighbor_distance() == pytest.approx(record["nearest_neighbor_distance"], abs=1e-4)
    # 1 % slack: hcp Mg (c/a 1.624, not ideal) has 6 bonds at 3.197 and 6 at 3.209 A.
    shell = record["first_shell_max"] * 1.01
    distances = cell.neighbor_distances(shell * 1.3)
    coordination = sorted({int(np.count_nonzero(d <= shell)) for d in distances})
    assert coordination == record["coordination_numbers"]


def test_cf136_is_four_connected_with_a_gap():
    cell = prototype_cell("cF136-Si")
    distances = cell.neighbor_distances(4.0)
    fourth = np.array([d[3] for d in distances])
    fifth = np.array([d[4] for d in distances])
    assert fourth.max() < 2.42 and fifth.min() > 3.7


def test_types_follow_aflow_species_order():
    assert prototype_cell("cP2-CsCl").type_names == ("Cl", "Cs")
    zns = prototype_cell("cF8-ZnS")
    assert zns.type_names == ("S", "Zn")
    assert np.bincount(zns.types).tolist() == [4, 4]
    assert prototype_cell("AB_cF8_216_c_a").name == "cF8-ZnS"
    with pytest.raises(ConfigError, match="unknown prototype 'cF4-Xx'"):
        prototype_cell("cF4-Xx")


def test_wyckoff_expansion_dedupes_special_positions():
    # 8a of Fd-3m (origin 2) is a special position: 192 operations give 8 sites.
    cell = cell_from_wyckoff("diamond", 227, np.eye(3), [("C", (0.125, 0.125, 0.125))], setting=2)
    assert cell.n_sites == 8
    # Origin choice 1 puts the same orbit elsewhere.
    other = cell_from_wyckoff("diamond", 227, np.eye(3), [("C", (0.125, 0.125, 0.125))], setting=1)
    assert not same_sites(cell, other)
    by_symbol = cell_from_wyckoff("diamond", "F d -3 m:2", np.eye(3), [("C", (0.125, 0.125, 0.125))])
    assert same_sites(cell, by_symbol)
    with pytest.raises(ConfigError, match="unknown space group"):
        cell_from_wyckoff("x", 231, np.eye(3), [("C", (0, 0, 0))])
    with pytest.raises(InputFileError, match="two different species"):
        cell_from_wyckoff("x", 225, np.eye(3), [("A", (0, 0, 0)), ("B", (0.5, 0.5, 0))])


def test_lattice_from_parameters():
    lattice = lattice_from_parameters(3.0, 4.0, 5.0, 80.0, 95.0, 110.0)
    lengths = np.linalg.norm(lattice, axis=1)
    np.testing.assert_allclose(lengths, [3, 4, 5])

    def angle(u, v):
        return np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))

    assert angle(lattice[1], lattice[2]) == pytest.approx(80.0)
    assert angle(lattice[0], lattice[2]) == pytest.approx(95.0)
    assert angle(lattice[0], lattice[1]) == pytest.approx(110.0)
    assert np.all(lattice_from_parameters(2, 2, 2, 90, 90, 90) == 2 * np.eye(3))
    with pytest.raises(InputFileError, match="do not form a 3D cell"):
        lattice_from_parameters(1, 1, 1, 120, 120, 120)


def test_rescale_and_supercell():
    cell = prototype_cell("cF4-Cu").with_unit_nearest_neighbor()
    assert cell.nearest_neighbor_distance() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(cell.lattice, np.sqrt(2) * np.eye(3), atol=1e-12)
    big = cell.supercell((2, 3, 1))
    assert big.n_sites == 24
    np.testing.assert_allclose(np.diag(big.lattice), np.sqrt(2) * np.array([2, 3, 1]))
    assert big.nearest_neighbor_distance() == pytest.approx(1.0, abs=1e-12)
    positions = big.positions
    # All 6 copies of the 4 sites are distinct points.
    assert len(np.unique(np.round(positions, 6), axis=0)) == 24
    with pytest.raises(ConfigError, match="positive"):
        cell.supercell((0, 1, 1))


def zincblende_poscar(mode="Direct", species_line=True, scale="1.0", selective=False):
    cell = prototype_cell("cF8-ZnS")
    lines = ["zincblende", scale]
    lines += [" ".join(f"{v:.10f}" for v in row) for row in cell.lattice]
    counts = np.bincount(cell.types)
    if species_line:
        lines.append(" ".join(cell.type_names))
    lines.append(" ".join(str(c) for c in counts))
    if selective:
        lines.append("Selective dynamics")
    lines.append(mode)
    order = np.argsort(cell.types, kind="stable")
    coords = cell.fractional[order] if mode[0] in "Dd" else cell.positions[order]
    for row in coords:
        lines.append(" ".join(f"{v:.10f}" for v in row) + (" T T T" if selective else ""))
    return cell, "\n".join(lines) + "\n"


@pytest.mark.parametrize("mode, selective", [("Direct", False), ("Cartesian", False), ("direct", True)])
def test_poscar_reader(tmp_path, mode, selective):
    cell, text = zincblende_poscar(mode, selective=selective)
    path = tmp_path / "POSCAR"
    path.write_text(text)
    loaded = load_unit_cell(path, name="zb")
    assert loaded.name == "zb" and loaded.type_names == ("S", "Zn")
    np.testing.assert_allclose(loaded.lattice, cell.lattice, atol=1e-9)
    assert same_sites(loaded, cell)


def test_poscar_scale_forms_and_vasp4(tmp_path):
    cell, _ = zincblende_poscar()
    volume = abs(np.linalg.det(cell.lattice))
    _, text = zincblende_poscar(scale=f"{-8 * volume:.10f}")  # negative: target volume, 2x lengths
    path = tmp_path / "big.vasp"
    path.write_text(text)
    np.testing.assert_allclose(read_poscar(path).lattice, 2 * cell.lattice, atol=1e-8)
    _, text = zincblende_poscar(scale="1.0 2.0 3.0")
    path.write_text(text)
    np.testing.assert_allclose(read_poscar(path).lattice, cell.lattice * [1, 2, 3], atol=1e-9)
    _, text = zincblende_poscar(species_line=False)
    vasp4 = tmp_path / "CONTCAR"
    vasp4.write_text(text)
    loaded = load_unit_cell(vasp4)
    assert loaded.type_names == ("X0", "X1") and loaded.name == "CONTCAR"


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda lines: lines[:3], "line 3: the file ends before the lattice"),
        (lambda lines: lines[:7] + ["Direct"] + lines[8:10], "line 10: the file ends after 2 of 8 coordinate lines"),
        (lambda lines: lines[:7] + ["Polar"] + lines[8:], "line 8: coordinate mode 'Polar' is neither"),
        (lambda lines: lines[:6] + ["4 x"] + lines[7:], "line 7: the species counts are not whole numbers"),
        (lambda lines: lines[:1] + ["1.0 -2.0"] + lines[2:], "line 2: the scale line needs 1 number or 3 positive"),
    ],
)
def test_poscar_errors(tmp_path, mangle, message):
    _, text = zincblende_poscar()
    path = tmp_path / "POSCAR"
    path.write_text("\n".join(mangle(text.splitlines())) + "\n")
    with pytest.raises(InputFileError, match=rf"POSCAR: not a valid POSCAR file at {message}"):
        load_unit_cell(path)


def test_gsd_unit_cell(tmp_path):
    cell = prototype_cell("cP2-CsCl")
    frame = gsd.hoomd.Frame()
    a = cell.lattice[0, 0]
    frame.configuration.box = [a, a, a, 0, 0, 0]
    frame.particles.N = 2
    # HOOMD boxes are centred on the origin.
    frame.particles.position = (cell.positions - a / 2).astype(np.float32)
    frame.particles.types = ["Cs", "Cl", "unused"]
    frame.particles.typeid = np.array([1, 0], np.uint32)
    path = tmp_path / "cscl.gsd"
    with gsd.hoomd.open(str(path), mode="w") as handle:
        handle.append(frame)
    loaded = load_unit_cell(path)
    assert loaded.name == "cscl" and loaded.type_names == ("Cl", "Cs")
    assert same_sites(loaded, cell, tol=1e-6)


def test_load_unit_cell_errors(tmp_path, reference_cifs):
    with pytest.raises(InputFileError, match="no such file"):
        load_unit_cell(tmp_path / "missing.cif")
    other = tmp_path / "cell.txt"
    other.write_text("1 2 3")
    with pytest.raises(InputFileError, match="unknown unit cell format"):
        load_unit_cell(other)
    broken = tmp_path / "broken.cif"
    broken.write_text("data_x\n_cell_length_a 'unterminated\n")
    with pytest.raises(InputFileError, match=r"broken\.cif: "):
        load_unit_cell(broken)
    partial = tmp_path / "partial.cif"
    full = (reference_cifs / "A_cF4_225_a.cif").read_text()
    partial.write_text(full.replace("0.0  0.0  0.0  1.0000", "0.0  0.0  0.0  0.5000", 1))
    with pytest.raises(InputFileError, match="partially occupied"):
        load_unit_cell(partial)


def test_unit_cell_validation():
    with pytest.raises(InputFileError, match="degenerate"):
        UnitCell("x", np.diag([1.0, 1.0, 0.0]), np.zeros((1, 3)), np.zeros(1, int), ("A",))
    with pytest.raises(InputFileError, match="no sites"):
        UnitCell("x", np.eye(3), np.zeros((0, 3)), np.zeros(0, int), ("A",))
    with pytest.raises(InputFileError, match="type ids"):
        UnitCell("x", np.eye(3), np.zeros((1, 3)), np.array([1]), ("A",))


NACL_CELL = """data_NaCl
_cell_length_a 5.640(2)
_cell_length_b 5.640(2)
_cell_length_c 5.640(2)
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
{symmetry}
loop_
_atom_site_label
{type_tag}_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
{sites}
"""


def nacl_cif(tmp_path, name="nacl.cif", symmetry="_symmetry_space_group_name_H-M 'F m -3 m'", types=("Na", "Cl"),
             sites=None):
    """Rock salt written by hand: Na1 at 4a, Cl1 at 4b, with type symbols ``types`` (None: labels only)."""
    type_tag = "" if types is None else "_atom_site_type_symbol\n"
    if sites is None:
        sites = [("Na1", 0, 0, 0), ("Cl1", 0.5, 0.5, 0.5)]
    rows = "\n".join(f"{label} {'' if types is None else types[i % 2] + ' '}{x} {y} {z}"
                     for i, (label, x, y, z) in enumerate(sites))
    path = tmp_path / name
    path.write_text(NACL_CELL.format(symmetry=symmetry, type_tag=type_tag, sites=rows))
    return path


@pytest.mark.parametrize("types", [None, ("Na1+", "Cl1-"), ("Na", "Cl")])
def test_cif_species_are_elements_not_labels_or_charges(tmp_path, types):
    """Without _atom_site_type_symbol gemmi takes the label (Na1) as the type; ICSD writes charges (Na1+): the
    dataset's species must be the elements a snapshot names (identify maps by them), one type per element."""
    cell = load_unit_cell(nacl_cif(tmp_path, types=types))
    assert cell.n_sites == 8 and cell.type_names == ("Na", "Cl")
    assert np.bincount(cell.types).tolist() == [4, 4]
    # A15 Cr3Si expanded to P1 with one label per site: still two species, not eight
    a15 = [("Si1", 0, 0, 0), ("Si2", 0.5, 0.5, 0.5), ("Cr1", 0.25, 0, 0.5), ("Cr2", 0.75, 0, 0.5),
           ("Cr3", 0.5, 0.25, 0), ("Cr4", 0.5, 0.75, 0), ("Cr5", 0, 0.5, 0.25), ("Cr6", 0, 0.5, 0.75)]
    cell = load_unit_cell(nacl_cif(tmp_path, "a15.cif", "_space_group_name_H-M_alt 'P 1'", None, a15))
    assert cell.type_names == ("Si", "Cr") and np.bincount(cell.types).tolist() == [2, 6]


def test_cif_symmetry_must_be_understood(tmp_path):
    """A CIF is read with its symmetry or refused; it is never silently taken for P1 (NaCl's two sites
    alone are a CsCl-type cell)."""
    for symmetry in ("_space_group_IT_number 225", "_symmetry_space_group_name_Hall '-F 4 2 3'",
                     "_space_group_name_H-M_alt 'Fm-3m'"):
        assert load_unit_cell(nacl_cif(tmp_path, symmetry=symmetry)).n_sites == 8, symmetry
    # a bare number of a group with two origin choices reads like gemmi's bare H-M symbol: origin choice 2
    diamond = nacl_cif(tmp_path, "si.cif", "_space_group_IT_number 227", ("Si", "Si"), [("Si1", 0.125, 0.125, 0.125)])
    assert load_unit_cell(diamond).n_sites == 8
    with pytest.raises(InputFileError, match="no space group or symmetry operations; add _space_group_name_H-M_alt 'P 1'"):
        load_unit_cell(nacl_cif(tmp_path, symmetry=""))
    with pytest.raises(InputFileError, match="unknown space group 'Fm3-m'"):
        load_unit_cell(nacl_cif(tmp_path, symmetry="_symmetry_space_group_name_H-M 'Fm3-m'"))


def test_cif_file_errors_are_one_line(tmp_path):
    text = nacl_cif(tmp_path).read_text()
    no_cell = tmp_path / "nocell.cif"
    no_cell.write_text("\n".join(line for line in text.splitlines() if not line.startswith("_cell_length")))
    with pytest.raises(InputFileError, match="no unit cell"):  # gemmi would take a = b = c = 1
        load_unit_cell(no_cell)
    empty = tmp_path / "empty.cif"
    empty.write_text("")
    with pytest.raises(InputFileError, match="empty.cif: CIF has no data block with atom sites"):
        load_unit_cell(empty)
    # a journal CIF: a global block before the structure's
    journal = tmp_path / "journal.cif"
    journal.write_text("data_global\n_journal_name_full 'J. Hand-made Cryst.'\n\n" + text)
    assert load_unit_cell(journal).n_sites == 8
    twice = tmp_path / "twice.cif"
    twice.write_text(text + "\n" + text.replace("data_NaCl", "data_NaCl_again"))
    with pytest.raises(InputFileError, match="2 data blocks with atom sites"):
        load_unit_cell(twice)


def test_overlapping_atoms_are_refused(tmp_path):
    sites = [("Na1", 0, 0, 0), ("Cl1", 0.5, 0.5, 0.5)]
    for extra, species in (((0, 0, 0), "Na"), ((0.5, 0.5, 0.5), "Na"), ((0.004, 0, 0.5), "Cl")):
        path = nacl_cif(tmp_path, symmetry="_symmetry_space_group_name_H-M 'F m -3 m'",
                        types=None, sites=sites + [(f"{species}2", *extra)])
        with pytest.raises(InputFileError, match="nacl.cif: atoms .* apart, .* of the mean spacing .*: overlapping atoms"):
            load_unit_cell(path)
    _, text = zincblende_poscar()
    lines = text.splitlines()
    lines[6] = "5 4"  # one more S, on top of the first
    lines.insert(8, lines[8])
    poscar = tmp_path / "POSCAR"
    poscar.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError, match="POSCAR: atoms S at .* and S at .* are 0 apart"):
        load_unit_cell(poscar)
