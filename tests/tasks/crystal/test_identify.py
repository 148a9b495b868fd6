import json
import re

import gsd.hoomd
import numpy as np
import pytest

from gaatool.errors import ConfigError, InputFileError
from gaatool.ga.rotations import random_rotation
from gaatool.io.frame import Frame
from gaatool.io.xyz import XYZFrame, write_extxyz
from gaatool.tasks.crystal.dataset import add_noise, perfect_crystal
from gaatool.tasks.crystal.identify import Identifier, identify_file
from gaatool.tasks.crystal.prototypes import prototype_cell


def crystal(name, seed=0, sigma=0.02, length=3.1):
    """A noisy periodic crystal in 'file units' (nearest-neighbour distance = ``length``)."""
    supercell, _ = perfect_crystal(prototype_cell(name), 100, 12, sigma)
    positions, lattice, types = supercell.positions, supercell.lattice, supercell.types
    positions = add_noise(positions, sigma, np.random.default_rng(seed))
    return positions * length, lattice * length, types


def write_gsd(path, systems):
    with gsd.hoomd.open(str(path), "w") as trajectory:
        for positions, lattice, types in systems:
            frame = gsd.hoomd.Frame()
            frame.particles.N = len(positions)
            # wrap into the box centred on the origin (HOOMD convention)
            frac = (positions @ np.linalg.inv(lattice)) % 1.0 - 0.5
            frame.particles.position = (frac @ lattice).astype(np.float32)
            frame.particles.types = ["A", "B"]
            frame.particles.typeid = types.astype(np.uint32)
            frame.configuration.box = [lattice[0, 0], lattice[1, 1], lattice[2, 2], 0, 0, 0]
            trajectory.append(frame)


@pytest.fixture
def cubic_gsd(tmp_path):
    path = tmp_path / "traj.gsd"
    write_gsd(path, [crystal("cF4-Cu", 0), crystal("cI2-W", 1), crystal("cP2-CsCl", 2)])
    return path


def test_identify_gsd_outputs(tiny_crystal_checkpoint, cubic_gsd, tmp_path, cli):
    out_npz, out_gsd = tmp_path / "labels.npz", tmp_path / "labelled.gsd"
    code, stdout, stderr = cli("identify", cubic_gsd, "-m", tiny_crystal_checkpoint, "-o", out_npz, "--json",
                               "--device", "cpu")
    assert code == 0, stderr
    report = json.loads(stdout)
    assert [f["frame"] for f in report["frames"]] == [0, 1, 2]
    for frame in report["frames"]:
        assert sum(frame["fractions"].values()) == pytest.approx(1.0)
        assert frame["scale"] == pytest.approx(3.1, rel=0.05)  # measured nearest-neighbour distance
    arrays = np.load(out_npz, allow_pickle=False)
    assert arrays["labels"].shape[0] == 3 and list(arrays["class_names"]) == report["class_names"]
    assert report["smooth"] == 1 and int(arrays["smooth"]) == 1
    assert np.all((arrays["confidence"] >= 0) & (arrays["confidence"] <= 1))
    code, _, stderr = cli("identify", cubic_gsd, "-m", tiny_crystal_checkpoint, "-o", out_gsd, "--frames", "1:",
                          "--device", "cpu")
    assert code == 0, stderr
    with gsd.hoomd.open(str(out_gsd), "r") as trajectory:
        assert len(trajectory) == 2
        labels = trajectory[0].log["particles/gaatool_label"]
    assert np.array_equal(labels, arrays["labels"][1, :len(labels)])


