"""Evaluating force fields: metrics against an independent numpy computation, parity plot, bad inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gaatool.checkpoint import load_model
from gaatool.errors import CheckpointError, ConfigError, InputFileError
from gaatool.tasks.forces.dataset import ForcesDataset, build_md17_dataset
from gaatool.tasks.forces.evaluate import evaluate_forces, force_metrics
from gaatool.tasks.forces.train import ForcesModelOptions, train_forces
from gaatool.train import TrainConfig

KCAL_MEV = 43.364


@pytest.fixture(scope="module")
def run(tmp_path_factory, md17_50):
    out = tmp_path_factory.mktemp("run")
    dataset = build_md17_dataset("ethanol", source=md17_50, seed=1, n_train=20, n_val=8, n_test=12,
                                 output=out / "ds.npz")
    result = train_forces(out / "ds.npz", out / "run", ForcesModelOptions(n_dim=8, n_blocks=1),
                          TrainConfig(epochs=1, batch_size=10, learning_rate=1e-2, device="cpu"), quiet=True)
    return result.best_path, dataset


def test_metrics_match_numpy(run, tmp_path):
    checkpoint, dataset = run
    result = evaluate_forces(checkpoint, dataset.path, split="test", device="cpu", parity_png=tmp_path / "p.png")
    # independent reference: the model in float64, shift included, autograd forces
    model, meta = load_model(checkpoint, task="forces")
    model = model.double()
    test = dataset.splits["test"]
    types = torch.tensor([[1, 6, 8].index(z) for z in dataset.atomic_numbers]).expand(test.n_frames, -1)
    energy, forces = model(torch.tensor(test.positions), types)
    energy, forces = energy.detach().numpy(), forces.detach().numpy()
    error = forces - test.forces
    assert result.n_frames == 12 and result.n_atoms == 9 and result.split == "test"
    assert result.force_mae_mev_per_a == pytest.approx(np.abs(error).mean() * KCAL_MEV, rel=1e-5)
    assert result.force_rmse_mev_per_a == pytest.approx(np.sqrt((error**2).mean()) * KCAL_MEV, rel=1e-5)
    cosines = [np.dot(p, r) / np.linalg.norm(p) / np.linalg.norm(r)
               for p, r in zip(forces.reshape(-1, 3), test.forces.reshape(-1, 3))]
    assert result.force_cosine_similarity == pytest.approx(np.mean(cosines), abs=1e-5)
    assert result.energy_mae_mev == pytest.approx(np.abs(energy - test.energies).mean() * KCAL_MEV, rel=1e-4)
    hydrogens = dataset.atomic_numbers == 1
    assert result.per_element_force_mae_mev_per_a["H"] == pytest.approx(
        np.abs(error[:, hydrogens]).mean() * KCAL_MEV, rel=1e-5)
    assert result.energy_trained is False
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = result.to_dict()
    assert data["parity_plot"] == str(tmp_path / "p.png") and data["model_molecule"] == "ethanol"
    # another split gives other numbers
    assert evaluate_forces(checkpoint, dataset, split="val", device="cpu").force_mae_mev_per_a != data[
        "force_mae_mev_per_a"]


def test_force_metrics_known_answer():
    reference = np.array([[[3.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    predicted = np.array([[[0.0, 3.0, 0.0], [0.0, 0.0, 2.0]]])
    m = force_metrics(reference, predicted)
    assert m["mae"] == pytest.approx(7.0 / 6.0)
    assert m["rmse"] == pytest.approx(np.sqrt(19.0 / 6.0))
    assert m["cosine"] == pytest.approx(0.5)  # orthogonal (0) and parallel (1)


def test_bad_inputs(run, tmp_path):
    checkpoint, dataset = run
    with pytest.raises(ConfigError, match="unknown split 'validation'"):
        evaluate_forces(checkpoint, dataset, split="validation", device="cpu")
    nitrogen = ForcesDataset("ethanol", np.where(dataset.atomic_numbers == 8, 7, dataset.atomic_numbers),
                             dataset.splits, dataset.metadata, Path("n.npz"))
    with pytest.raises(InputFileError, match=r"n.npz \(test\): atom 3 is N, but the model knows only H, C, O"):
        evaluate_forces(checkpoint, nitrogen, device="cpu")
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(Path(checkpoint).read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="damaged.safetensors"):
        evaluate_forces(damaged, dataset, device="cpu")
    plot = tmp_path / "never.png"
    with pytest.raises(InputFileError):
        evaluate_forces(checkpoint, tmp_path / "missing.npz", device="cpu", parity_png=plot)
    assert not plot.exists()


def test_files_of_frames_are_evaluated_whole(run, tmp_path, md17_50):
    """A user's own labelled frames (an MD17 npz, an extended XYZ with energy and forces) need no dataset: all
    their frames are evaluated, with the numbers a dataset holding the same frames as its test split gives."""
    checkpoint, _ = run
    whole = build_md17_dataset("ethanol", source=md17_50, seed=1, n_train=0, n_val=0, n_test=50,
                               output=tmp_path / "whole.npz")
    expected = evaluate_forces(checkpoint, whole.path, device="cpu")
    direct = evaluate_forces(checkpoint, md17_50, device="cpu")
    assert direct.n_frames == 50 and direct.dataset == str(md17_50)
    assert direct.force_mae_mev_per_a == pytest.approx(expected.force_mae_mev_per_a, rel=1e-9)
    assert direct.energy_mae_mev == pytest.approx(expected.energy_mae_mev, rel=1e-9)
    from gaatool.io.xyz import XYZFrame, write_extxyz
    from gaatool.tasks.forces.md17 import read_molecular_file

    data = read_molecular_file(md17_50)
    xyz = tmp_path / "frames.extxyz"
    symbols = np.array(["H", "C", "O"])[[[1, 6, 8].index(z) for z in data.atomic_numbers]]
    write_extxyz(xyz, [XYZFrame(symbols, p, info={"energy": float(e)}, arrays={"forces": f})
                       for p, e, f in zip(data.positions[:10], data.energies[:10], data.forces[:10])])
    first_ten = evaluate_forces(checkpoint, xyz, device="cpu")
    assert first_ten.n_frames == 10 and first_ten.force_mae_mev_per_a > 0
    with pytest.raises(ConfigError, match="a file of frames, not a dataset.*leave out --split"):
        evaluate_forces(checkpoint, md17_50, split="val", device="cpu")
    unlabelled = tmp_path / "bare.xyz"
    write_extxyz(unlabelled, [XYZFrame(symbols, data.positions[0])])
    with pytest.raises(InputFileError, match="frame 0 has no numeric energy"):
        evaluate_forces(checkpoint, unlabelled, device="cpu")


def test_rmd17_files_are_evaluated_against_the_labels_the_model_learned(run, rmd17_50, tmp_path):
    """An rMD17 npz holds its own labels and the original MD17 ones (old_*), which differ by far more than a
    model's error: a model trained on MD17 is measured against the MD17 labels unless --labels says otherwise."""
    from gaatool.checkpoint import update_metadata
    from gaatool.tasks.forces.md17 import read_molecular_file

    checkpoint, _ = run
    auto = evaluate_forces(checkpoint, rmd17_50, device="cpu")
    md17 = evaluate_forces(checkpoint, rmd17_50, device="cpu", labels="md17")
    own = evaluate_forces(checkpoint, rmd17_50, device="cpu", labels="rmd17")
    assert auto.to_dict()["labels"] == "md17" and own.to_dict()["labels"] == "rmd17"
    assert auto.force_mae_mev_per_a == md17.force_mae_mev_per_a != own.force_mae_mev_per_a
    old = read_molecular_file(rmd17_50, labels="md17")
    new = read_molecular_file(rmd17_50)
    assert not np.allclose(old.forces, new.forces) and np.array_equal(old.positions, new.positions)
    # a model trained on rMD17 labels is measured against them
    revised = tmp_path / "revised.safetensors"
    revised.write_bytes(Path(checkpoint).read_bytes())
    update_metadata(revised, {"data": {"provenance": {"revised": True}}})
    assert evaluate_forces(revised, rmd17_50, device="cpu").to_dict()["labels"] == "rmd17"
    with pytest.raises(ConfigError, match="--labels must be"):
        evaluate_forces(checkpoint, rmd17_50, device="cpu", labels="dft")


