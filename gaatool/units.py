"""Unit constants. Values crossing a file or CLI boundary carry their unit in their name."""

__all__ = ["KCAL_PER_MOL_IN_MEV", "EV_IN_MEV", "KCAL_PER_MOL_IN_EV", "kcal_per_mol_to_mev", "in_kcal_per_mol"]

#: 1 kcal/mol expressed in meV (per particle), as used for MD17 benchmarks.
KCAL_PER_MOL_IN_MEV = 43.364
EV_IN_MEV = 1000.0
#: 1 kcal/mol in eV.
KCAL_PER_MOL_IN_EV = KCAL_PER_MOL_IN_MEV / EV_IN_MEV

#: Energy units that files name (extended XYZ ``energy_unit=``), in kcal/mol.
ENERGY_UNITS_IN_KCAL_PER_MOL = {"kcal/mol": 1.0, "eV": 1.0 / KCAL_PER_MOL_IN_EV, "meV": 1.0 / KCAL_PER_MOL_IN_MEV,
                                "kJ/mol": 1.0 / 4.184, "Hartree": 627.509474, "Ha": 627.509474}
_PER_ANGSTROM = ("/A", "/Å", "/Ang", "/Angstrom")
_BOHR_IN_A = 0.529177210903


def _force_units() -> dict[str, float]:
    units = {}
    for name, value in ENERGY_UNITS_IN_KCAL_PER_MOL.items():
        units.update({name + per: value for per in _PER_ANGSTROM})
        units[name + "/Bohr"] = units[name + "/bohr"] = value / _BOHR_IN_A
    return units


#: Force units that files name (extended XYZ ``forces_unit=``), in kcal/mol/Å.
FORCE_UNITS_IN_KCAL_PER_MOL_A = _force_units()


def kcal_per_mol_to_mev(value):
    """Convert kcal/mol (or kcal/mol/A) to meV (or meV/A).

    >>> round(kcal_per_mol_to_mev(1.0), 3)
    43.364
    """
    return value * KCAL_PER_MOL_IN_MEV


def in_kcal_per_mol(unit: str, forces: bool = False) -> float | None:
    """How many kcal/mol (kcal/mol/Å with ``forces``) one ``unit`` is; None for a unit not known here.

    >>> in_kcal_per_mol("eV") == 1 / KCAL_PER_MOL_IN_EV, in_kcal_per_mol("kcal/mol/A", forces=True)
    (True, 1.0)
    """
    table = FORCE_UNITS_IN_KCAL_PER_MOL_A if forces else ENERGY_UNITS_IN_KCAL_PER_MOL
    return table.get(str(unit).strip())
