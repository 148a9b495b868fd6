"""Known answers from the shipped pretrained models (they must exist: the README promises them)."""
import numpy as np
import torch
import pytest

from gaatool.checkpoint import read_metadata
from gaatool.ga.rotations import random_rotation
from gaatool.io.frame import Frame
from gaatool.tasks.crystal.dataset import add_noise, perfect_crystal
from gaatool.tasks.crystal.identify import Identifier, default_crystal_checkpoint
from gaatool.tasks.crystal.prototypes import prototype_cell


#: Held-out force MAE limit of the aspirin model (meV/Å): its card's measured value with a margin.
ASPIRIN_LIMIT_MEV = 45.0


@pytest.fixture(scope="module")
def identifier():
    return Identifier(default_crystal_checkpoint(), device="cpu")


@pytest.mark.parametrize("name", ["cF4-Cu", "cI2-W", "hP2-Mg", "cF8-C"])
def test_pretrained_crystal_recognises_thermal_metals_in_any_units(identifier, name):
    """A crystal at 4% relative thermal noise, in Å-like units and rotated, is labelled as its prototype."""
    supercell, _ = perfect_crystal(prototype_cell(name), 400, 12, 0.04)
    rng = np.random.default_rng(7)
    positions = add_noise(supercell.positions, 0.04, rng)
    q = random_rotation().numpy()
    length = 2.87  # e.g. Å per nearest-neighbour distance
    frame = Frame(positions @ q.T * length, supercell.lattice @ q.T * length, supercell.types,
                  [f"T{t}" for t in range(len(supercell.type_names))])
    frame = Frame(frame.positions, frame.box, np.zeros_like(frame.types), ["X"])  # one-component file
    result = identifier.label(frame)
    fraction = np.mean(np.array(identifier.class_names)[result.labels] == name)
    assert fraction > 0.95, f"{name}: only {fraction:.1%} labelled correctly"


@pytest.mark.parametrize("name, counts", [("cI2-W", (2, 2, 2)), ("hP2-Mg", (2, 2, 2)), ("cF4-Cu", (2, 2, 2)),
                                          ("cP2-CsCl", (2, 2, 2)), ("cF8-C", (2, 2, 2)),
                                          # a bare unit cell (2-8 atoms), as a POSCAR of it holds
                                          ("cI2-W", (1, 1, 1)), ("cF4-Cu", (1, 1, 1)), ("cF8-C", (1, 1, 1)),
                                          ("cP2-CsCl", (1, 1, 1))])
def test_pretrained_crystal_labels_small_simulation_cells(identifier, name, counts):
    """16-64 atoms in a periodic box narrower than the 12-neighbour shell, as in ab initio MD, with thermal
    noise, in Å: the neighbours come from as many copies of the box as needed, and the labels are right."""
    cell = prototype_cell(name).with_unit_nearest_neighbor().supercell(counts)
    rng = np.random.default_rng(3)
    length = 2.5
    positions = add_noise(cell.positions, 0.05, rng) * length
    frame = Frame(positions, cell.lattice * length, cell.types, ["A", "B"][: int(cell.types.max()) + 1])
    result = identifier.label(frame)
    assert np.mean(np.array(identifier.class_names)[result.labels] == name) == 1.0


def test_pretrained_cards_exist_for_every_checkpoint():
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "pretrained"
    for checkpoint in folder.glob("*.safetensors"):
        card = checkpoint.with_suffix(".md")
        assert card.exists(), f"{checkpoint.name} has no model card"
        meta = read_metadata(checkpoint)
        assert meta["command"] and meta["task"] in card.read_text()


@pytest.mark.parametrize("smooth, minimum", [(0, 0.93), (1, 0.99)])
@pytest.mark.parametrize("name, expected", [("fcc", "cF4-Cu"), ("hcp", "hP2-Mg")])
def test_pretrained_crystal_on_molecular_dynamics_near_melting(name, expected, smooth, minimum):
    """Lennard-Jones MD at T* = 0.65 (tests/files/md/make_lj_snapshots.py): correlated thermal motion, in Å.
    The model alone gets 97-98% right, with its labels averaged over neighbours (the default) all."""
    from pathlib import Path

    from gaatool.io.readers import read_frames

    path = Path(__file__).resolve().parent / "files" / "md" / f"lj_{name}_T0.65.extxyz.gz"
    (frame,) = read_frames(path)
    identifier = Identifier(default_crystal_checkpoint(), device="cpu", smooth=smooth)
    result = identifier.label(frame)
    fraction = np.mean(np.array(identifier.class_names)[result.labels] == expected)
    assert fraction > minimum, f"{name}: only {fraction:.1%} labelled {expected}"