def test_labels_or_positions_in_other_units_are_flagged(tiny_force_field, md17_50, tmp_path):
    """Labels in eV (what ASE stores) or positions in bohr give errors of ~1000 meV/Å: say why, not only the number."""
    from gaatool.tasks.forces.predict import ForceFieldPredictor

    predictor = ForceFieldPredictor(tiny_force_field, {"formula": "C2H6O"}, device="cpu", compile="off")
    with np.load(md17_50) as npz:
        positions, z = npz["R"][:6], npz["z"]
    energies, forces = predictor.predict(positions, z)

    def frames(name, positions=positions, energies=energies, forces=forces):
        np.savez(tmp_path / name, R=positions, z=z, E=energies[:, None], F=forces)
        return evaluate_forces(predictor, tmp_path / name, device="cpu")

    exact = frames("exact.npz")
    assert exact.force_mae_mev_per_a == pytest.approx(0, abs=1e-9) and exact.to_dict()["warnings"] == []
    ev = frames("ev.npz", energies=energies * 0.0433641, forces=forces * 0.0433641).to_dict()["warnings"]
    assert len(ev) == 2 and "ev.npz: the reference forces are 0.0434 times the predicted ones (as eV/Å" in ev[0]
    assert "reference energies are 0.0434 times the predicted ones (as eV would be)" in ev[1]
    bohr = frames("bohr.npz", positions=positions / 0.529177).to_dict()["warnings"]
    assert len(bohr) == 1 and "bohr.npz (test): frame 0: no two atoms are closer than" in bohr[0]
