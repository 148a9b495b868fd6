"""Build the ethanol training pool and held-out test set (original MD17 labels, PBE+vdW-TS).

Sources (see shared data provenance, copied into this folder's README):
* md17_ethanol_2000.npz: MD17 ethanol frames 0-1999 (consecutive MD steps), sGDML npz.
* rmd17_ethanol_train_01.npz: rMD17 split-01 training frames; we use their `old_*` fields, i.e. the
  ORIGINAL MD17 geometry labels of 1000 frames sampled over the whole 555k-step MD17 trajectory.

Output (sGDML npz layout R, E, F, z with the sGDML fingerprint in `md5`):
* ethanol_md17_test_300.npz: 300 of the 1000 trajectory-wide frames, never used for training.
* ethanol_md17_pool.npz: the other 700 trajectory-wide frames plus the 2000 consecutive frames
  (the 6 frames present in both sources are kept once).

    python make_ethanol_inputs.py MD17_2000.npz RMD17_TRAIN_01.npz
"""
import sys
from pathlib import Path

import numpy as np

from make_trajectory_inputs import save  # the same sGDML npz writer (this folder)

HERE = Path(__file__).resolve().parent


def main(md17_path, rmd17_path):
    md17, rmd17 = np.load(md17_path), np.load(rmd17_path)
    assert np.array_equal(md17["z"], rmd17["nuclear_charges"])
    order = np.random.default_rng(17).permutation(len(rmd17["old_indices"]))
    test, rest = np.sort(order[:300]), np.sort(order[300:])
    save(HERE / "ethanol_md17_test_300.npz", md17["z"], rmd17["coords"][test], rmd17["old_energies"][test],
         rmd17["old_forces"][test], "ethanol_md17_test_300")
    overlap = set(rmd17["old_indices"][rest].tolist())
    keep = np.array([i for i in range(len(md17["R"])) if i not in overlap])
    R = np.concatenate([rmd17["coords"][rest], md17["R"][keep]])
    E = np.concatenate([rmd17["old_energies"][rest], md17["E"][keep].ravel()])
    F = np.concatenate([rmd17["old_forces"][rest], md17["F"][keep]])
    save(HERE / "ethanol_md17_pool.npz", md17["z"], R, E, F, "ethanol_md17_pool")
    print(f"test frames {len(test)}, pool frames {len(R)} ({len(rest)} trajectory-wide + {len(keep)} consecutive)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
