"""Build a molecule's training pool and held-out test set from rMD17's trajectory-wide frames (original MD17 labels).

Source: rmd17_<molecule>_train_01.npz (rMD17 split 01, GitHub andersx/rmd17-npz commit 4f6bb0a1,
CC0 1.0; provenance as for the ethanol inputs). Its ``old_*`` fields are the ORIGINAL MD17 labels
(DFT PBE+vdW-TS) of 1000 frames sampled over the whole MD17 trajectory; ``coords`` are those frames.

Output (sGDML npz layout R, E, F, z with the sGDML fingerprint in ``md5``), in this folder:
* <molecule>_md17_test_200.npz: 200 of the 1000 frames (seeded), never used for training.
* <molecule>_md17_pool.npz: the other 800 frames.

    python make_trajectory_inputs.py aspirin RMD17_TRAIN_01.npz
"""
import sys
from pathlib import Path

import numpy as np

from gaatool.tasks.forces.md17 import sgdml_fingerprint

HERE = Path(__file__).resolve().parent
TEST_FRAMES = 200


def save(path, z, R, E, F, name):
    E = E.reshape(-1, 1).astype("<f8")
    R, F = R.astype("<f8"), F.astype("<f8")
    z = z.astype(np.uint8)
    np.savez(path, R=R, E=E, F=F, z=z, name=np.array(name), theory=np.array("PBE+vdW-TS (original MD17)"),
             md5=np.array(sgdml_fingerprint(z, R, E, F)))


def main(molecule, rmd17_path):
    rmd17 = np.load(rmd17_path)
    z = rmd17["nuclear_charges"]
    order = np.random.default_rng(17).permutation(len(rmd17["old_indices"]))
    test, rest = np.sort(order[:TEST_FRAMES]), np.sort(order[TEST_FRAMES:])
    for frames, stem in ((test, f"{molecule}_md17_test_{TEST_FRAMES}"), (rest, f"{molecule}_md17_pool")):
        save(HERE / f"{stem}.npz", z, rmd17["coords"][frames], rmd17["old_energies"][frames],
             rmd17["old_forces"][frames], stem)
    print(f"test frames {len(test)}, pool frames {len(rest)} (all trajectory-wide)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
