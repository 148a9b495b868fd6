"""Applying force fields to XYZ / extended XYZ / npz files: round trips, element mapping, bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gaatool.checkpoint import save_checkpoint
from gaatool.errors import CheckpointError, ConfigError, InputFileError
from gaatool.io.xyz import read_xyz
from gaatool.tasks.forces import predict as predict_module
from gaatool.tasks.forces.predict import ForceFieldPredictor, default_checkpoint, predict_file
from gaatool.units import KCAL_PER_MOL_IN_EV

PERM = [3, 4, 5, 6, 7, 8, 0, 1, 2]  # extxyz atom i is npz atom PERM[i] (tests/files/SOURCES.md)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_force_field):
    """The tiny float64 force field saved as an ethanol checkpoint."""
    path = tmp_path_factory.mktemp("ckpt") / "ff.safetensors"
    save_checkpoint(path, tiny_force_field, {"task": "forces", "molecule": "ethanol", "formula": "C2H6O",
                                             "model_options": {"dtype": "float64"}})
    return path


def test_extxyz_round_trip_and_element_mapping(checkpoint, tmp_path, rmd17_50, extxyz):
    out = tmp_path / "out.extxyz"
    result = predict_file(extxyz, checkpoint, output=out, device="cpu")
    frames = read_xyz(out)
    assert len(frames) == 5 and result.to_dict()["n_frames"] == 5
    source = read_xyz(extxyz)
    for frame, src, energy, forces in zip(frames, source, result.energies, result.forces):
        assert frame.symbols.tolist() == src.symbols.tolist()
        np.testing.assert_array_equal(frame.positions, src.positions)
        # in eV and eV/Å, ASE's units, named in the comment line
        assert frame.info["energy_unit"] == "eV" and frame.info["forces_unit"] == "eV/A"
        np.testing.assert_allclose(frame.info["energy"], energy * KCAL_PER_MOL_IN_EV, rtol=1e-15)
        np.testing.assert_allclose(frame.arrays["forces"], forces * KCAL_PER_MOL_IN_EV, rtol=1e-15, atol=0)
    # the same molecules in the rMD17 npz list their atoms in another order: same energies, forces permuted
    from_npz = predict_file(rmd17_50, checkpoint, device="cpu", frames=slice(0, 5))
    np.testing.assert_allclose(from_npz.energies, result.energies, rtol=0, atol=1e-8)
    for a, b in zip(from_npz.forces, result.forces):
        np.testing.assert_allclose(a[PERM], b, rtol=0, atol=1e-8)
    # and they equal the model applied directly
    predictor = ForceFieldPredictor.from_checkpoint(checkpoint, device="cpu")
    types = torch.tensor([[0] * 6 + [1, 1, 2]])
    energy, forces = predictor.model(torch.tensor(source[2].positions)[None], types)
    assert float(energy.detach()) == pytest.approx(result.energies[2], abs=1e-8)
    np.testing.assert_allclose(forces[0].detach().numpy(), result.forces[2], atol=1e-10)


def test_npz_round_trip_and_inputs(checkpoint, tmp_path, md17_50, sgdml_xyz):
    out = tmp_path / "out.npz"
    result = predict_file(md17_50, checkpoint, output=out, device="cpu", frames=slice(0, 3))
    with np.load(out, allow_pickle=False) as npz:
        assert npz["energies"].shape == (3,) and npz["forces"].shape == (3, 9, 3)
        np.testing.assert_array_equal(npz["energies"], result.energies)
        np.testing.assert_array_equal(npz["forces"], np.stack(result.forces))
        assert npz["atomic_numbers"].tolist() == [6, 6, 8, 1, 1, 1, 1, 1, 1]
        assert str(npz["energy_unit"]) == "kcal/mol" and str(npz["forces_unit"]) == "kcal/mol/A"
        assert str(npz["length_unit"]) == "A"
        np.testing.assert_array_equal(npz["positions"][1], np.load(md17_50)["R"][1])
    # the sGDML xyz export holds MD17 frames 0-2, which are the first frames of the npz
    from_xyz = predict_file(sgdml_xyz, checkpoint, device="cpu")
    np.testing.assert_allclose(from_xyz.energies[0], result.energies[0], atol=1e-8)
    # our own npz output is a valid input
    again = predict_file(out, checkpoint, device="cpu")
    np.testing.assert_array_equal(again.energies, result.energies)


def test_mixed_molecules(checkpoint, tmp_path, sgdml_xyz):
    mixed = tmp_path / "mixed.xyz"
    ethanol = sgdml_xyz.read_text().splitlines()[:11]
    water = ["3", "water", "O 0 0 0", "H 0.96 0 0", "H -0.24 0.93 0"]
    mixed.write_text("\n".join(ethanol + water + ethanol) + "\n")
    result = predict_file(mixed, checkpoint, output=tmp_path / "mixed_out.xyz", device="cpu")
    assert result.to_dict()["n_atoms"] == [3, 9] and result.to_dict()["matches_training_molecule"] is False
    assert result.energies[0] == pytest.approx(result.energies[2], abs=1e-9)
    assert result.forces[1].shape == (3, 3)
    with pytest.raises(ConfigError, match="frames hold different atoms"):
        predict_file(mixed, checkpoint, output=tmp_path / "mixed.npz", device="cpu")
    assert not (tmp_path / "mixed.npz").exists()


def test_bad_inputs(checkpoint, tmp_path, md17_50, extxyz):
    out = tmp_path / "out.xyz"
    nitrogen = tmp_path / "n.xyz"
    nitrogen.write_text("2\nok\nH 0 0 0\nH 0 0 0.74\n3\nammonia-ish\nH 0 0 0\nN 0 0 1\nH 0 1 1\n")
    with pytest.raises(InputFileError, match=r"n.xyz: frame 1: atom 2 is N, but the model knows only H, C, O"):
        predict_file(nitrogen, checkpoint, output=out, device="cpu")
    truncated = tmp_path / "truncated.xyz"
    truncated.write_text("\n".join(extxyz.read_text().splitlines()[:15]) + "\n")
    with pytest.raises(InputFileError, match="truncated.xyz"):
        predict_file(truncated, checkpoint, output=out, device="cpu")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(md17_50.read_bytes()[:5000])
    with pytest.raises(InputFileError, match="broken.npz"):
        predict_file(broken, checkpoint, output=out, device="cpu")
    periodic = tmp_path / "periodic.xyz"
    periodic.write_text('1\nLattice="5 0 0 0 5 0 0 0 5" pbc="T T T"\nH 0 0 0\n')
    with pytest.raises(InputFileError, match="periodic"):
        predict_file(periodic, checkpoint, output=out, device="cpu")
    with pytest.raises(InputFileError, match="no such file"):
        predict_file(tmp_path / "missing.xyz", checkpoint, output=out, device="cpu")
    with pytest.raises(InputFileError, match="leaves no frame"):
        predict_file(extxyz, checkpoint, output=out, device="cpu", frames=slice(10, 20))
    with pytest.raises(ConfigError, match="unknown output format '.pdb'"):
        predict_file(extxyz, checkpoint, output=tmp_path / "out.pdb", device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.npz", "n.xyz", "periodic.xyz", "truncated.xyz"]


def test_default_checkpoint(monkeypatch, tmp_path, checkpoint, sgdml_xyz):
    from gaatool.tasks import pretrained

    monkeypatch.setattr(pretrained, "pretrained_dirs", lambda: [tmp_path])
    with pytest.raises(CheckpointError, match="no pretrained model forces-ethanol.safetensors found"):
        default_checkpoint()
    (tmp_path / predict_module.DEFAULT_CHECKPOINT_NAME).write_bytes(checkpoint.read_bytes())
    assert default_checkpoint() == tmp_path / "forces-ethanol.safetensors"
    assert len(predict_file(sgdml_xyz, None, device="cpu").energies) == 3
    # a molecule with its own pretrained model gets it; mixtures and others get the ethanol model
    (tmp_path / "forces-uracil.safetensors").write_bytes(checkpoint.read_bytes())
    assert default_checkpoint(["C4H4N2O2"]) == tmp_path / "forces-uracil.safetensors"
    assert default_checkpoint(["C4H4N2O2", "C2H6O"]) == tmp_path / "forces-ethanol.safetensors"
    assert default_checkpoint(["C6H6"]) == tmp_path / "forces-ethanol.safetensors"
    (tmp_path / "forces-ethanol.safetensors").rename(tmp_path / "forces-benzene.safetensors")
    assert default_checkpoint(["C6H6"]) == tmp_path / "forces-benzene.safetensors"
    with pytest.raises(CheckpointError, match="forces-ethanol"):
        default_checkpoint(["C2H6O"])
    # predict_file picks by the frames read: ethanol frames with only the benzene model installed fail cleanly
    with pytest.raises(CheckpointError, match="forces-ethanol"):
        predict_file(sgdml_xyz, None, device="cpu")
    (tmp_path / "forces-ethanol.safetensors").write_bytes(checkpoint.read_bytes())
    assert predict_file(sgdml_xyz, None, device="cpu").checkpoint == str(tmp_path / "forces-ethanol.safetensors")


def test_compiled_energies_and_forces_equal_eager(checkpoint, md17_50, monkeypatch):
    eager = ForceFieldPredictor.from_checkpoint(checkpoint, device="cpu", compile="off")
    positions = np.load(md17_50)["R"][:7]
    z = np.load(md17_50)["z"]
    e0, f0 = eager.predict(positions, z)
    assert eager._compiled is None
    # auto compiles once enough frames were asked for, counted over calls (molecular dynamics: one frame each)
    monkeypatch.setattr(predict_module, "AUTO_COMPILE_FRAMES", 3)
    batched = ForceFieldPredictor.from_checkpoint(checkpoint, device="cpu", batch_size=4)
    batched.predict(positions, z)
    assert batched._compiled is None  # auto: batches stay eager (side by side on the cores)
    monkeypatch.setattr(predict_module, "AUTO_COMPILE_MAX_ATOMS", 5)
    big = ForceFieldPredictor.from_checkpoint(checkpoint, device="cpu", batch_size=1)
    big.predict(positions, z)
    assert big._compiled is None  # auto: molecules bigger than the limit stay eager
    monkeypatch.setattr(predict_module, "AUTO_COMPILE_MAX_ATOMS", 12)
    auto = ForceFieldPredictor.from_checkpoint(checkpoint, device="cpu", batch_size=1)
    auto.predict(positions[:2], z)
    assert auto._compiled is None
    e1, f1 = auto.predict(positions, z)
    assert auto._compiled is not None and auto._compiled._compiled is not None  # compiled, no fallback
    on = ForceFieldPredictor.from_checkpoint(checkpoint, device="cpu", batch_size=4, compile="on")
    e2, f2 = on.predict(positions, z)
    np.testing.assert_allclose(f2, f0, rtol=0, atol=1e-9)
    np.testing.assert_allclose(e1, e0, rtol=0, atol=1e-9)
    np.testing.assert_allclose(f1, f0, rtol=0, atol=1e-9)
    assert all(p.requires_grad for p in auto.model.parameters())
    with pytest.raises(ConfigError, match="--compile must be one of"):
        ForceFieldPredictor.from_checkpoint(checkpoint, device="cpu", compile="always")


def test_far_off_coordinates_keep_float32_precision(tiny_force_field, md17_50):
    """Only r_j - r_i matters: a float32 model gives the same forces 1e4 Å away (it lost ~1e-3 Å of each
    coordinate before the predictor centred the frames in float64)."""
    import copy

    predictor = ForceFieldPredictor(copy.deepcopy(tiny_force_field), device="cpu", dtype="float32", compile="off")
    with np.load(md17_50) as npz:
        positions, z = npz["R"][:4], npz["z"]
    energies, forces = predictor.predict(positions, z)
    far_energies, far_forces = predictor.predict(positions + np.array([1e4, -2e4, 3e4]), z)
    np.testing.assert_allclose(far_forces, forces, rtol=0, atol=1e-5)
    np.testing.assert_allclose(far_energies, energies, rtol=0, atol=1e-5)


def test_empty_and_non_finite_frames_are_clear_errors(checkpoint, tmp_path, md17_50):
    out = tmp_path / "out.xyz"
    empty = tmp_path / "empty.xyz"
    empty.write_text("0\nno atoms\n")
    with pytest.raises(InputFileError, match=r"empty.xyz: frame 0: the frame holds no atoms"):
        predict_file(empty, checkpoint, output=out, device="cpu")
    assert not out.exists()
    predictor = ForceFieldPredictor.from_checkpoint(checkpoint, device="cpu")
    with np.load(md17_50) as npz:
        positions, z = npz["R"][:3].copy(), npz["z"]
    positions[2, 4, 1] = np.nan  # what the ASE calculator and library callers may pass
    with pytest.raises(InputFileError, match=r"api: positions of frame 2 \(0-based, of these 3\) are not finite"):
        predictor.predict(positions, z, where="api")
    with pytest.raises(InputFileError, match="no atoms"):
        predictor.predict(np.zeros((1, 0, 3)), np.zeros(0, np.int64))


def test_positions_in_other_units_are_flagged(checkpoint, tmp_path, md17_50):
    """nm or bohr read as Å, and a stray atom, run (the numbers are still written) but come with a warning."""
    with np.load(md17_50) as npz:
        positions, z = npz["R"][:3], npz["z"]
    symbols = {1: "H", 6: "C", 8: "O"}

    def xyz(name, frames, numbers=z):
        path = tmp_path / name
        path.write_text("".join(f"{len(numbers)}\nframe\n" + "".join(
            f"{symbols[int(n)]} {x:.8f} {y:.8f} {w:.8f}\n" for n, (x, y, w) in zip(numbers, frame))
            for frame in frames))
        return path

    assert predict_file(xyz("angstrom.xyz", positions), checkpoint, device="cpu").warnings == []
    nm = predict_file(xyz("nm.xyz", positions / 10), checkpoint, device="cpu")
    assert len(nm.warnings) == 1 and "nm.xyz: frame 0: atoms" in nm.warnings[0]
    assert "(and in 2 more frames)" in nm.warnings[0] and "(not nm)" in nm.warnings[0]
    bohr = predict_file(xyz("bohr.xyz", positions / 0.529177), checkpoint, device="cpu", frames=slice(1, 3))
    assert len(bohr.warnings) == 1 and "bohr.xyz: frame 1: no two atoms are closer than" in bohr.warnings[0]
    assert "(not bohr)" in bohr.warnings[0] and bohr.to_dict()["warnings"] == bohr.warnings
    stray = np.concatenate([positions[:1], [[[5.0, 5.0, 5.0]]]], axis=1)
    extra = predict_file(xyz("stray.xyz", stray, np.append(z, 1)), checkpoint, device="cpu")
    assert len(extra.warnings) == 1 and "frame 0: atom 10 (H) is" in extra.warnings[0]


def test_predictors_leave_the_callers_model_as_it_was(tiny_force_field, md17_50):
    """Two predictors (or ASE calculators) of one model in two dtypes: each works, the model is not converted."""
    with np.load(md17_50) as npz:
        positions, z = npz["R"][:2], npz["z"]
    single = ForceFieldPredictor(tiny_force_field, device="cpu", dtype="float32", compile="off")
    double = ForceFieldPredictor(tiny_force_field, device="cpu", dtype="float64", compile="off")
    energies, forces = single.predict(positions, z)  # failed: the second predictor made the model float64
    np.testing.assert_allclose(forces, double.predict(positions, z)[1], rtol=0, atol=1e-3)
    assert tiny_force_field.embed.weight.dtype == torch.float64 and double.model is tiny_force_field


def test_extxyz_output_reads_back_in_its_units(checkpoint, tmp_path, extxyz):
    """The extended XYZ output is in eV and eV/Å as ASE reads it; gaatool's readers follow its unit keys."""
    from gaatool.tasks.forces.evaluate import evaluate_forces

    out = tmp_path / "out.extxyz"
    result = predict_file(extxyz, checkpoint, output=out, device="cpu")
    ase_io = pytest.importorskip("ase.io")
    first = ase_io.read(out, index=0)
    np.testing.assert_allclose(first.get_potential_energy(), result.energies[0] * KCAL_PER_MOL_IN_EV, rtol=1e-12)
    np.testing.assert_allclose(first.get_forces(), result.forces[0] * KCAL_PER_MOL_IN_EV, rtol=1e-12, atol=1e-15)
    # the predictions as labels: the model's own numbers back, in kcal/mol
    evaluation = evaluate_forces(checkpoint, out, device="cpu").to_dict()
    assert evaluation["force_mae_mev_per_a"] < 1e-9 and evaluation["energy_mae_mev"] < 1e-9
    assert not evaluation["warnings"]
    # a unit the reader does not know is refused, not read as kcal/mol
    text = out.read_text().replace("energy_unit=eV", "energy_unit=furlong")
    (tmp_path / "odd.extxyz").write_text(text)
    with pytest.raises(InputFileError, match="energy_unit='furlong'"):
        evaluate_forces(checkpoint, tmp_path / "odd.extxyz", device="cpu")
