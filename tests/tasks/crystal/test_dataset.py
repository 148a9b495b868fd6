import dataclasses

import numpy as np
import pytest

from gaatool.data.neighbors import perpendicular_widths
from gaatool.data.store import load_dataset
from gaatool.errors import ConfigError, InputFileError
from gaatool.tasks.crystal.dataset import (
    CrystalDataset,
    CrystalDatasetConfig,
    build_crystal_dataset,
    perfect_crystal,
    replication_counts,
    type_pair_encoding,
)
from gaatool.tasks.crystal.distinct import environment_fingerprints, same_environments
from gaatool.tasks.crystal.prototypes import PROTOTYPE_NAMES, UnitCell, prototype_cell
from gaatool.tasks.crystal.steinhardt import steinhardt_features

SMALL = dict(min_particles=64, noise_levels=(0.001, 0.05, 0.1))


@pytest.fixture(scope="module")
def small():
    return build_crystal_dataset(seed=0, **SMALL)


def test_arrays_shapes_and_metadata(small):
    assert small.class_names == list(PROTOTYPE_NAMES)
    assert small.type_names == ["A", "B"]
    assert small.splits == ["train", "val", "test"]
    for split in small.splits:
        rows = small.split(split)
        m = len(rows["labels"])
        assert rows["r_ij"].shape == (m, 12, 3) and rows["r_ij"].dtype == np.float32
        assert rows["type_pairs"].shape == (m, 12, 4) and rows["type_pairs"].dtype == np.float32
        assert rows["labels"].dtype == np.int64 and rows["noise"].dtype == np.float32
        assert set(np.unique(rows["labels"])) == set(range(8))
        np.testing.assert_allclose(np.unique(rows["noise"]), [0.001, 0.05, 0.1], rtol=1e-6)
    meta = small.metadata
    assert meta["task"] == "crystal" and meta["seed"] == 0 and meta["neighbors"] == 12
    assert [c["name"] for c in meta["classes"]] == list(PROTOTYPE_NAMES)
    assert meta["classes"][3]["species"] == {"A": "Cl", "B": "Cs"}
    assert "AFLOW" in meta["provenance"]
    assert meta["prototype_labels"]["cF136-Si"] == "A_cF136_227_aeg"
    for info in meta["classes"]:
        assert info["particles"] >= 64
        assert info["particles"] == info["cell_sites"] * np.prod(info["replication"])


def test_summary_rows(small):
    rows = small.summary()
    assert [r["class"] for r in rows] == list(PROTOTYPE_NAMES)
    for row, info in zip(rows, small.metadata["classes"]):
        assert row["particles"] == info["particles"]
        # One replica per split, three noise levels, one environment per particle.
        assert row["train"] == row["val"] == row["test"] == 3 * info["particles"]


def test_deterministic_given_seed_and_different_with_another():
    config = dict(prototypes=("cF4-Cu", "cP2-CsCl"), **SMALL)
    a = build_crystal_dataset(seed=5, **config)
    b = build_crystal_dataset(seed=5, **config)
    c = build_crystal_dataset(seed=6, **config)
    assert a.arrays.keys() == b.arrays.keys()
    for key in a.arrays:
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key])
    assert not np.allclose(a.arrays["train/r_ij"], c.arrays["train/r_ij"])
    np.testing.assert_array_equal(a.arrays["train/labels"], c.arrays["train/labels"])


def test_splits_are_independent_replicas(small):
    by_key = {(s.split, s.class_name, s.noise): s for s in small.systems}
    for name in ("cF4-Cu", "cF136-Si"):
        train, val, test = (by_key[split, name, 0.1] for split in ("train", "val", "test"))
        assert not np.allclose(train.positions, val.positions)
        assert not np.allclose(val.positions, test.positions)
    # No environment of the validation set occurs in the training set.
    train_rows = {row.tobytes() for row in small.arrays["train/r_ij"]}
    assert not any(row.tobytes() in train_rows for row in small.arrays["val/r_ij"])
    seeds = small.metadata["replica_seeds"]
    assert len({seeds["train"][0], seeds["val"][0], seeds["test"][0]}) == 3


def test_noise_levels_do_not_accumulate():
    # Largest level first: if copies were reused, the 0.001 copy would carry 0.1 noise.
    dataset = build_crystal_dataset(prototypes=("cF4-Cu",), min_particles=64, noise_levels=(0.1, 0.001, 0.05))
    supercell, _ = perfect_crystal(prototype_cell("cF4-Cu"), 64, 12, 0.1)
    for system in dataset.systems:
        deviation = system.positions - supercell.positions
        rms = float(np.sqrt(np.mean(deviation**2)))
        assert rms == pytest.approx(system.noise, rel=0.15)
    # The copies at one noise level differ from those of another in their draws too.
    train = [s for s in dataset.systems if s.split == "train"]
    assert not np.allclose((train[0].positions - supercell.positions) / 0.1, (train[1].positions - supercell.positions) / 0.001)


