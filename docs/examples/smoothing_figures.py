"""The neighbour-averaging figures quoted in docs/crystal.md, README.md and pretrained/crystal.md.

Shipped crystal model, fraction of particles labelled right with the model alone (``--smooth 0``), one
round of averaging (the default, own probabilities weighing 4) and one round with equal weights, on
the frames of tests/test_pretrained.py: bulk replicas at noise 0.1 and random close-packed stackings
at noise 0.08. Run from the repository root (it uses the tests' stacking builder):

    python docs/examples/smoothing_figures.py
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

import gaatool.tasks.crystal.smoothing as smoothing  # noqa: E402
from gaatool.io.frame import Frame  # noqa: E402
from gaatool.tasks.crystal.dataset import add_noise, perfect_crystal  # noqa: E402
from gaatool.tasks.crystal.identify import Identifier, default_crystal_checkpoint  # noqa: E402
from gaatool.tasks.crystal.prototypes import prototype_cell  # noqa: E402
from test_pretrained import _close_packed  # noqa: E402

STACKINGS = ("ACBCBABCBCBACABCBABABCBCABACAB", "ACBACBACABCBCACABABCBACBABCBAB", "ABCBACABCACACBCABACBACBCBCBCBC")


def right(frame, truth, smooth, self_weight):
    smoothing.SELF_WEIGHT = self_weight
    identifier = Identifier(default_crystal_checkpoint(), device="cpu", smooth=smooth)
    return float(np.mean(np.array(identifier.class_names)[identifier.label(frame).labels] == truth))


def main() -> None:
    print(f"{'frame':34s} alone  averaged  equal weights")
    for name in ("cF4-Cu", "hP2-Mg", "cI2-W", "cP46-Si", "cF136-Si"):  # as in the tests
        supercell, _ = perfect_crystal(prototype_cell(name), 2048, 12, 0.1)
        positions = add_noise(supercell.positions, 0.1, np.random.default_rng(5))
        frame = Frame(positions, supercell.lattice, supercell.types, list(supercell.type_names))
        truth = np.array([name] * len(positions))
        print(f"{name + ' noise 0.1':34s} {right(frame, truth, 0, 4.0):.4f} {right(frame, truth, 1, 4.0):.4f}"
              f"    {right(frame, truth, 1, 1.0):.4f}")
    for stacking in STACKINGS:
        n = len(stacking)
        names = np.array(["hP2-Mg" if stacking[k - 1] == stacking[(k + 1) % n] else "cF4-Cu" for k in range(n)])
        positions, lattice, layers = _close_packed(stacking, 0.08)
        frame = Frame(positions * 3.0, lattice * 3.0, np.zeros(len(positions), dtype=np.int64), ["Ar"])
        print(f"{stacking:34s} {right(frame, names[layers], 0, 4.0):.4f} {right(frame, names[layers], 1, 4.0):.4f}"
              f"    {right(frame, names[layers], 1, 1.0):.4f}")


if __name__ == "__main__":
    main()