def test_labels_do_not_depend_on_units_orientation_or_chunking(tiny_crystal_checkpoint):
    positions, lattice, types = crystal("hP2-Mg", 3, length=1.0)
    identifier = Identifier(tiny_crystal_checkpoint, device="cpu")
    base = identifier.label(Frame(positions, lattice, types, ["A", "B"]))
    q = random_rotation().numpy()
    moved = Frame(positions @ q.T * 4.2 + 7.0, lattice @ q.T * 4.2, types, ["A", "B"])
    chunked = Identifier(tiny_crystal_checkpoint, device="cpu", chunk_size=7)
    other = chunked.label(moved)
    assert np.array_equal(base.labels, other.labels)
    np.testing.assert_allclose(base.confidence, other.confidence, atol=1e-4)
    assert other.scale == pytest.approx(4.2 * base.scale, rel=1e-6)


def _model_probabilities(identifier, positions, lattice, types):
    """The model's per-particle class probabilities and the 12 neighbours, computed here independently."""
    import torch

    from gaatool.data.neighbors import nearest_neighbor_distance, nearest_neighbors
    from gaatool.tasks.crystal.dataset import type_pair_encoding

    scale = nearest_neighbor_distance(positions, lattice)
    index, r_ij = nearest_neighbors(positions / scale, lattice / scale, 12)
    pairs = type_pair_encoding(types, index, len(identifier.type_names))
    with torch.no_grad():
        logits = identifier.model(torch.as_tensor(r_ij, dtype=torch.float32), torch.as_tensor(pairs))
    return torch.softmax(logits, dim=-1).numpy(), index


def test_smoothing_averages_the_probabilities_over_the_twelve_neighbours(tiny_crystal_checkpoint):
    positions, lattice, types = crystal("cP2-CsCl", 4, sigma=0.08, length=1.0)
    frame = Frame(positions, lattice, types, ["A", "B"])
    raw = Identifier(tiny_crystal_checkpoint, device="cpu", smooth=0)
    probabilities, index = _model_probabilities(raw, positions, lattice, types)
    unsmoothed = raw.label(frame)
    assert np.array_equal(unsmoothed.labels, probabilities.argmax(1))
    np.testing.assert_allclose(unsmoothed.confidence, probabilities.max(1), atol=1e-6)
    expected = probabilities
    for rounds in (1, 2):
        expected = (4 * expected + expected[index].sum(axis=1)) / 16  # own probabilities weigh 4, neighbours 1
        smoothed = Identifier(tiny_crystal_checkpoint, device="cpu", smooth=rounds, chunk_size=5).label(frame)
        assert np.array_equal(smoothed.labels, expected.argmax(1))
        np.testing.assert_allclose(smoothed.confidence, expected.max(1), atol=1e-6)
    assert Identifier(tiny_crystal_checkpoint, device="cpu").smooth == 1  # the default


def test_smoothed_labels_follow_permutations_rotations_and_translations(tiny_crystal_checkpoint):
    positions, lattice, types = crystal("cI2-W", 6, sigma=0.08, length=2.0)
    identifier = Identifier(tiny_crystal_checkpoint, device="cpu", smooth=2)
    base = identifier.label(Frame(positions, lattice, types, ["A", "B"]))
    order = np.random.default_rng(0).permutation(len(positions))
    q = random_rotation().numpy()
    moved = identifier.label(Frame(positions[order] @ q.T + 3.0, lattice @ q.T, types[order], ["A", "B"]))
    assert np.array_equal(moved.labels, base.labels[order])
    np.testing.assert_allclose(moved.confidence, base.confidence[order], atol=1e-5)


@pytest.mark.parametrize("rounds", [-1, 1.5, True])
def test_smooth_must_be_a_whole_number_of_rounds(tiny_crystal_checkpoint, rounds):
    with pytest.raises(ConfigError, match="--smooth"):
        Identifier(tiny_crystal_checkpoint, device="cpu", smooth=rounds)