def test_perfect_fcc_and_bcc_environments():
    dataset = build_crystal_dataset(prototypes=("cF4-Cu", "cI2-W", "cP2-CsCl"), min_particles=64, noise_levels=(0.0,))
    rows = dataset.split("train")
    distances = np.linalg.norm(rows["r_ij"].astype(np.float64), axis=-1)
    fcc = rows["labels"] == 0
    np.testing.assert_allclose(distances[fcc], 1.0, atol=1e-6)
    for label in (1, 2):  # bcc and CsCl: 8 at 1, then 4 of the 6 second neighbours at 2/sqrt(3)
        chosen = rows["labels"] == label
        np.testing.assert_allclose(distances[chosen][:, :8], 1.0, atol=1e-6)
        np.testing.assert_allclose(distances[chosen][:, 8:], 2 / np.sqrt(3), atol=1e-6)
    # fcc: one type, so t_i - t_j = 0 and t_i + t_j = (2, 0).
    np.testing.assert_array_equal(rows["type_pairs"][fcc][:, :, :2], 0.0)
    assert np.all(rows["type_pairs"][fcc][:, :, 2:] == [2.0, 0.0])
    # CsCl: the 8 nearest are of the other type, the next 4 of the same.
    cscl = rows["type_pairs"][rows["labels"] == 2]
    assert np.all(np.abs(cscl[:, :8, :2]).sum(-1) == 2) and np.all(cscl[:, :8, 2:].sum(-1) == 2)
    assert np.all(cscl[:, 8:, :2] == 0)


def test_type_pair_encoding():
    types = np.array([0, 1, 2])
    encoding = type_pair_encoding(types, np.array([[1, 2], [0, 0], [2, 1]]), 3)
    assert encoding.shape == (3, 2, 6)
    np.testing.assert_array_equal(encoding[0, 0], [1, -1, 0, 1, 1, 0])
    np.testing.assert_array_equal(encoding[2, 0], [0, 0, 0, 0, 0, 2])


def test_replication_counts_are_near_cubic():
    assert replication_counts(np.sqrt(2) * np.eye(3), 4, 2048) == (8, 8, 8)
    hexagonal = prototype_cell("hP2-Mg").with_unit_nearest_neighbor().lattice
    counts = replication_counts(hexagonal, 2, 2048)
    sizes = np.array(counts) * perpendicular_widths(hexagonal)
    assert 2 * np.prod(counts) >= 2048 and sizes.max() / sizes.min() <= 1.5
    # A minimum width forces more cells.
    assert min(replication_counts(np.eye(3), 1, 8, min_width=4.0)) >= 4


def test_perfect_crystal_box_is_wide_enough_for_the_neighbours():
    for name in PROTOTYPE_NAMES:
        supercell, counts = perfect_crystal(prototype_cell(name), 64, 12, 0.1)
        assert supercell.n_sites >= 64
        assert supercell.nearest_neighbor_distance() == pytest.approx(1.0, abs=1e-9)
        assert 0.5 * perpendicular_widths(supercell.lattice).min() > 1.0


def test_save_and_load_round_trip(small, tmp_path):
    path = tmp_path / "crystal.npz"
    small.save(path)
    loaded = CrystalDataset.load(path)
    assert loaded.class_names == small.class_names and loaded.type_names == small.type_names
    assert loaded.config == small.config
    for key, value in small.arrays.items():
        np.testing.assert_array_equal(loaded.arrays[key], value)
    assert loaded.summary() == small.summary()
    arrays, meta = load_dataset(path, expected_task="crystal")
    assert meta["class_names"] == list(PROTOTYPE_NAMES)
    with pytest.raises(InputFileError, match="expected a 'forces' dataset"):
        load_dataset(path, expected_task="forces")


def test_steinhardt_features_are_stored():
    dataset = build_crystal_dataset(prototypes=("cF8-ZnS",), min_particles=64, noise_levels=(0.05,), steinhardt=True)
    rows = dataset.split("test")
    assert rows["steinhardt"].shape == (len(rows["labels"]), 110)
    system = next(s for s in dataset.systems if s.split == "test")
    expected = steinhardt_features(system.positions, system.box, system.types)
    np.testing.assert_allclose(rows["steinhardt"], expected, atol=1e-6)
    assert len(dataset.metadata["steinhardt_features"]) == 110


