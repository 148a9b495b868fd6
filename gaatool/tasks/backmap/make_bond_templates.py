"""Derive ``bond_templates.json`` (ideal covalent heavy-atom bonds and bond-angle distances) from real structures.

Run from the repository root::

    python -m gaatool.tasks.backmap.make_bond_templates

Provenance: the deposited wwPDB X-ray entries (0.91 to 2.0 Å resolution) in
``pretrained/inputs/pdb/`` (see ``SOURCES_pdb_extra.md`` there), read with
:func:`gaatool.io.structure.read_structure` (first model, heavy atoms,
highest-occupancy alternate location). The four test entries of the
pretrained backmapping model (1AKU, 3PXF, 4ZEY, 7GSA) are left out, so the
templates do not see the structures the model is evaluated on; the four
BinaryCIF files there are not readable with gemmi and are skipped.

Rules:

* intra-residue bonds: pairs of heavy atoms of one residue (names as in
  :data:`~gaatool.tasks.backmap.residues.RESIDUE_ATOMS`) closer than 1.9 Å in
  more than half of the residues of that type where both atoms are present;
  ideal length = median over those occurrences;
* C-terminal ``C``-``OXT``: pooled over all residue types (terminal residues
  are few), median over pairs closer than 1.9 Å;
* peptide bond ``C(i)``-``N(i+1)``: consecutive residues of one chain without a
  residue-number gap, median over pairs closer than 1.9 Å;
* chiral centres (CA of every residue with a CB; CB of THR and ILE) as signed
  volumes ``((a - centre) x (b - centre)) . (c - centre)`` of their first three
  listed neighbours, in Å^3: median over the occurrences;
* bond angles as 1-3 distances (two atoms bonded to a common third, which fixes
  the angle between the bonds): every such pair of a residue's bonds, of
  ``C``-``OXT`` with ``CA`` and ``O``, and across the peptide bond (``CA(i)``-``N(i+1)``,
  ``O(i)``-``N(i+1)``, ``C(i)``-``CA(i+1)``); distance = median over the occurrences (at
  the terminus and across the peptide bond: those whose two bonds are shorter than 1.9 Å);
* disulfide bonds: ``SG``-``SG`` of two cysteines closer than 2.5 Å, and the 1-3
  distances ``CB``-``SG`` across them: medians over those pairs;
* the planar trans peptide bond as 1-4 distances ``CA(i)``-``CA(i+1)`` and
  ``O(i)``-``CA(i+1)``: median over the linked pairs whose peptide bond is shorter
  than 1.9 Å and whose residue i+1 is not a proline (X-Pro bonds may be cis).

Lengths are rounded to 0.001 Å.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from ...errors import InputFileError
from ...io.structure import read_structure
from .coarse_grain import chain_breaks
from .covalent import chiral_volumes
from .residues import RESIDUE_ATOMS, RESIDUE_NAMES, TERMINAL_ATOM

BOND_CUTOFF_A = 1.9
DISULFIDE_CUTOFF_A = 2.5
EXCLUDED_ENTRIES = ("1AKU", "3PXF", "4ZEY", "7GSA")
SOURCE_DIR = Path("pretrained/inputs/pdb")
OUTPUT = Path(__file__).with_name("bond_templates.json")


#: Chiral centres: (centre, a, b, c) whose signed volume tells the L amino acid (and THR/ILE's CB) from its mirror
CHIRAL_CENTRES = {"THR": (("CB", "CA", "OG1", "CG2"),), "ILE": (("CB", "CA", "CG1", "CG2"),)}
CA_CENTRE = ("CA", "N", "C", "CB")
#: 1-3 pairs across the peptide bond and at the C terminus: (atom of residue i, atom of residue i+1 or i)
PEPTIDE_ANGLES = (("CA", "N"), ("O", "N"), ("C", "CA"))
TERMINAL_ANGLES = (("CA", TERMINAL_ATOM), ("O", TERMINAL_ATOM))
#: 1-4 pairs across a trans peptide bond (atom of residue i, atom of residue i+1): they hold it planar
PEPTIDE_TRANS = (("CA", "CA"), ("O", "CA"))


def collect(files: list[Path]) -> tuple[dict, list[str]]:
    """Distances of every intra-residue atom pair, terminal C-OXT and peptide C-N over ``files``, and of the
    1-3 pairs at the terminus and across the peptide bond (with the lengths of the two bonds that make them)."""
    pair_d: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    oxt: list[float] = []
    peptide: list[float] = []
    across: dict[tuple[str, str, str], list[tuple[float, float, float]]] = defaultdict(list)
    volumes: dict[tuple[str, ...], list[float]] = defaultdict(list)
    bridges: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    used = []
    for path in files:
        try:
            structure = read_structure(path)
        except InputFileError:
            continue
        used.append(structure.entry_id.upper() or path.name)
        starts = structure.residue_starts()
        pos = structure.positions[0]
        index = []
        for r in range(structure.n_residues):
            names = [str(a) for a in structure.atom_names[starts[r]:starts[r + 1]]]
            index.append({n: starts[r] + k for k, n in enumerate(names)})
            res = str(structure.residue_names[r])
            counts[res] += 1
            atoms = RESIDUE_ATOMS[res]
            for a_i, a in enumerate(atoms):
                for b in atoms[a_i + 1:]:
                    if a in index[r] and b in index[r]:
                        pair_d[(res, a, b)].append(float(np.linalg.norm(pos[index[r][a]] - pos[index[r][b]])))
            for centre in chiral_centres(res):
                if all(atom in index[r] for atom in centre):
                    quadruple = np.array([[index[r][atom] for atom in centre]])
                    volumes[(res, *centre)].append(float(chiral_volumes(pos, quadruple)[0][0]))
            if "C" in index[r] and TERMINAL_ATOM in index[r]:
                oxt.append(float(np.linalg.norm(pos[index[r]["C"]] - pos[index[r][TERMINAL_ATOM]])))
                for first, _ in TERMINAL_ANGLES:
                    if first in index[r]:
                        across[("terminal", first, TERMINAL_ATOM)].append(_angle_pair(
                            pos, index[r][first], index[r]["C"], index[r][TERMINAL_ATOM]))
        sg = [(index[r]["SG"], index[r].get("CB")) for r in range(structure.n_residues)
              if str(structure.residue_names[r]) == "CYS" and "SG" in index[r]]
        for k, (s1, b1) in enumerate(sg):
            for s2, b2 in sg[k + 1:]:
                if np.linalg.norm(pos[s1] - pos[s2]) < DISULFIDE_CUTOFF_A:
                    bridges["SS"].append(float(np.linalg.norm(pos[s1] - pos[s2])))
                    bridges["CB-SG"] += [float(np.linalg.norm(pos[b] - pos[s])) for b, s in ((b1, s2), (b2, s1))
                                         if b is not None]
        breaks = set(chain_breaks(structure))
        for _, residues in structure.chains():
            for a, b in zip(residues[:-1], residues[1:]):
                if (int(a), int(b)) in breaks or "C" not in index[a] or "N" not in index[b]:
                    continue
                peptide.append(float(np.linalg.norm(pos[index[a]["C"]] - pos[index[b]["N"]])))
                peptide_bond = float(np.linalg.norm(pos[index[a]["C"]] - pos[index[b]["N"]]))
                for first, second in PEPTIDE_TRANS:
                    if first in index[a] and second in index[b] and str(structure.residue_names[b]) != "PRO":
                        distance = float(np.linalg.norm(pos[index[a][first]] - pos[index[b][second]]))
                        across[("trans", first, second)].append((distance, peptide_bond, peptide_bond))
                for first, second in PEPTIDE_ANGLES:
                    ends = (index[a].get(first), index[b].get(second))
                    middle = index[a]["C"] if second == "N" else index[b]["N"]  # the atom bonded to both
                    if None not in ends:
                        across[("peptide", first, second)].append(_angle_pair(pos, ends[0], middle, ends[1]))
    return ({"pairs": pair_d, "oxt": oxt, "peptide": peptide, "across": across, "volumes": volumes,
             "bridges": bridges, "counts": counts}, used)


def chiral_centres(residue: str) -> tuple[tuple[str, str, str, str], ...]:
    """The chiral centres of a standard residue as (centre, a, b, c) atom names."""
    ca = (CA_CENTRE,) if "CB" in RESIDUE_ATOMS[residue] else ()
    return ca + CHIRAL_CENTRES.get(residue, ())


def _angle_pair(pos: np.ndarray, a: int, middle: int, b: int) -> tuple[float, float, float]:
    """(|a - b|, |a - middle|, |middle - b|): a 1-3 distance and its two bonds."""
    length = lambda i, j: float(np.linalg.norm(pos[i] - pos[j]))  # noqa: E731
    return length(a, b), length(a, middle), length(middle, b)


def _one_three_pairs(bonds: list[tuple[str, str]], atoms: list[str]) -> list[tuple[str, str]]:
    """Atom pairs (in ``atoms`` order) bonded to a common atom and not to each other."""
    neighbours: dict[str, set[str]] = defaultdict(set)
    for a, b in bonds:
        neighbours[a].add(b)
        neighbours[b].add(a)
    order = {atom: k for k, atom in enumerate(atoms)}
    pairs = {tuple(sorted((a, b), key=order.get)) for centre in neighbours
             for a in neighbours[centre] for b in neighbours[centre] if a != b and b not in neighbours[a]}
    return sorted(pairs, key=lambda pair: (order[pair[0]], order[pair[1]]))


def templates(data: dict, used: list[str]) -> dict:
    residues, angles = {}, {}
    for res in RESIDUE_NAMES:
        bonds = []
        atoms = RESIDUE_ATOMS[res]
        for a_i, a in enumerate(atoms):
            for b in atoms[a_i + 1:]:
                d = np.asarray(data["pairs"].get((res, a, b), []))
                if d.size and (d < BOND_CUTOFF_A).mean() > 0.5:
                    bonds.append([a, b, round(float(np.median(d[d < BOND_CUTOFF_A])), 3)])
        residues[res] = bonds
        angles[res] = []
        for a, b in _one_three_pairs([(a, b) for a, b, _ in bonds], atoms):
            d = np.asarray(data["pairs"][(res, a, b)])
            angles[res].append([a, b, round(float(np.median(d)), 3)])

    def median_bonded(values):
        v = np.asarray(values)
        return round(float(np.median(v[v < BOND_CUTOFF_A])), 3)

    def median_angle(kind, first, second):
        v = np.asarray(data["across"][(kind, first, second)]).reshape(-1, 3)
        bonded = (v[:, 1] < BOND_CUTOFF_A) & (v[:, 2] < BOND_CUTOFF_A)
        return [first, second, round(float(np.median(v[bonded, 0])), 3)]

    return {
        "source": ("medians over the deposited wwPDB X-ray entries (0.91-2.0 A) in pretrained/inputs/pdb/ "
                   f"(provenance: SOURCES_pdb_extra.md there), entries {' '.join(sorted(used))}; test entries "
                   f"{' '.join(EXCLUDED_ENTRIES)} left out; made by gaatool/tasks/backmap/make_bond_templates.py"),
        "rule": f"atom pairs of one residue closer than {BOND_CUTOFF_A} A in more than half of the occurrences; "
                "length = median over the bonded occurrences (A)",
        "units": "angstrom",
        "residue_counts": {res: int(data["counts"].get(res, 0)) for res in RESIDUE_NAMES},
        "residues": residues,
        "terminal": [["C", TERMINAL_ATOM, median_bonded(data["oxt"])]],
        "terminal_count": int((np.asarray(data["oxt"]) < BOND_CUTOFF_A).sum()),
        "peptide": [["C", "N", median_bonded(data["peptide"])]],
        "peptide_count": int((np.asarray(data["peptide"]) < BOND_CUTOFF_A).sum()),
        "angle_rule": "bond angles as 1-3 distances: atom pairs bonded to a common atom; distance = median over "
                      "the occurrences (terminal and peptide: those whose two bonds are shorter than "
                      f"{BOND_CUTOFF_A} A)",
        "angles": angles,
        "chirality_rule": "chiral centres [centre, a, b, c, V]: signed volume V = ((a - centre) x (b - centre)) . "
                          "(c - centre) in A^3, median over the occurrences",
        "chirality": {res: [[*centre, round(float(np.median(data["volumes"][(res, *centre)])), 3)]
                            for centre in chiral_centres(res)] for res in RESIDUE_NAMES},
        "terminal_angles": [median_angle("terminal", *pair) for pair in TERMINAL_ANGLES],
        "peptide_angles": [median_angle("peptide", *pair) for pair in PEPTIDE_ANGLES],
        "trans_rule": "1-4 distances across a trans peptide bond (residue i, residue i+1): median over the linked "
                      f"pairs with a peptide bond shorter than {BOND_CUTOFF_A} A, residue i+1 not PRO",
        "peptide_trans": [median_angle("trans", *pair) for pair in PEPTIDE_TRANS],
        "disulfide_rule": f"CYS SG pairs closer than {DISULFIDE_CUTOFF_A} A: bond SG-SG and 1-3 distance CB-SG across "
                          "it, medians",
        "disulfide": [["SG", "SG", round(float(np.median(data["bridges"]["SS"])), 3)],
                      ["CB", "SG", round(float(np.median(data["bridges"]["CB-SG"])), 3)]],
        "disulfide_count": len(data["bridges"]["SS"]),
    }


def _format(result: dict) -> str:
    """JSON with one residue's bond list per line."""
    lines = []
    for key, value in result.items():
        if key in ("residues", "angles", "chirality"):
            inner = ",\n".join(f"  {json.dumps(res)}: {json.dumps(bonds)}" for res, bonds in value.items())
            lines.append(f' {json.dumps(key)}: {{\n{inner}\n }}')
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(source: Path = SOURCE_DIR, output: Path = OUTPUT) -> dict:
    files = sorted(p for p in source.iterdir() if p.name.endswith((".pdb.gz", ".cif.gz"))
                   and p.name.split(".")[0].upper() not in EXCLUDED_ENTRIES)
    data, used = collect(files)
    result = templates(data, used)
    output.write_text(_format(result))
    return result


if __name__ == "__main__":
    out = main()
    print(f"wrote {OUTPUT}: {sum(len(b) for b in out['residues'].values())} intra-residue bonds, "
          f"{sum(len(a) for a in out['angles'].values())} angles, peptide {out['peptide']}, "
          f"terminal {out['terminal']}")
