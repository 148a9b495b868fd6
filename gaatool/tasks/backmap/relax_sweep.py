"""How the relaxation's settings trade accuracy for ideal geometry, on one split of a dataset.

    python -m gaatool.tasks.backmap.relax_sweep CHECKPOINT DATASET [--split val] [--restraints 0.02,0.1,0.5,2]
        [--overlaps 0] [--no-clashes]

For each restraint weight and clash overlap: heavy-atom and side-chain RMSD (Å), mean absolute
intra-residue bond deviation (Å), mean peptide C-N length (Å) and clashes, then the unrelaxed
prediction. This is how :data:`~gaatool.tasks.backmap.relax.RESTRAINT` and
:data:`~gaatool.tasks.backmap.relax.TARGET_OVERLAP_A` were chosen (model cards of the backmapping models).
"""
from __future__ import annotations

import argparse
import sys

from ...errors import GaatoolError
from .evaluate import evaluate_backmap
from .relax import RESTRAINT, TARGET_OVERLAP_A


def sweep(checkpoint: str, dataset: str, split: str = "val", restraints=(0.02, 0.1, 0.5, 2.0),
          overlaps=(TARGET_OVERLAP_A,), clashes: bool = True, device: str = "cpu") -> list[dict]:
    """One row per (restraint weight, overlap), then one with ``restraint`` None: no relaxation."""
    settings = [(weight, overlap) for weight in restraints for overlap in (overlaps if clashes else [None])]
    rows = []
    for weight, overlap in [*settings, (None, None)]:
        options = {"restraint": weight, "clashes": clashes}
        if overlap is not None:
            options["overlap"] = overlap
        result = evaluate_backmap(checkpoint, dataset, split=split, device=device, relax=weight is not None,
                                  relax_options=options).to_dict()
        rows.append({"restraint": weight, "overlap": overlap, "rmsd_a": result["rmsd_a"],
                     "sidechain_rmsd_a": result["sidechain_rmsd_a"],
                     "bond_abs_dev_a": result["bonds"]["intra_residue"]["mean_abs_deviation_a"],
                     "peptide_a": result["bonds"]["peptide"]["mean_length_a"],
                     "clashes": result["clashes"]["predicted"]})
    return rows


def _numbers(text: str) -> list[float]:
    return [float(part) for part in text.split(",")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("dataset")
    parser.add_argument("--split", default="val")
    parser.add_argument("--restraints", default=f"{RESTRAINT:g},0.1,0.5,2")
    parser.add_argument("--overlaps", default=f"{TARGET_OVERLAP_A:g}", help="van der Waals overlaps left by the "
                        "clash terms (Å)")
    parser.add_argument("--no-clashes", action="store_true", help="relax bond lengths only")
    args = parser.parse_args(argv)
    try:
        rows = sweep(args.checkpoint, args.dataset, args.split, _numbers(args.restraints), _numbers(args.overlaps),
                     clashes=not args.no_clashes)
    except (GaatoolError, ValueError) as err:  # bad files or numbers: one line, like the CLI
        sys.exit(f"error: {err}")
    for row in rows:
        if row["restraint"] is None:
            setting = "raw"
        else:
            overlap = "bonds only" if row["overlap"] is None else f"overlap {row['overlap']:g}"
            setting = f"restraint {row['restraint']:g}, {overlap}"
        print(f"{setting}: RMSD {row['rmsd_a']:.3f} A, side chains {row['sidechain_rmsd_a']:.3f}, "
              f"bonds {row['bond_abs_dev_a']:.4f}, peptide {row['peptide_a']:.3f}, clashes {row['clashes']}")


if __name__ == "__main__":
    main()
