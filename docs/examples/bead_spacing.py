"""How far apart consecutive beads sit, by kind of bead: the rule `gaatool backmap` tells C-alpha traces by.

For every structure in the given folders (default: the training and external entries of the
pretrained backmapping models), the beads of each kind (centroid, centre of mass, C-alpha; as
``gaatool coarse-grain --bead`` makes them), as they are and with Gaussian noise of 0.1 and 0.3 Å
per coordinate (beads of a coarse-grained simulation), and the median and interquartile range of
the distances between peptide-bonded consecutive beads: their ranges over the entries, and how many
entries ``gaatool backmap`` takes for C-alpha traces (median at most ``CA_MEDIAN_A``, range at most
``CA_SPREAD_A``).

    python docs/examples/bead_spacing.py [FOLDER ...]
"""
import sys
from pathlib import Path

import numpy as np

from gaatool.errors import InputFileError
from gaatool.io.structure import read_structure
from gaatool.tasks.backmap.coarse_grain import BEAD_KINDS, bead_spacing, coarse_grain, spaced_like_ca_trace

NOISE_A = (0.0, 0.1, 0.3)

root = Path(__file__).resolve().parents[2]
folders = [Path(f) for f in sys.argv[1:]] or [root / "pretrained/inputs/pdb", root / "pretrained/inputs/pdb_external"]
rng = np.random.default_rng(0)
found = {(kind, noise): [] for kind in BEAD_KINDS for noise in NOISE_A}
for path in sorted(p for folder in folders for p in folder.iterdir() if not p.name.endswith((".md", ".txt"))):
    structure = read_structure(path)
    for kind in BEAD_KINDS:
        try:
            beads = coarse_grain(structure, kind)
        except InputFileError as error:  # a residue without its CA atom: no C-alpha trace of this entry
            print(f"skipped: {error}")
            continue
        for noise in NOISE_A:
            moved = beads.with_positions(beads.positions + rng.normal(0, noise, beads.positions.shape))
            if bead_spacing(moved) is not None:
                found[(kind, noise)].append((*bead_spacing(moved), spaced_like_ca_trace(moved)))
for (kind, noise), values in found.items():
    values = np.array(values)
    print(f"{kind:8s} noise {noise:.1f} Å, {len(values)} entries: median {values[:, 0].min():.2f}-{values[:, 0].max():.2f} Å, "
          f"interquartile range {values[:, 1].min():.2f}-{values[:, 1].max():.2f} Å; "
          f"taken for C-alpha traces: {int(values[:, 2].sum())}")
