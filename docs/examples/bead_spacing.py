"""How far apart consecutive beads sit, by kind of bead: the rule `gaatool backmap` tells C-alpha traces by.

For every structure in the given folders (default: the training and external entries of the
pretrained backmapping models), the beads of each kind (centroid, centre of mass, C-alpha; as
``gaatool coarse-grain --bead`` makes them), as they are and with Gaussian noise of 0.1 and 0.3 Å
per coordinate (beads of a coarse-grained simulation), and the median and interquartile range of
the distances between peptide-bonded consecutive beads: their ranges over the entries, how many
entries ``gaatool backmap`` takes for C-alpha traces (median at most ``CA_MEDIAN_A``, range at most
``CA_SPREAD_A``), and the largest such distance. Beads farther apart than ``max_bonded_distance`` are a
chain break whatever the residue numbers say: ``MAX_BONDED_BEAD_A`` for centroid and centre-of-mass beads,
``MAX_BONDED_CA_A`` (or more where the spacing spreads) for C-alpha traces, so the largest distance of
C-alpha beads counts only pairs within that limit.

    python docs/examples/bead_spacing.py [FOLDER ...]
"""
import sys
from pathlib import Path

import numpy as np

from gaatool.errors import InputFileError
from gaatool.io.structure import read_structure
from gaatool.tasks.backmap.coarse_grain import (BEAD_KINDS, bead_spacing, coarse_grain, spaced_like_ca_trace,
                                               structure_previous)

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
                previous = structure_previous(moved)
                bonded = np.flatnonzero(previous >= 0)
                largest = np.linalg.norm(moved.positions[0, bonded] - moved.positions[0, previous[bonded]], axis=-1).max()
                found[(kind, noise)].append((*bead_spacing(moved), spaced_like_ca_trace(moved), largest))
for (kind, noise), values in found.items():
    values = np.array(values)
    print(f"{kind:8s} noise {noise:.1f} Å, {len(values)} entries: median {values[:, 0].min():.2f}-{values[:, 0].max():.2f} Å, "
          f"interquartile range {values[:, 1].min():.2f}-{values[:, 1].max():.2f} Å; "
          f"taken for C-alpha traces: {int(values[:, 2].sum())}; largest {values[:, 3].max():.2f} Å")