def test_threshold_and_type_map(tiny_crystal_checkpoint):
    positions, lattice, types = crystal("cP2-CsCl", 4)
    frame = Frame(positions, lattice, types, ["Cs", "Cl"])
    unknown = Frame(positions, lattice, types, ["Na", "Cl"])  # no training cell has both
    with pytest.raises(InputFileError, match="--type-map Cl=A,Na=B"):
        Identifier(tiny_crystal_checkpoint, device="cpu").label(unknown)
    mapped = Identifier(tiny_crystal_checkpoint, device="cpu", type_map={"Cs": "A", "Cl": "B"}).label(frame)
    strict = Identifier(tiny_crystal_checkpoint, device="cpu", type_map={"Cs": "A", "Cl": "B"}, threshold=1.0)
    assert np.all(strict.label(frame).labels[mapped.confidence < 1.0] == -1)
    with pytest.raises(ConfigError):
        Identifier(tiny_crystal_checkpoint, device="cpu", type_map={"Cs": "Q"})


def test_a_single_type_maps_onto_the_first_model_type_whatever_its_name(tiny_crystal_checkpoint):
    """A one-type file named "B" is fcc like one named "A": the model's B exists only in binary cells."""
    identifier = Identifier(tiny_crystal_checkpoint, device="cpu")
    assert identifier.type_names[:2] == ["A", "B"]
    positions, lattice, types = crystal("cF4-Cu", 3)
    as_a = identifier.label(Frame(positions, lattice, types, ["A"]))
    as_b = identifier.label(Frame(positions, lattice, types, ["B"]))
    np.testing.assert_array_equal(as_b.confidence, as_a.confidence)
    # an explicit --type-map still wins
    forced = Identifier(tiny_crystal_checkpoint, device="cpu", type_map={"B": "B"})
    assert not np.array_equal(forced.label(Frame(positions, lattice, types, ["B"])).confidence, as_a.confidence)


@pytest.mark.parametrize("length, scale, what", [(1e6, None, "the nearest-neighbour distance [23]"),
                                                  (1e15, None, "the particles' extent"),  # hung the measurement
                                                  (1e6, 3.1, "the nearest-neighbour distance 3.1,")])
def test_a_box_too_long_for_the_float32_neighbour_search_is_refused(tiny_crystal_checkpoint, length, scale, what):
    """A cluster in a box of 1e6 nearest-neighbour distances got drifting labels, in one of 1e9 wrong ones."""
    positions, _, types = crystal("cF4-Cu", 4)
    identifier = Identifier(tiny_crystal_checkpoint, device="cpu", scale=scale)
    identifier.label(Frame(positions, np.eye(3) * 1e4, types, ["A"]))  # 3e3 distances: fine
    with pytest.raises(InputFileError, match=rf"^mem\.xyz: frame 2 has a box length {re.escape(f'{length:.4g}')}, "
                                             rf"more than 100000 times {what}.*float32 neighbour search"):
        identifier.label(Frame(positions, np.eye(3) * length, types, ["A"], source="mem.xyz", index=2))


def test_element_names_of_a_training_cell_map_like_that_cell(tiny_crystal_checkpoint):
    """Cs and Cl map as in the model's CsCl cell (Cl = A, Cs = B, recorded at training): no --type-map needed."""
    identifier = Identifier(tiny_crystal_checkpoint, device="cpu")
    assert identifier.species["cP2-CsCl"] == {"A": "Cl", "B": "Cs"} and identifier.species["cF4-Cu"] == {"A": "Cu"}
    positions, lattice, types = crystal("cP2-CsCl", 4)
    named = Frame(positions, lattice, types, ["Cl", "Cs"])  # type 0 is the cell's A (Cl)
    automatic = identifier.label(named)
    assert identifier.notes == ["types mapped as in the model's training cells: Cl=A,Cs=B (--type-map sets them)"]
    identifier.label(named)
    assert len(identifier.notes) == 1  # once, not per frame
    explicit = Identifier(tiny_crystal_checkpoint, device="cpu", type_map={"Cl": "A", "Cs": "B"}).label(named)
    swapped = Identifier(tiny_crystal_checkpoint, device="cpu", type_map={"Cl": "B", "Cs": "A"}).label(named)
    assert np.array_equal(automatic.labels, explicit.labels)
    np.testing.assert_array_equal(automatic.confidence, explicit.confidence)
    assert not np.array_equal(automatic.confidence, swapped.confidence)  # the mapping is not a no-op
    # an old checkpoint without the species record: element names need --type-map as before
    identifier.species = {}
    with pytest.raises(InputFileError, match="pass --type-map Cl=A,Cs=B .an ordered compound.*, or --type-map "
                                             "Cl=A,Cs=A .one kind of particle"):
        identifier.label(named)
    alike = Identifier(tiny_crystal_checkpoint, device="cpu", type_map={"Cl": "A", "Cs": "A"}).label(named)
    one_kind = identifier.label(Frame(positions, lattice, np.zeros_like(types), ["Cl"]))
    np.testing.assert_array_equal(alike.confidence, one_kind.confidence)  # the second option: one component


