"""The ASE calculator: units, forces = -grad E, energy conservation in a short NVE run, bad atoms."""
from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("ase")
from ase import Atoms, units  # noqa: E402
from ase.md.velocitydistribution import Stationary, ZeroRotation  # noqa: E402
from ase.md.verlet import VelocityVerlet  # noqa: E402

from gaatool.checkpoint import save_checkpoint  # noqa: E402
from gaatool.errors import InputFileError  # noqa: E402
from gaatool.tasks.forces import calculator as calculator_module  # noqa: E402
from gaatool.tasks.forces.calculator import GaaCalculator, MissingDependencyError  # noqa: E402
from gaatool.tasks.forces.predict import ForceFieldPredictor  # noqa: E402


@pytest.fixture(scope="module")
def ethanol(md17_50):
    """``ethanol(frame=0) -> Atoms``: a frame of the real MD17 ethanol fixture."""
    with np.load(md17_50) as npz:
        numbers, positions = npz["z"], npz["R"]
    return lambda frame=0: Atoms(numbers=numbers, positions=positions[frame])


def test_units_are_ev(tiny_force_field, ethanol, tmp_path):
    path = tmp_path / "ff.safetensors"
    save_checkpoint(path, tiny_force_field, {"task": "forces"})
    atoms = ethanol(3)
    atoms.calc = GaaCalculator(path, dtype="float64")
    energy_kcal, forces_kcal = ForceFieldPredictor(tiny_force_field, device="cpu", dtype="float64").predict(
        atoms.positions, atoms.numbers)
    factor = units.kcal / units.mol
    assert factor == pytest.approx(0.0433641, rel=1e-6)
    assert calculator_module.kcal_per_mol_in_ev() == factor
    assert atoms.get_potential_energy() == pytest.approx(energy_kcal[0] * factor, rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), forces_kcal[0] * factor, rtol=1e-12, atol=1e-14)


def test_forces_are_minus_the_gradient_of_the_ase_energy(tiny_force_field, ethanol):
    atoms = ethanol(7)
    atoms.calc = GaaCalculator(tiny_force_field)
    forces = atoms.get_forces()
    h = 1e-5
    for atom, axis in ((0, 0), (2, 1), (5, 2)):
        plus, minus = atoms.copy(), atoms.copy()
        plus.calc = minus.calc = GaaCalculator(tiny_force_field)
        plus.positions[atom, axis] += h
        minus.positions[atom, axis] -= h
        numeric = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
        assert forces[atom, axis] == pytest.approx(numeric, abs=1e-6)


def _nve(atoms: Atoms, calc, steps: int = 150, dt_fs: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    atoms.calc = calc
    # Maxwell-Boltzmann momenta at 300 K, seeded (ase's own helper is renamed across versions)
    masses = atoms.get_masses()[:, None]
    atoms.set_momenta(np.random.default_rng(0).normal(size=(len(atoms), 3)) * np.sqrt(masses * units.kB * 300))
    Stationary(atoms)
    ZeroRotation(atoms)
    total, kinetic = [], []
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    dyn.attach(lambda: (total.append(atoms.get_total_energy()), kinetic.append(atoms.get_kinetic_energy())))
    dyn.run(steps)
    return np.array(total), np.array(kinetic)


def test_nve_conserves_total_energy(tiny_force_field, ethanol):
    total, kinetic = _nve(ethanol(0), GaaCalculator(tiny_force_field))
    assert kinetic.std() > 1e-3  # the molecule moves: kinetic energy exchanges with potential energy
    # velocity Verlet at 0.25 fs: the total stays within 2% of the kinetic fluctuations (measured: 0.8%)
    assert np.abs(total - total[0]).max() < 0.02 * kinetic.std()

    class NonConservative(GaaCalculator):
        def calculate(self, *args, **kwargs):
            super().calculate(*args, **kwargs)
            self.results["forces"] = self.results["forces"] * 1.05

    # the bound is tight enough to catch forces 5% off -dE/dr (measured: 14%)
    total, kinetic = _nve(ethanol(0), NonConservative(tiny_force_field))
    assert np.abs(total - total[0]).max() > 0.02 * kinetic.std()


def test_bad_atoms(tiny_force_field, ethanol):
    atoms = ethanol()
    atoms.pbc = True
    atoms.cell = [10, 10, 10]
    atoms.calc = GaaCalculator(tiny_force_field)
    with pytest.raises(InputFileError, match="periodic"):
        atoms.get_potential_energy()
    ammonia = Atoms("NH3", positions=[[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    ammonia.calc = GaaCalculator(tiny_force_field)
    with pytest.raises(InputFileError, match="atom 1 is N, but the model knows only H, C, O"):
        ammonia.get_forces()
    with pytest.raises(InputFileError, match="not int"):
        GaaCalculator(42)


def test_missing_ase_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ase.calculators.calculator", None)
    with pytest.raises(MissingDependencyError, match="pip install ase"):
        calculator_module.kcal_per_mol_in_ev()
    with pytest.raises(ImportError):  # also an ImportError, for code that checks optional imports
        calculator_module._make_class()


def test_non_finite_or_no_atoms_are_clear_errors(tiny_force_field, ethanol):
    """An MD run that blew up must stop, not carry NaN energies and forces on."""
    atoms = ethanol()
    atoms.positions[3, 0] = np.nan
    atoms.calc = GaaCalculator(tiny_force_field)
    with pytest.raises(InputFileError, match=r"^atoms: positions are not finite"):
        atoms.get_forces()
    empty = Atoms()
    empty.calc = GaaCalculator(tiny_force_field)
    with pytest.raises(InputFileError, match="no atoms"):
        empty.get_potential_energy()


def test_without_a_checkpoint_the_molecule_s_pretrained_model_is_used(ethanol):
    """GaaCalculator() needed a checkpoint path (a TypeError without one); now it picks the pretrained model of
    the atoms' molecule on the first calculation, as `gaatool predict forces` does."""
    from gaatool.tasks.pretrained import pretrained_path

    pretrained = pretrained_path("forces-ethanol.safetensors")
    default, explicit = ethanol(5), ethanol(5)
    default.calc, explicit.calc = GaaCalculator(), GaaCalculator(pretrained)
    assert default.get_potential_energy() == explicit.get_potential_energy()
    np.testing.assert_array_equal(default.get_forces(), explicit.get_forces())
