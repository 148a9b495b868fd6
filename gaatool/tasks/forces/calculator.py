"""An ASE calculator for gaatool force fields, for molecular dynamics with a trained model.

``ase`` is optional (``pip install gaatool[ase]``); it is imported when the
calculator is first used, not when gaatool is imported.

>>> from gaatool.tasks.forces.calculator import GaaCalculator  # doctest: +SKIP
>>> atoms.calc = GaaCalculator("pretrained/forces-ethanol.safetensors")  # doctest: +SKIP
>>> atoms.get_potential_energy()  # eV  # doctest: +SKIP

Units: ASE works in eV and Å, the models in kcal/mol and Å, converted with
``ase.units.kcal / ase.units.mol`` (1 kcal/mol = 0.0433641 eV).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ...errors import GaatoolError, InputFileError

__all__ = ["GaaCalculator", "MissingDependencyError", "kcal_per_mol_in_ev"]


class MissingDependencyError(GaatoolError, ImportError):
    """An optional dependency (here: ase) is not installed."""


def _ase():
    try:
        import ase.calculators.calculator as calculator
        import ase.units as units
    except ImportError as err:
        raise MissingDependencyError(
            "the ASE calculator needs the ase package; install it with `pip install ase` "
            "(or `pip install gaatool[ase]`)") from err
    return calculator, units


def kcal_per_mol_in_ev() -> float:
    """1 kcal/mol in eV, from ASE's constants (0.0433641...)."""
    _, units = _ase()
    return float(units.kcal / units.mol)


def _make_class():
    calculator, units = _ase()
    kcal_mol = float(units.kcal / units.mol)

    class GaaCalculator(calculator.Calculator):
        """ASE calculator: energy (eV) and forces (eV/Å) of a gaatool force field.

        Parameters
        ----------
        checkpoint_or_model : path, ForceField, ForceFieldPredictor or None
            A ``forces`` checkpoint, a model, or a loaded predictor; None (default): the pretrained
            model of the first atoms' molecule (``pretrained/forces-<molecule>.safetensors``, as
            ``gaatool predict forces`` picks it), loaded on the first calculation.
        device : str
            ``cpu`` (default), ``cuda``, ``cuda:N`` or ``auto``.
        dtype : str
            ``float64`` (default: energy conservation in MD wants double
            precision) or ``float32``.
        compile : str
            ``auto`` (default), ``on`` or ``off``: torch.compile energies and
            forces (~1.35x faster per step on the CPU after ~40 s of compiling with an empty
            compile cache, ``python -m benchmarks.bench_md_loop``);
            ``auto`` compiles on the CPU after 10000 calls, for molecules of at
            most 12 atoms, so long runs gain and short ones do not wait.

        The atoms must be a non-periodic molecule whose elements the model
        knows; anything else raises :class:`gaatool.errors.InputFileError`.
        """

        implemented_properties = ["energy", "free_energy", "forces"]
        default_parameters: dict[str, Any] = {}

        def __init__(self, checkpoint_or_model=None, device: str = "cpu", dtype: str = "float64",
                     compile: str = "auto", **kwargs):
            super().__init__(**kwargs)
            from ...models.forces import ForceField
            from .predict import ForceFieldPredictor

            self.predictor = None
            self._options = {"device": device, "dtype": dtype, "batch_size": 1, "compile": compile}
            if checkpoint_or_model is None:
                pass  # the pretrained model of the atoms' molecule, chosen in calculate()
            elif isinstance(checkpoint_or_model, ForceFieldPredictor):
                self.predictor = checkpoint_or_model
            elif isinstance(checkpoint_or_model, ForceField):
                self.predictor = ForceFieldPredictor(checkpoint_or_model, device=device, dtype=dtype, batch_size=1,
                                                     compile=compile)
            elif isinstance(checkpoint_or_model, (str, os.PathLike)):
                self.predictor = ForceFieldPredictor.from_checkpoint(checkpoint_or_model, device=device,
                                                                     dtype=dtype, batch_size=1, compile=compile)
            else:
                raise InputFileError(f"GaaCalculator needs a checkpoint path or a ForceField, "
                                     f"not {type(checkpoint_or_model).__name__}")

        def calculate(self, atoms=None, properties=("energy", "forces"), system_changes=calculator.all_changes):
            super().calculate(atoms, properties, system_changes)
            if np.any(self.atoms.pbc):
                raise InputFileError("atoms are periodic (pbc set); the molecular force field treats "
                                     "isolated molecules only; set atoms.pbc = False")
            if self.predictor is None:
                from .predict import ForceFieldPredictor, default_checkpoint, hill_formula

                checkpoint = default_checkpoint([hill_formula(self.atoms.numbers)])
                self.predictor = ForceFieldPredictor.from_checkpoint(checkpoint, **self._options)
            # Forces are always computed: they cost one backward pass and MD asks for them next.
            energies, forces = self.predictor.predict(self.atoms.get_positions()[None], self.atoms.numbers,
                                                      where="atoms")
            self.results["energy"] = float(energies[0]) * kcal_mol
            self.results["free_energy"] = self.results["energy"]
            self.results["forces"] = forces[0] * kcal_mol

    return GaaCalculator


def __getattr__(name: str):
    # The class subclasses ase's Calculator, so it is made on first use: importing this module needs no ase.
    if name == "GaaCalculator":
        cls = _make_class()
        globals()["GaaCalculator"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