def test_type_map_onto_elements_and_hints_for_the_rest(tiny_crystal_checkpoint):
    """--type-map may name the training cells' elements (X=Cs: the type Cs had there); a partial map's hint
    proposes those types for the rest (it proposed the model's first type whatever the map had taken)."""
    positions, lattice, types = crystal("cP2-CsCl", 4)
    renamed = Frame(positions, lattice, types, ["X", "Y"])  # X is the cell's Cl (A), Y its Cs (B)
    by_element = Identifier(tiny_crystal_checkpoint, device="cpu", type_map={"X": "Cl", "Y": "Cs"})
    assert by_element.type_map == {"X": "A", "Y": "B"}
    by_type = Identifier(tiny_crystal_checkpoint, device="cpu", type_map={"X": "A", "Y": "B"})
    np.testing.assert_array_equal(by_element.label(renamed).confidence, by_type.label(renamed).confidence)
    named = Frame(positions, lattice, types, ["Cl", "Cs"])
    with pytest.raises(InputFileError, match="pass --type-map Cs=B$"):
        Identifier(tiny_crystal_checkpoint, device="cpu", type_map={"Cl": "A"}).label(named)
    with pytest.raises(InputFileError, match="pass --type-map Y=B$"):  # no species to go by: a type not yet taken
        Identifier(tiny_crystal_checkpoint, device="cpu", type_map={"X": "A"}).label(renamed)


def test_identify_command_says_how_it_mapped_element_names(tiny_crystal_checkpoint, tmp_path, cli):
    positions, lattice, types = crystal("cP2-CsCl", 4)
    path = tmp_path / "cscl.extxyz"
    write_extxyz(path, [XYZFrame(np.array(["Cl", "Cs"])[types], positions, lattice=lattice)])
    code, stdout, stderr = cli("identify", path, "-m", tiny_crystal_checkpoint, "--device", "cpu")
    assert code == 0, stderr
    assert "note: types mapped as in the model's training cells: Cl=A,Cs=B" in stderr
    code, stdout, _ = cli("identify", path, "-m", tiny_crystal_checkpoint, "--device", "cpu", "--json")
    assert json.loads(stdout)["notes"] == ["types mapped as in the model's training cells: Cl=A,Cs=B (--type-map sets them)"]
    code, _, stderr = cli("identify", path, "-m", tiny_crystal_checkpoint, "--device", "cpu", "--type-map", "Cl=A,Cs=B")
    assert code == 0 and "note:" not in stderr