def test_extra_cells_and_replicas(reference_cifs):
    dataset = build_crystal_dataset(
        prototypes=("cF4-Cu",),
        min_particles=64,
        noise_levels=(0.05,),
        replicas={"train": 2, "val": 1, "test": 0},
        extra_cells=[reference_cifs / "AB_cF8_216_c_a.cif"],
    )
    assert dataset.class_names == ["cF4-Cu", "AB_cF8_216_c_a"]
    assert dataset.type_names == ["A", "B"]
    assert dataset.splits == ["train", "val"]
    rows = dataset.summary()
    assert rows[0]["train"] == 2 * rows[0]["val"]
    assert "test" not in rows[0]
    assert dataset.metadata["classes"][1]["source"].endswith("AB_cF8_216_c_a.cif")
    with pytest.raises(ConfigError, match="no 'test' split"):
        dataset.split("test")
    with pytest.raises(ConfigError, match="two classes are named 'cF4-Cu'"):
        build_crystal_dataset(prototypes=("cF4-Cu",), min_particles=64, extra_cells=[prototype_cell("cF4-Cu")])


@pytest.mark.parametrize("cif, prototype", [("A_cF4_225_a.cif", "cF4-Cu"), ("AB_cF8_216_c_a.cif", "cF8-ZnS"),
                                            ("A_cF136_227_aeg.cif", "cF136-Si")])
def test_a_prototype_added_again_under_another_name_is_refused(reference_cifs, cif, prototype):
    # the same structure twice makes two classes no model can tell apart; ZnS and cF136 also check that the
    # k-th neighbour's shell is taken whole (a k-nearest search keeps an arbitrary part of it)
    with pytest.raises(ConfigError, match=f"classes '{prototype}' and '{cif[:-4]}' have the same 12-neighbour"):
        build_crystal_dataset(prototypes=(prototype,), min_particles=64, noise_levels=(0.05,),
                              extra_cells=[reference_cifs / cif])


def test_every_prototype_has_its_own_environments():
    crystals = [perfect_crystal(prototype_cell(name), 64, 12)[0] for name in PROTOTYPE_NAMES]
    fingerprints = [environment_fingerprints(c, 12) for c in crystals]
    same = [(a.name, b.name) for i, a in enumerate(crystals) for j, b in enumerate(crystals)
            if i < j and same_environments(fingerprints[i], fingerprints[j])]
    assert same == []
    # hcp against fcc differs only in the angles between bonds: a slightly squeezed hcp is still hcp
    squeezed = prototype_cell("hP2-Mg")
    squeezed = dataclasses.replace(squeezed, name="Mg-squeezed", lattice=squeezed.lattice * [[1.0], [1.0], [0.999]])
    assert same_environments(environment_fingerprints(perfect_crystal(squeezed, 64, 12)[0], 12),
                              fingerprints[PROTOTYPE_NAMES.index("hP2-Mg")])


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(noise_levels=(-0.1,)), "noise levels must be finite"),
        (dict(noise_levels=()), "at least one noise level"),
        (dict(noise_levels=(0.1, 0.1)), "repeat"),
        (dict(min_particles=10), "must exceed the neighbour count"),
        (dict(replicas={"training": 1}), "unknown split 'training'"),
        (dict(replicas={"train": 0, "val": 0, "test": 0}), "would be empty"),
        (dict(prototypes=("cF4-Au",)), "unknown prototype 'cF4-Au'"),
        (dict(seed=-3), "seed must be a non-negative integer"),
        (dict(steinhardt=True, neighbors=8), "need neighbors >= that"),
    ],
)
def test_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        CrystalDatasetConfig(**settings)


def test_config_dict_round_trip():
    config = CrystalDatasetConfig(seed=4, noise_levels=[0.1], replicas={"train": 2})
    assert CrystalDatasetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown crystal dataset setting 'colour'"):
        CrystalDatasetConfig.from_dict({"colour": 1})


def test_lengths_are_in_units_of_the_measured_nearest_neighbour_distance():
    """Training data use the same length unit as `gaatool identify` measures on user frames."""
    from gaatool.tasks.crystal.dataset import build_crystal_dataset

    ds = build_crystal_dataset(prototypes=("cF4-Cu", "cF8-C"), min_particles=64, noise_levels=(0.001, 0.1))
    r = np.linalg.norm(ds.arrays["train/r_ij"], axis=-1)
    noise, labels = ds.arrays["train/noise"], ds.arrays["train/labels"]
    for label in (0, 1):
        for sigma in (0.001, 0.1):
            rows = (labels == label) & np.isclose(noise, sigma)
            assert np.median(r[rows, 0]) == pytest.approx(1.0, abs=1e-6)
    # with strong noise the shell spreads but the closest neighbour's median stays the unit
    strong = np.isclose(noise, 0.1) & (labels == 0)
    assert r[strong, 11].mean() > 1.05


