"""How the relaxation's settings trade accuracy for ideal geometry, on one split of a dataset.

    python -m gaatool.tasks.backmap.relax_sweep CHECKPOINT DATASET [--split val] [--restraints 0.02,0.1,0.5,2]
        [--overlaps 0] [--angle-weights 1] [--chiral-weights 1] [--trans-weights 1]
        [--side-chain-angle-weights 1] [--no-clashes]

For each restraint weight, clash overlap, angle, chirality and trans-peptide weight: heavy-atom, backbone and
side-chain RMSD (Å), mean absolute intra-residue bond deviation (Å), mean peptide C-N length (Å),
clashes and inverted chiral centres, then the unrelaxed prediction. This is how the defaults of
:mod:`~gaatool.tasks.backmap.relax` (``RESTRAINT``, ``TARGET_OVERLAP_A``, ``ANGLE_WEIGHT``, ``SIDE_CHAIN_ANGLE_WEIGHT``,
``CHIRAL_WEIGHT``, ``TRANS_WEIGHT``) were chosen (model cards of the backmapping models).
"""
from __future__ import annotations

import argparse
import itertools
import sys

from ...errors import GaatoolError
from .evaluate import evaluate_backmap
from .relax import ANGLE_WEIGHT, CHIRAL_WEIGHT, RESTRAINT, SIDE_CHAIN_ANGLE_WEIGHT, TARGET_OVERLAP_A, TRANS_WEIGHT


def sweep(checkpoint: str, dataset: str, split: str = "val", restraints=(0.02, 0.1, 0.5, 2.0),
          overlaps=(TARGET_OVERLAP_A,), angle_weights=(ANGLE_WEIGHT,), chiral_weights=(CHIRAL_WEIGHT,),
          trans_weights=(TRANS_WEIGHT,), clashes: bool = True, disulfides: bool = True,
          device: str = "cpu", side_chain_angle_weights=(SIDE_CHAIN_ANGLE_WEIGHT,)) -> list[dict]:
    """One row per (restraint weight, overlap, angle, chirality, trans and side-chain angle weight), then
    one with ``restraint`` None: no relaxation."""
    settings = list(itertools.product(restraints, overlaps if clashes else [None], angle_weights, chiral_weights,
                                      trans_weights, side_chain_angle_weights))
    rows = []
    for weight, overlap, angle_weight, chiral_weight, trans_weight, side_weight in [*settings, (None,) * 6]:
        options = {"restraint": weight, "clashes": clashes, "disulfides": disulfides, "angle_weight": angle_weight,
                   "chiral_weight": chiral_weight, "trans_weight": trans_weight,
                   "side_chain_angle_weight": side_weight}
        if overlap is not None:
            options["overlap"] = overlap
        result = evaluate_backmap(checkpoint, dataset, split=split, device=device, relax=weight is not None,
                                  relax_options=options).to_dict()
        rows.append({"restraint": weight, "overlap": overlap, "angle_weight": angle_weight,
                     "chiral_weight": chiral_weight, "trans_weight": trans_weight,
                     "side_chain_angle_weight": side_weight, "crowded": result["crowding"]["pairs"],
                     "inverted": result["chirality"]["inverted"],
                     "disulfides": f"{result['disulfides']['formed']}/{result['disulfides']['reference']}",
                     "rmsd_a": result["rmsd_a"], "backbone_rmsd_a": result["backbone_rmsd_a"],
                     "sidechain_rmsd_a": result["sidechain_rmsd_a"],
                     "bond_abs_dev_a": result["bonds"]["intra_residue"]["mean_abs_deviation_a"],
                     "peptide_a": result["bonds"]["peptide"]["mean_length_a"],
                     "clashes": result["clashes"]["predicted"]})
    return rows


def _numbers(text: str) -> list[float]:
    """Comma-separated numbers (an argparse type: a bad one is a usage error)."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("dataset")
    parser.add_argument("--split", default="val")
    parser.add_argument("--restraints", type=_numbers, default=f"{RESTRAINT:g},0.1,0.5,2")
    parser.add_argument("--overlaps", type=_numbers, default=f"{TARGET_OVERLAP_A:g}",
                        help="van der Waals overlaps left by the clash terms (Å)")
    parser.add_argument("--angle-weights", type=_numbers, default=f"{ANGLE_WEIGHT:g}",
                        help="weights of the backbone angle terms (0: none)")
    parser.add_argument("--chiral-weights", type=_numbers, default=f"{CHIRAL_WEIGHT:g}",
                        help="weights of the chirality terms (0: none)")
    parser.add_argument("--trans-weights", type=_numbers, default=f"{TRANS_WEIGHT:g}",
                        help="weights of the trans-peptide terms (0: none)")
    parser.add_argument("--side-chain-angle-weights", type=_numbers, default=f"{SIDE_CHAIN_ANGLE_WEIGHT:g}",
                        help="weights of the side-chain angle terms (0: none)")
    parser.add_argument("--no-clashes", action="store_true", help="no clash terms")
    parser.add_argument("--no-disulfides", action="store_true", help="no disulfide bonds")
    args = parser.parse_args(argv)
    try:
        rows = sweep(args.checkpoint, args.dataset, args.split, args.restraints, args.overlaps, args.angle_weights,
                     args.chiral_weights, args.trans_weights, clashes=not args.no_clashes,
                     disulfides=not args.no_disulfides, side_chain_angle_weights=args.side_chain_angle_weights)
    except GaatoolError as err:  # bad files: one line, like the CLI
        sys.exit(f"error: {err}")
    for row in rows:
        if row["restraint"] is None:
            setting = "raw"
        else:
            overlap = "no clash terms" if row["overlap"] is None else f"overlap {row['overlap']:g}"
            setting = (f"restraint {row['restraint']:g}, {overlap}, angles {row['angle_weight']:g}, "
                       f"chirality {row['chiral_weight']:g}, trans {row['trans_weight']:g}, "
                       f"side-chain angles {row['side_chain_angle_weight']:g}")
        print(f"{setting}: RMSD {row['rmsd_a']:.3f} A, backbone {row['backbone_rmsd_a']:.3f}, side chains "
              f"{row['sidechain_rmsd_a']:.3f}, bonds {row['bond_abs_dev_a']:.4f}, peptide {row['peptide_a']:.3f}, "
              f"clashes {row['clashes']}, crowded pairs {row['crowded']}, inverted centres {row['inverted']}, disulfides {row['disulfides']}")


if __name__ == "__main__":
    main()