def test_pretrained_crystal_flags_a_liquid_as_uncertain():
    """The Lennard-Jones liquid (T* = 1.0) gets crystal labels, but identify notes that most particles are
    uncertain, and --threshold 0.99 marks most of them unknown while the crystals near melting keep theirs."""
    from pathlib import Path

    from gaatool.tasks.crystal.identify import UNKNOWN, identify_file

    folder = Path(__file__).resolve().parent / "files" / "md"
    # the model's own confidences (--smooth 0), then neighbour-averaged ones (the default, lower for all)
    for smooth, level in ((0, 0.99), (1, 0.8)):
        liquid = identify_file(folder / "lj_liquid_T1.0.extxyz.gz", device="cpu", smooth=smooth)
        assert any(f"confidence below {level} in frame 0" in note for note in liquid.notes)
        crystal = identify_file(folder / "lj_fcc_T0.65.extxyz.gz", device="cpu", smooth=smooth)
        assert crystal.notes == []
        liquid = identify_file(folder / "lj_liquid_T1.0.extxyz.gz", device="cpu", threshold=level, smooth=smooth)
        assert np.mean(liquid.frames[0].labels == UNKNOWN) > 0.6 and liquid.notes == []
        crystal = identify_file(folder / "lj_fcc_T0.65.extxyz.gz", device="cpu", threshold=level, smooth=smooth)
        assert np.mean(np.array(crystal.class_names)[crystal.frames[0].labels] == "cF4-Cu") > 0.9


@pytest.mark.parametrize("name", ["cP46-Si", "cF136-Si"])
def test_pretrained_crystal_notes_no_uncertainty_for_clathrates_at_moderate_noise(identifier, name):
    """The least certain classes, at 5% noise, still have most particles above 0.99 confidence: no note."""
    from gaatool.tasks.crystal.identify import uncertainty_note

    supercell, _ = perfect_crystal(prototype_cell(name), 2048, 12, 0.05)
    positions = add_noise(supercell.positions, 0.05, np.random.default_rng(5)) * 2.35
    labels = identifier.label(Frame(positions, supercell.lattice * 2.35, supercell.types, ["Si"]))
    assert np.mean(np.array(identifier.class_names)[labels.labels] == name) > 0.9
    assert uncertainty_note([labels], identifier.smooth) is None, f"{np.mean(labels.confidence < 0.8):.0%} below 0.8"


@pytest.mark.parametrize("name, raw_at_most, smoothed_at_least", [
    ("cF4-Cu", 0.97, 0.99), ("hP2-Mg", 0.97, 0.99), ("cI2-W", 0.97, 0.99), ("cP46-Si", 0.75, 0.85),
    ("cF136-Si", 0.9, 0.97)])
def test_pretrained_crystal_neighbour_averaging_at_ten_percent_noise(name, raw_at_most, smoothed_at_least):
    """At noise 0.1 the per-particle errors are mostly independent: one round of averaging fixes most."""
    supercell, _ = perfect_crystal(prototype_cell(name), 2048, 12, 0.1)
    positions = add_noise(supercell.positions, 0.1, np.random.default_rng(5))
    frame = Frame(positions, supercell.lattice, supercell.types, list(supercell.type_names))
    fractions = []
    for smooth in (0, 1):
        identifier = Identifier(default_crystal_checkpoint(), device="cpu", smooth=smooth)
        fractions.append(np.mean(np.array(identifier.class_names)[identifier.label(frame).labels] == name))
    assert fractions[0] < raw_at_most and fractions[1] > smoothed_at_least, fractions


def _close_packed(stacking: str, noise: float, seed: int = 0, width: int = 8):
    """Triangular layers stacked as ``stacking`` (letters A, B, C), unit spacing, periodic; layer of each particle."""
    shifts = {"A": np.zeros(2), "B": np.array([0.5, np.sqrt(3) / 6]), "C": np.array([1.0, np.sqrt(3) / 3])}
    a1, a2, height = np.array([1.0, 0.0]), np.array([0.5, np.sqrt(3) / 2]), np.sqrt(2 / 3)
    points, layers = [], []
    for k, letter in enumerate(stacking):
        for i in range(width):
            for j in range(width):
                x, y = i * a1 + j * a2 + shifts[letter]
                points.append([x, y, k * height])
                layers.append(k)
    lattice = np.array([[width, 0, 0], [width / 2, width * np.sqrt(3) / 2, 0], [0, 0, len(stacking) * height]])
    positions = add_noise(np.array(points), noise, np.random.default_rng(seed))
    return positions, lattice, np.array(layers)


