"""How far apart consecutive beads sit, by kind of bead: the rule `gaatool backmap` tells C-alpha traces by.

For every structure in the given folders (default: the training and external entries of the
pretrained backmapping models), the beads of each kind (centroid, centre of mass, C-alpha; as
``gaatool coarse-grain --bead`` makes them) and the share of peptide-bonded consecutive beads spaced
within ``CA_SPACING_A`` (3.6-4.0 Å), per entry: its range over the entries, then its median.
``gaatool backmap`` takes beads with a share of at least ``CA_SPACING_SHARE`` (0.6) for a C-alpha trace.

    python docs/examples/bead_spacing.py [FOLDER ...]
"""
import sys
from pathlib import Path

import numpy as np

from gaatool.errors import InputFileError
from gaatool.io.structure import read_structure
from gaatool.tasks.backmap.coarse_grain import BEAD_KINDS, CA_SPACING_SHARE, coarse_grain, spaced_like_ca_trace

root = Path(__file__).resolve().parents[2]
folders = [Path(f) for f in sys.argv[1:]] or [root / "pretrained/inputs/pdb", root / "pretrained/inputs/pdb_external"]
shares = {kind: [] for kind in BEAD_KINDS}
for path in sorted(p for folder in folders for p in folder.iterdir() if not p.name.endswith((".md", ".txt"))):
    structure = read_structure(path)
    for kind in BEAD_KINDS:
        try:
            beads = coarse_grain(structure, kind)
        except InputFileError as error:  # a residue without its CA atom: no C-alpha trace of this entry
            print(f"skipped: {error}")
            continue
        spacing = spaced_like_ca_trace(beads)
        if spacing is not None:
            shares[kind].append(spacing[1])
for kind, values in shares.items():
    values = np.array(values)
    print(f"{kind:8s} {len(values)} entries: {values.min():.1%}-{values.max():.1%} of consecutive beads 3.6-4.0 Å apart "
          f"(median {np.median(values):.1%}); taken for C-alpha traces: {np.sum(values >= CA_SPACING_SHARE)}")
