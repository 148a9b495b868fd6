"""Unit constants. Values crossing a file or CLI boundary carry their unit in their name."""

__all__ = ["KCAL_PER_MOL_IN_MEV", "EV_IN_MEV", "kcal_per_mol_to_mev"]

#: 1 kcal/mol expressed in meV (per particle), as used for MD17 benchmarks.
KCAL_PER_MOL_IN_MEV = 43.364
EV_IN_MEV = 1000.0
#: 1 kcal/mol in eV.
KCAL_PER_MOL_IN_EV = KCAL_PER_MOL_IN_MEV / EV_IN_MEV


def kcal_per_mol_to_mev(value):
    """Convert kcal/mol (or kcal/mol/A) to meV (or meV/A).

    >>> round(kcal_per_mol_to_mev(1.0), 3)
    43.364
    """
    return value * KCAL_PER_MOL_IN_MEV
