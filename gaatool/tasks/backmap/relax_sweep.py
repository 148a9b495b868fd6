"""How the relaxation's restraint weight trades accuracy for ideal bonds, on one split of a dataset.

    python -m gaatool.tasks.backmap.relax_sweep CHECKPOINT DATASET [--split val] [--restraints 0.02,0.1,0.5,2]

For each weight: heavy-atom and side-chain RMSD (Å), mean absolute intra-residue bond deviation (Å),
mean peptide C-N length (Å) and clashes, then the unrelaxed prediction. This is how
:data:`~gaatool.tasks.backmap.relax.RESTRAINT` was chosen (model cards of the backmapping models).
"""
from __future__ import annotations

import argparse
import sys

from ...errors import GaatoolError
from . import relax
from .evaluate import evaluate_backmap


def sweep(checkpoint: str, dataset: str, split: str = "val", restraints=(0.02, 0.1, 0.5, 2.0),
          device: str = "cpu") -> list[dict]:
    """One row per restraint weight (``restraint`` None: no relaxation)."""
    rows = []
    default = relax.relax_positions.__defaults__
    try:
        for weight in [*restraints, None]:
            if weight is not None:  # evaluate_backmap relaxes with relax_positions' default weight
                relax.relax_positions.__defaults__ = (float(weight), *default[1:])
            result = evaluate_backmap(checkpoint, dataset, split=split, device=device, relax=weight is not None)
            bonds = result.to_dict()["bonds"]
            rows.append({"restraint": weight, "rmsd_a": result.rmsd_a, "sidechain_rmsd_a": result.sidechain_rmsd_a,
                         "bond_abs_dev_a": bonds["intra_residue"]["mean_abs_deviation_a"],
                         "peptide_a": bonds["peptide"]["mean_length_a"],
                         "clashes": result.to_dict()["clashes"]["predicted"]})
    finally:
        relax.relax_positions.__defaults__ = default
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("dataset")
    parser.add_argument("--split", default="val")
    parser.add_argument("--restraints", default="0.02,0.1,0.5,2")
    args = parser.parse_args(argv)
    try:
        rows = sweep(args.checkpoint, args.dataset, args.split, [float(w) for w in args.restraints.split(",")])
    except (GaatoolError, ValueError) as err:  # bad files or weights: one line, like the CLI
        sys.exit(f"error: {err}")
    for row in rows:
        weight = "raw" if row["restraint"] is None else f"{row['restraint']:g}"
        print(f"restraint {weight}: RMSD {row['rmsd_a']:.3f} A, side chains {row['sidechain_rmsd_a']:.3f}, "
              f"bonds {row['bond_abs_dev_a']:.4f}, peptide {row['peptide_a']:.3f}, clashes {row['clashes']}")


if __name__ == "__main__":
    main()