def test_pretrained_crystal_one_round_of_averaging_keeps_twin_planes():
    """fcc with two twin boundaries (one hcp-like plane each): --smooth 1 keeps them, 2 would erase them."""
    stacking = "ABCABCABCABC" + "ACBACBACBACB"  # layers 0 and 12 have the same neighbours above and below
    positions, lattice, layers = _close_packed(stacking, 0.05)
    twin = np.isin(layers, [0, 12])
    frame = Frame(positions * 2.5, lattice * 2.5, np.zeros(len(positions), dtype=np.int64), ["Cu"])
    for smooth, twin_hcp in ((0, 0.9), (1, 0.9), (2, None)):
        identifier = Identifier(default_crystal_checkpoint(), device="cpu", smooth=smooth)
        names = np.array(identifier.class_names)[identifier.label(frame).labels]
        assert np.mean(names[~twin] == "cF4-Cu") > 0.97
        if twin_hcp is None:
            assert np.mean(names[twin] == "hP2-Mg") < 0.1  # why the default is one round
        else:
            assert np.mean(names[twin] == "hP2-Mg") > twin_hcp


@pytest.mark.parametrize("bead, limit", [("centroid", 1.1), ("ca", 1.7)])
def test_pretrained_backmapping_of_an_unseen_protein(tmp_path, bead, limit):
    """Hen lysozyme (1AKI, not in the training entries) as centroid beads and as a C-alpha trace:
    `gaatool backmap` picks the matching pretrained model and rebuilds the heavy atoms."""
    from pathlib import Path

    from gaatool.io.structure import read_structure, structure_text
    from gaatool.tasks.backmap.coarse_grain import coarse_grain
    from gaatool.tasks.backmap.rebuild import backmap_file

    reference = read_structure(Path(__file__).resolve().parent / "files" / "pdb" / "1AKI.cif.gz")
    beads = structure_text(coarse_grain(reference, bead), "pdb")
    path = tmp_path / "cg.pdb"
    path.write_text(beads)  # C-alpha beads are named CA
    result = backmap_file(path, tmp_path / "out.pdb", device="cpu")
    assert Path(result.checkpoint).name == ("backmap-ca.safetensors" if bead == "ca" else "backmap.safetensors")
    rebuilt = read_structure(tmp_path / "out.pdb")
    truth = {(int(reference.residue_numbers[r]), str(n)): x for r, n, x in
             zip(reference.atom_residues, reference.atom_names, reference.positions[0])}
    pairs = [(truth[key], x) for key, x in zip(((int(rebuilt.residue_numbers[r]), str(n)) for r, n in
                                                zip(rebuilt.atom_residues, rebuilt.atom_names)), rebuilt.positions[0])
             if key in truth]
    assert len(pairs) > 0.95 * reference.n_atoms
    rmsd = float(np.sqrt(np.mean([np.sum((a - b) ** 2) for a, b in pairs])))
    assert rmsd < limit, f"{bead}: heavy-atom RMSD {rmsd:.2f} Å"
    # what a structural biologist checks first: no clashes, no D amino acids
    from gaatool.tasks.backmap.coarse_grain import structure_previous
    from gaatool.tasks.backmap.covalent import chiral_graph, chiral_volumes
    from gaatool.tasks.backmap.sterics import CLASH_OVERLAP_A, Contacts

    x = rebuilt.positions[0]
    contacts = Contacts.of(rebuilt.elements, rebuilt.atom_names, rebuilt.atom_residues, structure_previous(rebuilt))
    assert len(contacts.overlapping(x, CLASH_OVERLAP_A)[0]) == 0
    centres, _ = chiral_graph(rebuilt.residue_names, rebuilt.atom_residues, rebuilt.atom_names)
    assert len(centres) > 100 and np.all(chiral_volumes(x, centres)[0] > 0)


def correlated_displacements(positions, lattice, amplitude, rng):
    """Thermal-like motion: a few long-wavelength plane waves (neighbours move together) plus independent
    noise, ~``amplitude`` rms per coordinate in nearest-neighbour distances; unlike the training noise."""
    recip = np.linalg.inv(lattice).T
    displacement = rng.normal(0, 0.6 * amplitude, positions.shape)
    for _ in range(6):
        k = 2 * np.pi * recip.T @ rng.integers(-2, 3, 3)  # commensurate with the periodic box
        wave = np.cos(positions @ k + rng.uniform(0, 2 * np.pi))[:, None]
        displacement += 0.8 * amplitude / np.sqrt(6) * rng.normal(size=3) * wave
    return positions + displacement


@pytest.mark.parametrize("name, minimum", [("cF4-Cu", 0.97), ("hP2-Mg", 0.97), ("cI2-W", 0.97), ("cF8-C", 0.97),
                                           ("cP2-CsCl", 0.97), ("cF8-ZnS", 0.97), ("cP46-Si", 0.85),
                                           ("cF136-Si", 0.85)])
