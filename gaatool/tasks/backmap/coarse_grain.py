"""One bead per residue, and the bead neighbourhoods the backmapper sees.

Bead kinds
----------
``centroid`` (default, as in the paper)
    the mean position of the residue's heavy atoms;
``com``
    their centre of mass (C 12.011, N 14.007, O 15.999, S 32.06);
``ca``
    the CA atom.

Neighbourhoods: for bead i, its K nearest other beads j of the same structure
(any chain), as ``r_ij = r_j - r_i`` (Å) with their residue types, nearest
first. Structures with K or fewer beads give padded neighbourhoods (mask).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...data.neighbors import nearest_neighbors
from ...errors import ConfigError, InputFileError
from ...io.atomic import check_output_path
from ...io.structure import MD_RESIDUE_ALIASES, ProteinStructure, output_format, read_structure, write_structure
from .residues import RESIDUE_ATOMS, residue_index

__all__ = [
    "BEAD_KINDS",
    "BEAD_ATOM_NAME",
    "ATOMIC_MASSES",
    "bead_positions",
    "coarse_grain",
    "coarse_grain_file",
    "incomplete_residue_warnings",
    "check_coarse_grained",
    "chain_breaks",
    "max_bonded_distance",
    "named_ca",
    "structure_previous",
    "spaced_like_ca_trace",
    "bead_spacing",
    "neighborhoods",
    "ca_counts",
    "chain_segments",
    "sequence_offsets",
    "residue_types_of",
    "bead_disulfides",
    "listed",
    "MAX_BONDED_BEAD_A",
    "MAX_BONDED_CA_A",
    "MAX_DISULFIDE_BEAD_A",
]

BEAD_KINDS = ("centroid", "com", "ca")
#: Atom name of the beads written by :func:`coarse_grain`.
BEAD_ATOM_NAME = "BB"
ATOMIC_MASSES = {"C": 12.011, "N": 14.007, "O": 15.999, "S": 32.06, "SE": 78.971}


def _check_bead(bead: str) -> None:
    if bead not in BEAD_KINDS:
        raise ConfigError(f"unknown bead kind {bead!r}; choose one of {', '.join(BEAD_KINDS)}")


def ca_counts(structure: ProteinStructure) -> np.ndarray:
    """Number of atoms named CA in each residue (R,): a CA bead needs exactly one."""
    return np.bincount(structure.atom_residues[structure.atom_names == "CA"], minlength=structure.n_residues)


def bead_positions(structure: ProteinStructure, bead: str = "centroid") -> np.ndarray:
    """Bead coordinates (F, R, 3) in Å, one bead per residue of every model.

    Raises InputFileError if ``bead="ca"`` and a residue has no CA atom.

    >>> from gaatool.io.structure import ProteinStructure
    >>> s = ProteinStructure(["GLY"], [1], [""], ["A"], ["N", "CA", "C", "O"], ["N", "C", "C", "O"], [0, 0, 0, 0],
    ...                      [[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]])
    >>> bead_positions(s)[0].tolist(), bead_positions(s, "ca")[0].tolist()
    ([[1.5, 0.0, 0.0]], [[1.0, 0.0, 0.0]])
    """
    _check_bead(bead)
    n_res = structure.n_residues
    if bead == "ca":
        is_ca = structure.atom_names == "CA"
        has = ca_counts(structure)
        if np.any(has != 1):
            bad = int(np.flatnonzero(has != 1)[0])
            raise InputFileError(f"{structure.source}: residue {structure.residue_label(bad)} has {has[bad]} CA "
                                 "atoms; CA beads need exactly one")
        order = np.argsort(structure.atom_residues[is_ca], kind="stable")
        return structure.positions[:, np.flatnonzero(is_ca)[order]]
    if bead == "centroid":
        weights = np.ones(structure.n_atoms)
    else:
        unknown = sorted(set(structure.elements.tolist()) - set(ATOMIC_MASSES))
        if unknown:
            raise InputFileError(f"{structure.source}: no mass for element(s) {unknown}; use --bead centroid")
        weights = np.array([ATOMIC_MASSES[e] for e in structure.elements])
    totals = np.bincount(structure.atom_residues, weights=weights, minlength=n_res)
    if np.any(totals == 0):
        bad = int(np.flatnonzero(totals == 0)[0])
        raise InputFileError(f"{structure.source}: residue {structure.residue_label(bad)} has no atoms")
    result = np.empty((structure.n_models, n_res, 3))
    for axis in range(3):
        for f in range(structure.n_models):
            result[f, :, axis] = np.bincount(structure.atom_residues, weights=weights * structure.positions[f, :, axis],
                                             minlength=n_res) / totals
    return result


def coarse_grain(structure: ProteinStructure, bead: str = "centroid") -> ProteinStructure:
    """The one-bead-per-residue structure: atom ``BB`` (element C) at each bead, same residues, chains and
    disulfide records; for ``ca`` beads atom ``CA``, a C-alpha trace as ``gaatool backmap`` recognises one."""
    beads = bead_positions(structure, bead)
    n = structure.n_residues
    name = "CA" if bead == "ca" else BEAD_ATOM_NAME
    return ProteinStructure(
        residue_names=structure.residue_names, residue_numbers=structure.residue_numbers,
        insertion_codes=structure.insertion_codes, chain_ids=structure.chain_ids,
        atom_names=[name] * n, elements=["C"] * n, atom_residues=np.arange(n), positions=beads,
        entry_id=structure.entry_id, source=structure.source, skipped=dict(structure.skipped),
        disulfides=structure.disulfides)


def coarse_grain_file(path, out, bead: str = "centroid", fmt: str | None = None, stdin=None,
                      stdout=None) -> tuple[ProteinStructure, list[str]]:
    """Coarse-grain every model of an all-atom structure file (PDB/mmCIF/BinaryCIF, ``-`` = stdin) to one
    bead per residue and write it to ``out`` (``.pdb``/``.cif``, ``-`` = stdout): the input of
    ``gaatool backmap``. Force-field residue names (``HSD``, ``CYX``, ...) are read as standard ones.
    Returns the beads and warnings (:func:`incomplete_residue_warnings`)."""
    _check_bead(bead)
    fmt = output_format(out, fmt)  # a bad output name fails before any work
    check_output_path(out, inputs=(path,))
    structure = read_structure(path, all_models=True, stdin=stdin, residue_aliases=MD_RESIDUE_ALIASES)
    if structure.n_residues == 0:
        raise InputFileError(f"{path}: no amino-acid residues to coarse-grain")
    beads = coarse_grain(structure, bead)
    written = write_structure(beads, out, fmt=fmt, stdout=stdout)
    return beads, ([f"{structure.source}: {note}" for note in structure.notes]
                   + incomplete_residue_warnings(structure, bead) + written)


def incomplete_residue_warnings(structure: ProteinStructure, bead: str) -> list[str]:
    """Warnings for residues that lack heavy atoms of their side chain or backbone (OXT aside).

    The centroid (or centre of mass) of an incomplete residue is not where a coarse-grained simulation,
    or the training data of the backmapping models, puts the bead; a C-alpha-only file is a C-alpha trace.
    C-alpha beads need only the CA atom.
    """
    if bead == "ca":
        return []
    names, starts = np.asarray(structure.atom_names), structure.residue_starts()
    # selenomethionine (MSE, read as MET) has its Se where MET's SD is
    names = np.where((names == "SE") & (structure.residue_names[structure.atom_residues] == "MET"), "SD", names)
    missing = [residue for residue, name in enumerate(structure.residue_names)
               if not set(RESIDUE_ATOMS.get(str(name), ())) <= set(names[starts[residue]:starts[residue + 1]])]
    if not missing:
        return []
    if set(names) <= {"CA"}:
        return [f"{structure.source}: only CA atoms: these {bead} beads are the CA atoms, a C-alpha trace; "
                "`--bead ca` says so (and `gaatool backmap` then uses its C-alpha model)"]
    shown = ", ".join(structure.residue_label(r) for r in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return [f"{structure.source}: {len(missing)} residue(s) lack heavy atoms ({shown}{more}): their {bead} beads "
            "sit off where complete residues put them, and backmapping them is less accurate"]


def check_coarse_grained(structure: ProteinStructure) -> None:
    """Raise InputFileError unless every residue has exactly one atom (its bead)."""
    counts = np.bincount(structure.atom_residues, minlength=structure.n_residues)
    bad = np.flatnonzero(counts != 1)
    if len(bad):
        r = int(bad[0])
        raise InputFileError(
            f"{structure.source}: residue {structure.residue_label(r)} has {counts[r]} atoms; backmapping needs a "
            "coarse-grained structure with exactly one bead per residue (from an all-atom structure: "
            "`gaatool coarse-grain`; from a multi-bead model such as Martini: keep one bead per residue)")


#: Farther apart than this in any model, two consecutive beads are not peptide-bonded whatever their numbers
#: say, unless they are spaced like C-alpha atoms (below). Peptide-bonded centroid beads of the training and
#: external entries sit at most 8.72 Å apart, 9.22 Å with Gaussian noise of 0.3 Å per coordinate
#: (``python docs/examples/bead_spacing.py``), and beads with a residue left out between them can be as close:
#: with centroid and centre-of-mass beads only longer stretches cut out show.
MAX_BONDED_BEAD_A = 12.0
#: The same for C-alpha atoms: those of an all-atom structure, and beads spaced like them (a C-alpha trace).
#: Peptide-bonded C-alphas sit 3.8 Å apart (cis 2.9 Å; 2.77-4.05 Å over the 16,584 consecutive pairs of the
#: 48 training and external entries), C-alphas with one residue missing between them 4.5-7.5 Å (0.1% under
#: 4.8 Å; helices 5.4 Å). 4.4 Å is 0.6 Å above 3.8: six standard deviations of the C-alpha bond of a
#: coarse-grained simulation at room temperature (harmonic bonds of Go-like models: about 0.05-0.1 Å).
MAX_BONDED_CA_A = 4.4
#: Softer bonds (hot or Martini-like simulations) stretch further, and predicted atoms sit off: consecutive
#: C-alphas may sit this many standard deviations of their distances (the interquartile range / 1.349, robust
#: to the few real gaps) beyond the median distance and still be bonded, where that exceeds
#: :data:`MAX_BONDED_CA_A`.
BOND_STRETCH_SIGMAS = 6.0
_IQR_PER_SIGMA = 1.349  # the interquartile range of a normal distribution, in standard deviations


def chain_breaks(structure: ProteinStructure) -> list[tuple[int, int]]:
    """Pairs (r, r + 1) of residues that follow each other in a chain but are not sequence neighbours.

    The structure's recorded :attr:`~gaatool.io.structure.ProteinStructure.breaks` where it has them (a
    backmapped structure: those of its beads). Else a break is a residue-number step other than +1
    (insertion codes: the same number with a new code also follows on), or, where the numbers run on, beads
    (one atom per residue) or CA atoms farther apart in some model than :func:`max_bonded_distance`:
    residues cut out and the rest renumbered. Residues across a break get no peptide bond and the chain
    segment before it no OXT.
    """
    if structure.breaks is not None:
        return [(int(a), int(b)) for a, b in structure.breaks]
    links = _links(structure)  # one pass over the models serves the limit and the breaks
    broken = ~links.numbered_on | (links.gaps > _max_bonded_distance(structure, links))
    return list(zip(links.first[broken].tolist(), links.second[broken].tolist()))


def max_bonded_distance(structure: ProteinStructure) -> float:
    """How far apart (Å) :func:`chain_breaks` lets the beads, or in an all-atom structure the CA atoms, of
    peptide-bonded residues be: for CA atoms and C-alpha traces :data:`MAX_BONDED_CA_A`, widened where their
    consecutive distances spread (:data:`BOND_STRETCH_SIGMAS`); :data:`MAX_BONDED_BEAD_A` for other beads.

    A C-alpha trace: beads spaced like C-alpha atoms (:func:`spaced_like_ca_trace`, told with the loose
    limit), or with fewer than :data:`MIN_BONDED_BEADS` pairs, all named CA and not spaced otherwise.
    """
    return _max_bonded_distance(structure, _links(structure))


def _max_bonded_distance(structure: ProteinStructure, links: "_Links") -> float:
    distances = _bonded_distances(structure, links)
    if len(distances) == 0:  # nothing that a limit could cut
        return MAX_BONDED_BEAD_A
    median, spread = _median_and_spread(distances)
    if _one_bead_per_residue(structure) and not (
            _spaced_like_ca(median, spread) and (len(distances) >= MIN_BONDED_BEADS or named_ca(structure))):
        return MAX_BONDED_BEAD_A
    return max(MAX_BONDED_CA_A, median + BOND_STRETCH_SIGMAS * spread / _IQR_PER_SIGMA)


def _one_bead_per_residue(structure: ProteinStructure) -> bool:
    return structure.n_atoms == structure.n_residues and np.array_equal(structure.atom_residues,
                                                                         np.arange(structure.n_residues))


def named_ca(structure: ProteinStructure) -> bool:
    """Whether every atom is named CA (as C-alpha traces, and some tools' centroid beads, are)."""
    return bool(structure.n_atoms and np.all(structure.atom_names == "CA"))


class _Links(NamedTuple):
    """Residues r (``first``) and r + 1 (``second``) of one chain; whether their numbers run on (a step of +1,
    or the same number with another insertion code); the atom standing for each residue (``index``,
    :func:`_representative_atoms`); and the largest distance (Å) over the models between those of r and
    r + 1 (``gaps``, 0 where a residue has none)."""

    first: np.ndarray
    second: np.ndarray
    numbered_on: np.ndarray
    index: np.ndarray
    gaps: np.ndarray


def _links(structure: ProteinStructure) -> _Links:
    first = np.flatnonzero(structure.chain_ids[1:] == structure.chain_ids[:-1])
    second = first + 1
    step = structure.residue_numbers[second] - structure.residue_numbers[first]
    new_code = structure.insertion_codes[second] != structure.insertion_codes[first]
    index = _representative_atoms(structure)
    return _Links(first, second, (step == 1) | ((step == 0) & new_code), index,
                  _largest_gaps(structure, index[first], index[second]))


def _representative_atoms(structure: ProteinStructure) -> np.ndarray:
    """Atom index (R,) standing for each residue: its bead (one atom per residue), else its first CA atom
    (-1 where it has none)."""
    if _one_bead_per_residue(structure):
        return np.arange(structure.n_residues)
    index = np.full(structure.n_residues, -1, dtype=np.int64)
    ca = np.flatnonzero(structure.atom_names == "CA")
    index[structure.atom_residues[ca][::-1]] = ca[::-1]  # the first CA of each residue
    return index


def _largest_gaps(structure: ProteinStructure, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Largest distance (Å) over the models between atoms ``a`` and ``b`` (index arrays broadcast against
    each other); 0 where one is -1. One model at a time: a trajectory may hold many."""
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    present = (a >= 0) & (b >= 0)
    a, b = a[present], b[present]
    gaps = np.zeros(present.shape)
    for positions in structure.positions:
        gaps[present] = np.maximum(gaps[present], np.linalg.norm(positions[a] - positions[b], axis=-1))
    return gaps


def _bonded_distances(structure: ProteinStructure, links: _Links) -> np.ndarray:
    """Distances (Å, first model) between the representative atoms of consecutive residues that may be
    peptide-bonded: numbers that run on and at most :data:`MAX_BONDED_BEAD_A` apart. The kind of bead and the
    spread are told from these, so the tighter limit of C-alphas cannot enter."""
    first, second, index = links.first, links.second, links.index
    bonded = (links.numbered_on & (links.gaps <= MAX_BONDED_BEAD_A) & (index[first] >= 0) & (index[second] >= 0))
    positions = structure.positions[0]
    return np.linalg.norm(positions[index[second[bonded]]] - positions[index[first[bonded]]], axis=-1)


def structure_previous(structure: ProteinStructure) -> np.ndarray:
    """Index (R,) of each residue's peptide-bonded predecessor: the previous residue of its chain, -1 across breaks."""
    previous = np.full(structure.n_residues, -1, dtype=np.int64)
    breaks = set(chain_breaks(structure))
    for _, residues in structure.chains():
        for a, b in zip(residues[:-1], residues[1:]):
            if (int(a), int(b)) not in breaks:
                previous[b] = a
    return previous


#: C-alpha atoms of consecutive residues sit 3.8 Å apart (trans peptides), residue centroids anywhere from about
#: 3 to 7 Å. Per entry of the 48 training and external entries (pretrained/inputs), the median and interquartile
#: range of consecutive bead distances: C-alpha traces 3.80-3.86 and 0.01-0.06 Å, and with Gaussian noise of
#: 0.3 Å per coordinate (a hot or soft coarse-grained simulation) 3.78-3.91 and 0.42-0.65 Å; centroid beads
#: 4.13-5.11 and 0.97-1.45 Å, centre-of-mass beads 4.29-5.18 and 0.86-1.45 Å, with that noise no lower
#: (``python docs/examples/bead_spacing.py``, which also adds the noise).
CA_MEDIAN_A = 4.1
#: Largest interquartile range of consecutive bead distances (Å) of a C-alpha trace.
CA_SPREAD_A = 0.8
#: Fewer peptide-bonded bead pairs than this say too little about the kind of bead.
MIN_BONDED_BEADS = 8


def bead_spacing(structure: ProteinStructure, min_pairs: int = MIN_BONDED_BEADS) -> tuple[float, float] | None:
    """Median and interquartile range (Å) of the distances between consecutive beads of a one-bead-per-residue
    structure that may be peptide-bonded (first model; numbers that run on, at most :data:`MAX_BONDED_BEAD_A`
    apart); None with fewer than ``min_pairs`` such pairs."""
    distances = _bonded_distances(structure, _links(structure))
    if len(distances) < max(min_pairs, 1):
        return None
    return _median_and_spread(distances)


def _median_and_spread(distances: np.ndarray) -> tuple[float, float]:
    upper, lower = np.percentile(distances, [75, 25])
    return float(np.median(distances)), float(upper - lower)


def _spaced_like_ca(median: float, spread: float) -> bool:
    return median <= CA_MEDIAN_A and spread <= CA_SPREAD_A


def spaced_like_ca_trace(structure: ProteinStructure) -> bool | None:
    """Whether one-bead-per-residue beads are spaced like C-alpha atoms (median consecutive distance at most
    :data:`CA_MEDIAN_A`, spread at most :data:`CA_SPREAD_A`); None with too few consecutive pairs to tell.

    The atom names of bead files do not say where a bead sits: tools write centroids named CA (so that
    viewers draw a trace) and C-alpha positions named otherwise.
    """
    spacing = bead_spacing(structure)
    return None if spacing is None else _spaced_like_ca(*spacing)


def chain_segments(structure: ProteinStructure) -> tuple[np.ndarray, np.ndarray]:
    """(segment, place) (R,) int64 of every residue: the chain segment it belongs to (a chain cut at its
    :func:`chain_breaks`) and its position in its chain. The same for every model of the structure."""
    n = structure.n_residues
    segment, place = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    breaks, current = set(chain_breaks(structure)), -1
    for _, residues in structure.chains():
        for k, r in enumerate(residues):
            if k == 0 or (int(residues[k - 1]), int(r)) in breaks:
                current += 1
            segment[r], place[r] = current, k
    return segment, place


def sequence_offsets(structure: ProteinStructure, neighbor_index: np.ndarray,
                     segments: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Place of each neighbour bead along the chain: (R, K) int64, j - i in residues when bead j is in
    residue i's chain segment (same chain, no :func:`chain_breaks` between), else 0 (also for padding, -1).

    ``segments``: :func:`chain_segments` of ``structure``, when the caller has them already (frames of
    one trajectory share them).

    >>> s = ProteinStructure(["GLY"] * 4, [1, 2, 3, 7], [""] * 4, ["A"] * 4, ["CA"] * 4, ["C"] * 4,
    ...                      [0, 1, 2, 3], np.zeros((4, 3)))
    >>> sequence_offsets(s, np.array([[1, 2], [0, 2], [1, 3], [2, -1]])).tolist()
    [[1, 2], [-1, 1], [-1, 0], [0, 0]]
    """
    segment, place = segments if segments is not None else chain_segments(structure)
    index = np.asarray(neighbor_index, dtype=np.int64)
    safe = np.where(index >= 0, index, 0)
    same = (index >= 0) & (segment[safe] == segment[:, None])
    return np.where(same, place[safe] - place[:, None], 0)


#: Beads of disulfide-bonded cysteines sit 3.7-6.6 Å apart (the 45 disulfides of the 48 training and external
#: entries: centroid beads 4.2-6.1 Å, centres of mass 3.7-5.4 Å, C-alphas 4.0-6.6 Å); this leaves about 1 Å
#: for the beads' motion in a simulation.
MAX_DISULFIDE_BEAD_A = 7.5
#: Residue names that force fields give cysteines in a disulfide bond: AMBER's, and GROMOS's (seen in .gro and
#: mmCIF files; PDB files hold it in columns 18-21, where it is read as CYS before the name is kept).
DISULFIDE_CYSTEINE_NAMES = ("CYX", "CYS2")


def bead_disulfides(beads: ProteinStructure) -> tuple[np.ndarray, list[str]]:
    """Disulfide-bonded cysteines of a bead structure as residue pairs (D, 2), and notes.

    The file's disulfide records (:attr:`~gaatool.io.structure.ProteinStructure.disulfides`: SSBOND,
    ``struct_conn``), and the cysteines it names as disulfide-bonded (:data:`DISULFIDE_CYSTEINE_NAMES`)
    paired with each other, nearest beads first, never with a chain neighbour. No pair's beads are farther
    apart than :data:`MAX_DISULFIDE_BEAD_A` in any model; the notes name what that left out.
    """
    def shown(pairs):
        return listed([f"{beads.residue_label(a)}-{beads.residue_label(b)}" for a, b in pairs])

    recorded = beads.disulfides
    recorded_distance = _largest_gaps(beads, recorded[:, 0], recorded[:, 1])  # beads: atom r is residue r
    close = recorded_distance <= MAX_DISULFIDE_BEAD_A
    notes = [f"{beads.source}: the disulfide {shown([pair])} of the file's records has its beads {distance:.1f} Å "
             f"apart (more than {MAX_DISULFIDE_BEAD_A:g} Å): not bonded"
             for pair, distance in zip(recorded[~close].tolist(), recorded_distance[~close])]
    pairs = [tuple(pair) for pair in recorded[close].tolist()]
    used = set(recorded[close].ravel().tolist())
    named = np.isin(beads.file_residue_names, DISULFIDE_CYSTEINE_NAMES) & (beads.residue_names == "CYS")
    named = np.setdiff1d(np.flatnonzero(named), list(used))
    distance = _largest_gaps(beads, named[:, None], named[None])
    previous = structure_previous(beads)
    neighbours = (previous[named][:, None] == named[None]) | (previous[named][None] == named[:, None])
    first, second = np.nonzero(np.triu(distance <= MAX_DISULFIDE_BEAD_A, 1) & ~neighbours)
    paired = []
    for k in np.argsort(distance[first, second], kind="stable"):
        a, b = int(named[first[k]]), int(named[second[k]])
        if a not in used and b not in used:
            used.update((a, b))
            paired.append((a, b))
    names = "/".join(sorted(set(beads.file_residue_names[named].tolist())))
    if paired:
        notes.append(f"{beads.source}: {len(paired)} disulfide(s) between the cysteines named {names}, paired by "
                     f"bead distance: {shown(sorted(paired))}")
    unpaired = [int(r) for r in named if r not in used]
    if unpaired:
        notes.append(f"{beads.source}: {len(unpaired)} cysteine(s) named {names} without such a partner within "
                     f"{MAX_DISULFIDE_BEAD_A:g} Å ({listed([beads.residue_label(r) for r in unpaired])}): "
                     "no disulfide bond for them")
    return np.array(sorted(pairs + paired), dtype=np.int64).reshape(-1, 2), notes


def listed(items: list[str], most: int = 5) -> str:
    """The first ``most`` items, comma-separated, and how many more there are.

    >>> listed(["a", "b", "c"], 2)
    'a, b and 1 more'
    """
    more = f" and {len(items) - most} more" if len(items) > most else ""
    return ", ".join(items[:most]) + more


def neighborhoods(beads: np.ndarray, residue_types: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Inputs of the backmapper for every bead of one frame.

    Parameters
    ----------
    beads : (R, 3) float, Å
    residue_types : (R,) int, indices into ``RESIDUE_NAMES``
    k : int
        Neighbours per bead.

    Returns
    -------
    dict with ``neighbor_index`` (R, K) int64 (-1 where padded),
    ``neighbor_positions`` (R, K, 3) float64 ``r_j - r_i`` in Å (0 where padded),
    ``neighbor_types`` (R, K) int64 (0 where padded) and ``neighbor_mask`` (R, K) bool.

    >>> out = neighborhoods(np.array([[0.0, 0, 0], [1, 0, 0], [3, 0, 0]]), np.array([0, 1, 2]), 2)
    >>> out["neighbor_index"].tolist(), out["neighbor_positions"][2, :, 0].tolist()
    ([[1, 2], [0, 2], [1, 0]], [-2.0, -3.0])
    """
    beads = np.asarray(beads, dtype=np.float64)
    residue_types = np.asarray(residue_types, dtype=np.int64)
    n, k = len(beads), int(k)
    if k < 1:
        raise ConfigError(f"neighbors must be at least 1, got {k}")
    if n == 0:
        raise InputFileError("no beads to build neighbourhoods from")
    if n > k:
        index, _ = nearest_neighbors(beads, None, k)
        mask = np.ones((n, k), dtype=bool)
    else:
        # Too few beads for K neighbours: take all others, nearest first, and pad.
        distance = np.linalg.norm(beads[None] - beads[:, None], axis=-1)
        np.fill_diagonal(distance, np.inf)
        order = np.argsort(distance, axis=1, kind="stable")[:, : n - 1]
        index = np.full((n, k), -1, dtype=np.int64)
        index[:, : n - 1] = order
        mask = index >= 0
    safe = np.where(mask, index, 0)
    positions = np.where(mask[..., None], beads[safe] - beads[:, None], 0.0)
    types = np.where(mask, residue_types[safe], 0)
    return {"neighbor_index": np.where(mask, index, -1), "neighbor_positions": positions,
            "neighbor_types": types, "neighbor_mask": mask}


def residue_types_of(structure: ProteinStructure) -> np.ndarray:
    """Residue type indices (R,) of a structure with only standard residues."""
    return np.array([residue_index(str(name)) for name in structure.residue_names], dtype=np.int64)