def test_table_on_a_pipe_shows_whole_class_names(cli):
    """The shipped model's 8 classes: Rich's default 80 columns off a terminal cut them to "cF1…"."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[3] / "docs" / "examples" / "metals.gsd"
    code, _, stderr = cli("identify", example, "--device", "cpu", "--frames", "0:1")
    assert code == 0, stderr
    header = next(line for line in stderr.splitlines() if "frame" in line and "N" in line)
    assert all(name in header for name in ["cF4-Cu", "cF8-ZnS", "cP46-Si", "cF136-Si", "unknown"]), header


def test_xyz_input_with_and_without_lattice(tiny_crystal_checkpoint, tmp_path):
    positions, lattice, types = crystal("cF4-Cu", 5)
    symbols = np.array(["Cu"] * len(positions))
    periodic, bare = tmp_path / "periodic.extxyz", tmp_path / "bare.xyz"
    write_extxyz(periodic, [XYZFrame(symbols, positions, lattice=lattice, pbc=(True, True, True))])
    write_extxyz(bare, [XYZFrame(symbols, positions)])
    with_box = identify_file(periodic, tiny_crystal_checkpoint, device="cpu")
    assert len(with_box.frames[0].labels) == len(positions)
    cluster = identify_file(bare, tiny_crystal_checkpoint, device="cpu")  # non-periodic: a finite cluster
    boxed = identify_file(bare, tiny_crystal_checkpoint, device="cpu", box=np.diag(lattice).tolist())
    np.testing.assert_array_equal(boxed.frames[0].labels, with_box.frames[0].labels)
    assert cluster.frames[0].labels.shape == boxed.frames[0].labels.shape
    # a frame without a box may be a periodic snapshot written without it: the note says how it was taken
    def box_notes(result):
        return [note for note in result.notes if "no periodic box" in note]

    assert len(box_notes(cluster)) == 1 and box_notes(cluster)[0].startswith(f"{bare}: no periodic box")
    assert "--box Lx,Ly,Lz" in box_notes(cluster)[0]
    assert not box_notes(with_box) and not box_notes(boxed)


def test_bad_inputs_give_one_line_errors_and_no_output(tiny_crystal_checkpoint, cubic_gsd, tmp_path, cli):
    ckpt = tiny_crystal_checkpoint
    small = tmp_path / "small.xyz"
    write_extxyz(small, [XYZFrame(np.array(["Cu"] * 8), np.random.default_rng(0).normal(size=(8, 3)) * 3)])
    nan = tmp_path / "nan.xyz"
    coords = np.random.default_rng(1).normal(size=(20, 3)) * 3
    coords[3, 1] = np.nan
    write_extxyz(nan, [XYZFrame(np.array(["Cu"] * 20), coords)])
    truncated = tmp_path / "truncated.gsd"
    truncated.write_bytes(cubic_gsd.read_bytes()[:-200])
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    flat = tmp_path / "flat.gsd"  # a 2D HOOMD box (Lz = 0): identify works in 3D only
    positions, lattice, types = crystal("cF4-Cu", 6)
    write_gsd(flat, [(positions, lattice, types)])
    with gsd.hoomd.open(str(flat), "r") as source:
        frame = source[0]
    frame.configuration.box = [lattice[0, 0], lattice[1, 1], 0, 0, 0, 0]
    frame.configuration.dimensions = 2
    with gsd.hoomd.open(str(flat), "w") as target:
        target.append(frame)
    cases = [
        (small, "8 particles"), (nan, "NaN"), (truncated, "truncated"), (empty, "empty"), (flat, "frame 0"),
        (tmp_path / "missing.gsd", "no such file"), (tmp_path / "file.pdb", "pdb"),
    ]
    (tmp_path / "file.pdb").write_text("ATOM\n")
    for path, expected in cases:
        out = tmp_path / f"{path.stem}-labels.npz"
        error = cli("identify", path, "-m", ckpt, "-o", out, "--device", "cpu").one_line_error()
        assert expected.lower() in error.lower(), (path, error)
        assert not out.exists()
        assert not list(tmp_path.glob(".*tmp*"))
    assert "frame selection" in cli("identify", cubic_gsd, "-m", ckpt, "--frames", "a:b").one_line_error()
    out = tmp_path / "smooth.npz"
    assert "--smooth" in cli("identify", cubic_gsd, "-m", ckpt, "--smooth", "-1", "-o", out).one_line_error()
    assert not out.exists()


def test_default_chunk_size_depends_on_the_device(tiny_crystal_checkpoint):
    import torch

    from gaatool.errors import ConfigError
    from gaatool.tasks.crystal.identify import CPU_CHUNK_SIZE, CUDA_CHUNK_SIZE, default_chunk_size

    assert Identifier(tiny_crystal_checkpoint, device="cpu").chunk_size == CPU_CHUNK_SIZE
    assert default_chunk_size(torch.device("cuda")) == CUDA_CHUNK_SIZE > CPU_CHUNK_SIZE
    with pytest.raises(ConfigError, match="--chunk-size"):
        Identifier(tiny_crystal_checkpoint, device="cpu", chunk_size=0)


def lammps_dump(path, systems):
    """A LAMMPS 'custom' dump (id type xs ys zs) of orthorhombic crystals, atoms in shuffled id order."""
    lines = []
    for step, (positions, lattice, types) in enumerate(systems):
        order = np.random.default_rng(step).permutation(len(positions))
        fractions = (positions @ np.linalg.inv(lattice)) % 1.0
        lines += ["ITEM: TIMESTEP", str(1000 * step), "ITEM: NUMBER OF ATOMS", str(len(positions)),
                  "ITEM: BOX BOUNDS pp pp pp", *(f"0 {float(lattice[k, k])!r}" for k in range(3)), "ITEM: ATOMS id type xs ys zs"]
        lines += [f"{i + 1} {types[i] + 1} " + " ".join(repr(float(v)) for v in fractions[i]) for i in order]
    path.write_text("\n".join(lines) + "\n")


def test_lammps_dump_in_labelled_xyz_out(tiny_crystal_checkpoint, tmp_path, cli):
    systems = [crystal("cF4-Cu", 7), crystal("cP2-CsCl", 8)]
    dump, out = tmp_path / "dump.melt", tmp_path / "labelled.xyz"  # found a dump by its contents
    lammps_dump(dump, systems)
    code, stdout, stderr = cli("identify", dump, "-m", tiny_crystal_checkpoint, "-o", out, "--type-map", "1=A,2=B",
                               "--json", "--device", "cpu")
    assert code == 0, stderr
    assert [f["particles"] for f in json.loads(stdout)["frames"]] == [len(s[0]) for s in systems]
    # the same crystals as extended XYZ give the same labels
    reference = tmp_path / "same.extxyz"
    write_extxyz(reference, [XYZFrame(np.array(["A", "B"])[t], p, lattice=lat, pbc=(True, True, True))
                             for p, lat, t in systems])
    expected = identify_file(reference, tiny_crystal_checkpoint, device="cpu")
    from gaatool.io.xyz import read_xyz

    written = read_xyz(out)
    class_names = written[0].info["class_names"].split(",")
    for frame, labelled, (positions, lattice, types) in zip(written, expected.frames, systems):
        np.testing.assert_array_equal(frame.arrays["structure"], labelled.labels)
        np.testing.assert_allclose(frame.arrays["confidence"], labelled.confidence, atol=1e-5)
        assert frame.arrays["structure_name"].tolist() == [class_names[k] for k in labelled.labels]
        assert frame.symbols.tolist() == [str(t + 1) for t in types]  # LAMMPS type numbers, id order
        shift = (frame.positions - positions) @ np.linalg.inv(lattice)  # wrapped into the box: whole cells
        np.testing.assert_allclose(shift, np.round(shift), atol=1e-9)
        np.testing.assert_allclose(frame.lattice, lattice)
    error = cli("identify", dump, "-m", tiny_crystal_checkpoint, "-o", tmp_path / "x.gsd").one_line_error()
    assert "-o .gsd needs a .gsd input" in error and not (tmp_path / "x.gsd").exists()


def test_stdin_in_and_stdout_out(tiny_crystal_checkpoint, cubic_gsd, tmp_path, cli, monkeypatch):
    import gzip
    import io
    import sys

    from gaatool.io.xyz import read_xyz

    def pipe(data: bytes):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))

    expected = identify_file(cubic_gsd, tiny_crystal_checkpoint, device="cpu")
    for data in (cubic_gsd.read_bytes(), gzip.compress(cubic_gsd.read_bytes())):  # GSD found by its magic number
        pipe(data)
        code, out, err = cli("identify", "-", "-m", tiny_crystal_checkpoint, "-o", "-", "--frames", "1:",
                             "--device", "cpu")
        assert code == 0, err
        frames = read_xyz(io.StringIO(out))
        assert [f.info["frame"] for f in frames] == [1, 2] and "stdin: % of particles" in err
        for frame, labelled in zip(frames, expected.frames[1:]):
            np.testing.assert_array_equal(frame.arrays["structure"], labelled.labels)
    positions, lattice, types = crystal("cF4-Cu", 9)
    xyz = tmp_path / "a.xyz"
    write_extxyz(xyz, [XYZFrame(np.array(["Cu"] * len(positions)), positions, lattice=lattice, pbc=(True,) * 3)])
    pipe(xyz.read_bytes())
    code, out, err = cli("identify", "-", "-m", tiny_crystal_checkpoint, "--json", "--device", "cpu")
    assert code == 0 and json.loads(out)["source"] == "stdin"
    pipe(cubic_gsd.read_bytes()[:-300])
    error = cli("identify", "-", "-m", tiny_crystal_checkpoint, "-o", tmp_path / "x.npz").one_line_error()
    assert error.startswith("error: stdin: ") and "gaatool-stdin" not in error and not (tmp_path / "x.npz").exists()
    pipe(b"")
    assert "stdin: no input" in cli("identify", "-", "-m", tiny_crystal_checkpoint).one_line_error()
    assert "--json" in cli("identify", cubic_gsd, "-o", "-", "--json").one_line_error()


def test_uncertainty_note_names_frames_where_most_particles_are_uncertain():
    from gaatool.tasks.crystal.identify import FrameLabels, uncertainty_note

    def frame(index, uncertain):
        confidence = np.where(np.arange(100) < uncertain, 0.9, 1.0).astype(np.float32)
        return FrameLabels(index, np.zeros(100, dtype=np.int32), confidence, 1.0)

    assert uncertainty_note([frame(0, 10), frame(1, 50)], smooth=0) is None  # half is not most
    note = uncertainty_note([frame(0, 10), frame(3, 80), *(frame(i, 90) for i in range(4, 8))], smooth=0)
    assert note.startswith("most particles have confidence below 0.99 in frame 3 (80%), frame 4 (90%), frame 5 (90%)"
                           " and 2 more frames:")
    assert note.endswith("--threshold 0.99 marks such particles unknown")
    # neighbour-averaged confidences are lower for crystals too: uncertain below 0.8 (the default smoothing)
    assert uncertainty_note([frame(3, 80)]) is None
    low = FrameLabels(2, np.zeros(100, dtype=np.int32), np.full(100, 0.7, dtype=np.float32), 1.0)
    assert uncertainty_note([low]).startswith("most particles have confidence below 0.8 in frame 2 (100%)")


def test_vasp_xdatcar_in_labelled_xyz_out(tiny_crystal_checkpoint, tmp_path, cli):
    """An ab initio MD run's XDATCAR (fractional coordinates, species by name) labels like the same frames as
    extended XYZ."""
    positions, lattice, types = crystal("cP2-CsCl", 9)
    symbols = np.array(["Cl", "Cs"])[types]
    order = np.argsort(types, kind="stable")  # VASP lists the atoms species by species
    moved = [positions[order], positions[order] + 0.05]
    lines = ["CsCl 600 K", "1.0", *(" ".join(f"{v:.10f}" for v in row) for row in lattice),
             "Cl Cs", " ".join(str(int(np.sum(types == t))) for t in (0, 1))]
    for step, frame in enumerate(moved, 1):
        lines.append(f"Direct configuration= {step}")
        lines += [" ".join(f"{v:.12f}" for v in row) for row in frame @ np.linalg.inv(lattice)]
    xdatcar, out = tmp_path / "XDATCAR", tmp_path / "labels.xyz"
    xdatcar.write_text("\n".join(lines) + "\n")
    code, stdout, stderr = cli("identify", xdatcar, "-m", tiny_crystal_checkpoint, "-o", out, "--json",
                               "--device", "cpu")
    assert code == 0, stderr
    assert [f["particles"] for f in json.loads(stdout)["frames"]] == [len(positions)] * 2
    reference = tmp_path / "same.extxyz"
    write_extxyz(reference, [XYZFrame(symbols[order], p, lattice=lattice, pbc=(True, True, True)) for p in moved])
    expected = identify_file(reference, tiny_crystal_checkpoint, device="cpu")
    from gaatool.io.xyz import read_xyz

    for frame, labelled in zip(read_xyz(out), expected.frames):
        np.testing.assert_array_equal(frame.arrays["structure"], labelled.labels)
        np.testing.assert_allclose(frame.lattice, lattice, atol=1e-9)


def test_a_slab_is_open_along_its_free_axis(tiny_crystal_checkpoint, tmp_path):
    """pbc="T T F" (an ASE slab, LAMMPS 'pp pp f'): the same environments as the slab in a fully periodic box with
    ample vacuum, even when the file's third lattice vector is no longer than the slab is thick."""
    positions, lattice, types = crystal("cF4-Cu", 5)
    symbols = np.array(["Cu"] * len(positions))
    tight, vacuum = tmp_path / "tight.extxyz", tmp_path / "vacuum.extxyz"
    write_extxyz(tight, [XYZFrame(symbols, positions, lattice=lattice, pbc=(True, True, False))])
    padded = lattice.copy()
    padded[2] *= 4.0  # three thicknesses of vacuum: no image within reach
    write_extxyz(vacuum, [XYZFrame(symbols, positions, lattice=padded, pbc=(True, True, True))])
    slab = identify_file(tight, tiny_crystal_checkpoint, device="cpu").frames[0]
    reference = identify_file(vacuum, tiny_crystal_checkpoint, device="cpu").frames[0]
    np.testing.assert_array_equal(slab.labels, reference.labels)
    np.testing.assert_allclose(slab.confidence, reference.confidence, atol=1e-6)
    periodic = tmp_path / "periodic.extxyz"
    write_extxyz(periodic, [XYZFrame(symbols, positions, lattice=lattice, pbc=(True, True, True))])
    assert not np.allclose(identify_file(periodic, tiny_crystal_checkpoint, device="cpu").frames[0].confidence,
                           slab.confidence)  # the open axis matters


def test_identify_table_of_a_long_trajectory(tmp_path, cli, tiny_crystal_checkpoint):
    """More than 20 frames: the table lists the first and last 10 and a row for all of them (particle-weighted),
    the JSON every frame."""
    import numpy as np

    from gaatool.io.xyz import XYZFrame, write_extxyz

    rng = np.random.default_rng(0)
    lattice = np.eye(3) * 4 * 3.6
    cells = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    ideal = ((cells + basis) * 3.6).reshape(-1, 3)
    frames = [XYZFrame(np.array(["Cu"] * len(ideal)), ideal + rng.normal(0, 0.3, ideal.shape), lattice=lattice)
              for _ in range(25)]
    path = tmp_path / "long.extxyz"
    write_extxyz(path, frames)
    table = cli("identify", path, "-m", tiny_crystal_checkpoint, "--device", "cpu")
    assert table.code == 0 and "... 5 more" in table.err and "all 25" in table.err
    assert "│ 9 " in table.err and "│ 15 " in table.err and "│ 12 " not in table.err
    listed = json.loads(cli("identify", path, "-m", tiny_crystal_checkpoint, "--device", "cpu", "--json").out)
    assert len(listed["frames"]) == 25