def test_pretrained_crystal_under_correlated_thermal_motion(identifier, name, minimum):
    """All 8 classes, rotated, in Å-like units, with correlated displacements of 7% of the bond length."""
    rng = np.random.default_rng(11)
    supercell, _ = perfect_crystal(prototype_cell(name), 1500, 12, 0.1)
    moved = correlated_displacements(supercell.positions, supercell.lattice, 0.07, rng)
    q = random_rotation(torch.Generator().manual_seed(5)).numpy().astype(np.float64)
    types = supercell.types
    frame = Frame(moved @ q.T * 2.7, supercell.lattice @ q.T * 2.7, types, ["A", "B"][: int(types.max()) + 1])
    result = identifier.label(frame)
    fraction = np.mean(np.array(identifier.class_names)[result.labels] == name)
    assert fraction > minimum, f"{name}: only {fraction:.1%} labelled correctly"


@pytest.mark.parametrize("molecule, test_file, limit", [
    ("ethanol", "ethanol_md17_test_300.npz", 20.0),
    ("aspirin", "aspirin_md17_test_200.npz", ASPIRIN_LIMIT_MEV),
    ("malonaldehyde", "malonaldehyde_md17_test_200.npz", 40.0),
    ("uracil", "uracil_md17_test_200.npz", 45.0),
    ("benzene", "benzene_md17_test_200.npz", 20.0),
    ("toluene", "toluene_md17_test_200.npz", 30.0),
    ("naphthalene", "naphthalene_md17_test_200.npz", 25.0),
    ("salicylic", "salicylic_md17_test_200.npz", 45.0),
])
def test_pretrained_force_fields_on_held_out_md17_frames(molecule, test_file, limit):
    """predict_file without a checkpoint picks the molecule's own model; force MAE on held-out frames (meV/Å)."""
    from pathlib import Path

    from gaatool.tasks.forces.predict import predict_file
    from gaatool.units import kcal_per_mol_to_mev

    path = Path(__file__).resolve().parent.parent / "pretrained" / "inputs" / test_file
    result = predict_file(path, None, device="cpu", frames=slice(0, 40))
    assert Path(result.checkpoint).name == f"forces-{molecule}.safetensors"
    reference = np.load(path)["F"][:40]
    mae = kcal_per_mol_to_mev(float(np.mean(np.abs(np.stack(result.forces) - reference))))
    assert mae < limit, f"{molecule}: force MAE {mae:.1f} meV/Å on 40 held-out frames"


def test_pretrained_crystal_maps_element_names_of_its_training_cells(identifier):
    """A CsCl file with Cs and Cl atoms needs no --type-map: they map as in the model's cP2-CsCl cell."""
    supercell, _ = perfect_crystal(prototype_cell("cP2-CsCl"), 400, 12, 0.04)
    positions = add_noise(supercell.positions, 0.04, np.random.default_rng(3)) * 4.12
    names = list(supercell.type_names)  # the cell's elements, type 0 = Cl
    assert identifier.species["cP2-CsCl"] == {"A": "Cl", "B": "Cs"}
    result = identifier.label(Frame(positions, supercell.lattice * 4.12, supercell.types, names))
    assert np.mean(np.array(identifier.class_names)[result.labels] == "cP2-CsCl") > 0.95


@pytest.mark.parametrize("stacking", ["ACBCBABCBCBACABCBABABCBCABACAB", "ACBACBACABCBCACABABCBACBABCBAB",
                                      "ABCBACABCACACBCABACBACBCBCBCBC"])
def test_pretrained_crystal_averaging_keeps_random_stackings(stacking, monkeypatch):
    """Random close packing (each layer fcc- or hcp-like, as in hard-sphere crystals) at noise 0.08: with
    equal weights one round flips single layers, worse than the model alone; with a particle's own
    probabilities weighing 4 neighbours' they keep their labels, better than the model alone."""
    import gaatool.tasks.crystal.smoothing as smoothing

    n = len(stacking)
    layer_names = np.array(["hP2-Mg" if stacking[k - 1] == stacking[(k + 1) % n] else "cF4-Cu" for k in range(n)])
    positions, lattice, layers = _close_packed(stacking, 0.08)
    frame = Frame(positions * 3.0, lattice * 3.0, np.zeros(len(positions), dtype=np.int64), ["Ar"])

    def right(smooth):
        identifier = Identifier(default_crystal_checkpoint(), device="cpu", smooth=smooth)
        return np.mean(np.array(identifier.class_names)[identifier.label(frame).labels] == layer_names[layers])

    alone, weighted = right(0), right(1)
    monkeypatch.setattr(smoothing, "SELF_WEIGHT", 1.0)
    equal = right(1)
    assert equal < alone < weighted and weighted > 0.99, (equal, alone, weighted)