def test_reference_noise_script_finds_accumulated_rescaled_noise(docs_example):
    """docs/examples/reference_noise.py: the paper's code rescales each noisy replica to a shortest distance
    of 1 and adds the next level on top, so its 0.1 level is ~0.09 of the lattice spacing, not 0.1."""
    module = docs_example("reference_noise")
    levels = module.effective_levels(prototype_cell("cF4-Cu"), np.random.default_rng(1), min_particles=500)
    assert levels[0] == pytest.approx(0.001, rel=1e-6)
    assert levels[1] == pytest.approx(0.05, abs=0.001)  # scaled by ~0.997: the first level barely moves anything
    assert 0.08 < levels[2] < 0.095  # stretched by ~1/0.75 before the 0.1 is added, plus the 0.05 carried over


def rock_salt(name, first="Na"):
    """NaCl (B1) with its species listed ``first`` first."""
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    other = "Cl" if first == "Na" else "Na"
    return UnitCell(name, 5.64 * np.eye(3), np.vstack([fcc, fcc + 0.5]), np.repeat([0, 1], 4), (first, other))


def cesium_chloride_type(name, first="Cl"):
    """NaCl's high-pressure B2 phase (CsCl type)."""
    other = "Na" if first == "Cl" else "Cl"
    return UnitCell(name, 2.9 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], [0, 1], (first, other))


def test_an_element_keeps_its_type_across_added_classes(tmp_path):
    """NaCl written Na first and its B2 phase written Cl first: Na is one type in both classes, so a Na/Cl
    snapshot maps onto both as trained (identify's element map needs the classes to agree)."""
    from gaatool.tasks.crystal.dataset import align_species, split_neighbor_index
    from gaatool.tasks.crystal.identify import species_type_map

    cells = [rock_salt("B1", "Na"), cesium_chloride_type("B2", "Cl")]
    dataset = build_crystal_dataset(prototypes=("cF4-Cu",), min_particles=64, noise_levels=(0.05,),
                                    replicas={"val": 1}, extra_cells=cells)
    species = {c["name"]: c["species"] for c in dataset.metadata["classes"]}
    assert species == {"cF4-Cu": {"A": "Cu"}, "B1": {"A": "Na", "B": "Cl"}, "B2": {"A": "Na", "B": "Cl"}}
    assert species_type_map({"Na", "Cl"}, species) == {"Cl": "B", "Na": "A"}
    assert [row["species"] for row in dataset.summary()] == ["A=Cu", "A=Na B=Cl", "A=Na B=Cl"]
    # the stored (aligned) cells rebuild the split exactly; aligning again changes nothing
    path = dataset.save(tmp_path / "b1b2.npz")
    loaded = CrystalDataset.load(path)
    assert split_neighbor_index(loaded.metadata, loaded.arrays, "val").shape == (len(loaded.arrays["val/labels"]), 12)
    prototypes = [prototype_cell(n) for n in PROTOTYPE_NAMES]
    aligned = align_species(prototypes + cells)
    assert all(a is b for a, b in zip(align_species(aligned), aligned))
    assert all(a is prototype for a, prototype in zip(aligned, prototypes))  # the shipped datasets do not change
    assert [c.type_names for c in aligned[3:5]] == [("Cl", "Cs"), ("S", "Zn")]
    # with cP2-CsCl in the dataset Cl is already type A, and rock salt follows it
    assert [c.type_names for c in aligned[8:]] == [("Cl", "Na"), ("Cl", "Na")]
    # a dataset saved before the alignment (types by file order) still rebuilds as stored
    old = build_crystal_dataset(prototypes=("cF4-Cu",), min_particles=64, noise_levels=(0.05,),
                                replicas={"val": 1}, extra_cells=cells, align=False)
    assert old.metadata["classes"][2]["species"] == {"A": "Cl", "B": "Na"}
    split_neighbor_index(old.metadata, old.arrays, "val")


def test_an_added_unit_cell_with_overlapping_atoms_is_refused():
    cell = rock_salt("overlap")
    doubled = UnitCell("overlap", cell.lattice, np.vstack([cell.fractional, cell.fractional[:1]]),
                       np.append(cell.types, 1), cell.type_names)
    with pytest.raises(InputFileError, match="overlap: atoms Na at .* and Cl at .* are 0 apart"):
        build_crystal_dataset(prototypes=("cF4-Cu",), min_particles=64, noise_levels=(0.05,), extra_cells=[doubled])
