"""Relaxation of backmapped heavy atoms: ideal covalent geometry, no clashes (a step after the network).

The network places every residue's atoms independently, so bond lengths and
the peptide C(i)-N(i+1) distance come out wrong, and atoms of residues that
meet in space may overlap. :func:`relax_positions` moves the atoms to the minimum of

    E(x) = sum_bonds (|x_a - x_b| - L_ab)^2 + a * sum_angles (|x_a - x_b| - A_ab)^2
           + v * sum_chiral (V(x) - V_0)^2 + c * sum_clashes (|x_a - x_b| - T_ab)^2
           + w * sum_atoms |x - x_pred|^2

(lengths in Å) by Gauss-Newton in float64 from the prediction (sparse direct
solves; at most a fixed number of iterations), which is deterministic and
equivariant under rotations and translations to rounding. The bonds
(:func:`.covalent.bond_graph`): every covalent heavy-atom bond of the residue's template,
C-OXT at chain ends, and the peptide bond between
consecutive residues of one chain that are not separated by a chain break.
The angles: 1-3 distances A_ab of atom pairs bonded to a common atom, in every residue
and across the peptide bond (those among the backbone atoms and CB, :data:`ANGLE_ATOMS`, with
their own weight), and
the 1-4 distances CA-CA and O-CA that make each peptide bond trans (not those
into a proline, which may be cis), with zero signed volumes that hold every
peptide group planar (:func:`.covalent.planar_graph`). The
chiral centres (:func:`.covalent.chiral_graph`): signed volumes V that keep every CA (and
the CB of THR and ILE) in the L configuration, which distances alone cannot tell
from its mirror image.
Ideal lengths, 1-3 distances and volumes: :mod:`.covalent`. The clash terms (with
:class:`.sterics.Contacts`) act only while a pair of atoms that the clash
criterion counts is closer than T_ab, the sum of their van der Waals radii
(less 0.4 Å for N/O pairs, which may hydrogen-bond), so the energy stays smooth.
Cysteines whose SG atoms the network puts close together are bonded as
disulfides (:func:`.covalent.disulfide_graph`), and so are those the input says are bonded
(:attr:`~gaatool.io.structure.ProteinStructure.disulfides`), however far apart the network puts them.
The side chains' bond angles are held too (:data:`SIDE_CHAIN_ANGLE_WEIGHT`): the network's averages over
rotamers and over equivalent atoms can put atoms two bonds apart almost on top of each other. Torsions are
not restrained.
"""
from __future__ import annotations

import numpy as np

from ...errors import InputFileError
from ...io.structure import ProteinStructure
from .coarse_grain import structure_previous
from .covalent import bond_graph, chiral_graph, chiral_volumes, disulfide_graph, planar_graph
from .sterics import Contacts

__all__ = ["RESTRAINT", "ITERATIONS", "REPULSION", "TARGET_OVERLAP_A", "ANGLE_WEIGHT", "ANGLE_ATOMS",
           "SIDE_CHAIN_ANGLE_WEIGHT", "TRANS_WEIGHT", "CHIRAL_WEIGHT", "disulfide_terms", "geometry_terms", "volume_terms", "relax_positions",
           "relax_structure"]

#: Weight w of the restraint to the network's prediction (Å^-2 relative to the bond terms). Chosen on the
#: validation entries of the pretrained model's dataset, where the all-atom RMSD is flat in w
#: (1.579 / 1.571 / 1.569 / 1.567 Å at w = 0.2 / 0.05 / 0.02 / 0.005): small enough for ideal bonds.
RESTRAINT = 0.02
#: Gauss-Newton iterations (at most; fewer when converged).
ITERATIONS = 20
#: Weight c of the clash terms relative to the bonds, and the van der Waals overlap (Å) they leave
#: (T_ab = r_a + r_b - overlap). Chosen on the validation entries of the backmapping models' dataset, where
#: every choice left no clash and the RMSD is flat in the overlap (the centroid model 0.865 / 0.863 /
#: 0.861 Å at 0.4 / 0.2 / 0 Å, 0.867 with bonds only; C-alpha 1.398 / 1.397 / 1.395, 1.404):
#: ``python -m gaatool.tasks.backmap.relax_sweep CHECKPOINT DATASET --restraints 0.02 --overlaps 0.4,0.2,0
#: --angle-weights 0 --chiral-weights 0 --trans-weights 0 --no-disulfides``, and with ``--no-clashes`` too.
REPULSION = 1.0
TARGET_OVERLAP_A = 0.0
#: Weight of the bond-angle (1-3 distance) terms relative to the bonds, and the atoms they hold: the backbone
#: and CB, which the beads place well. On the validation entries these angles brought the centroid model's
#: RMSD from 0.861 to 0.840 Å (backbone 0.597 -> 0.540, side chains 1.068 -> 1.065; C-alpha model 1.395 ->
#: 1.382, paper inputs 1.560 -> 1.549; ``python -m gaatool.tasks.backmap.relax_sweep CHECKPOINT DATASET
#: --restraints 0.02 --angle-weights 0,1 --chiral-weights 0 --trans-weights 0 --no-disulfides
#: --side-chain-angle-weights 0``). The side-chain angles have a weight of their own (below).
ANGLE_WEIGHT = 1.0
ANGLE_ATOMS = ("N", "CA", "C", "O", "OXT", "CB")
#: Weight of the remaining bond angles (1-3 distances of side-chain atoms beyond CB). The network's side
#: chains are averages over rotamers and over equivalent atoms, so atoms two bonds apart (LEU CD1/CD2, ASP
#: OD1/OD2, ARG NH1/NH2) may come out under 1 Å apart; without these terms the relaxation kept most of
#: them. Validation entries (``python -m gaatool.tasks.backmap.relax_sweep CHECKPOINT DATASET --restraints
#: 0.02 --side-chain-angle-weights 0,0.1,0.3,1,3``), crowded pairs (evaluate.py) and RMSD at weight 0 / 1:
#: centroid model 742 / 1 pairs, 0.822 / 0.858 Å (0.1, 0.3, 3: 4, 2, 1 pairs); C-alpha model 1538 / 4,
#: 1.372 / 1.415 Å; the paper's inputs 1934 / 42, 1.463 / 1.510 Å. Chemically possible side chains for
#: ~0.04 Å of RMSD: the held angles push the averaged side chains out towards one rotamer.
SIDE_CHAIN_ANGLE_WEIGHT = 1.0
#: Weight of the chiral-volume terms (Å^-4 relative to the bonds): they keep the L configuration at CA (and
#: THR/ILE's CB) where the network's CB sits near the N-CA-C plane or beyond it. Validation entries, centroid
#: model: inverted centres 46 -> 0, RMSD 0.840 -> 0.833 Å (``--restraints 0.02 --angle-weights 1
#: --chiral-weights 0,1 --trans-weights 0 --no-disulfides``).
CHIRAL_WEIGHT = 1.0
#: Weight of the trans-peptide terms: CA-CA and O-CA 1-4 distances (trans) and zero signed volumes of the
#: peptide groups (planar). Validation entries, centroid model: RMSD 0.833 -> 0.823 Å, backbone 0.520 ->
#: 0.496 Å (``--restraints 0.02 --trans-weights 0,1,3 --no-disulfides``; 3 gives the same).
TRANS_WEIGHT = 1.0
_EPS = 1e-12  # inside the square root: a finite gradient where two atoms coincide


def disulfide_terms(residue_names, atom_residues, atom_names, positions, angle_weight: float = ANGLE_WEIGHT,
                    groups=None, known=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The disulfide bonds ``known`` (cysteine residue pairs) and found at ``positions``
    (:func:`.covalent.disulfide_graph`) as pair terms: pairs (T, 2), ideal distances (T,), weights (T,: 1 for
    the bonds, ``angle_weight`` for CB-SG), and the CB-SG pairs (A, 2), closer than their van der Waals radii,
    for :meth:`.sterics.Contacts.exempting`."""
    bonds, bond_lengths, angles, angle_lengths = disulfide_graph(residue_names, atom_residues, atom_names,
                                                                 positions, groups, known)
    weights = np.concatenate([np.ones(len(bonds)), np.full(len(angles), float(angle_weight))])
    return np.concatenate([bonds, angles]), np.concatenate([bond_lengths, angle_lengths]), weights, angles


def volume_terms(residue_names, atom_residues, atom_names, previous, chiral_weight: float = CHIRAL_WEIGHT,
                 trans_weight: float = TRANS_WEIGHT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The signed-volume terms of the relaxation: chiral centres at their L volumes (``chiral_weight``) and
    peptide groups held planar (``trans_weight``, with the trans 1-4 distances of :func:`geometry_terms`).
    Returns quadruples (V, 4), target volumes (V,) in Å^3 and weights (V,)."""
    parts = [(np.zeros((0, 4), np.int64), np.zeros(0), np.zeros(0))]
    if chiral_weight:
        centres, volumes = chiral_graph(residue_names, atom_residues, atom_names)
        parts.append((centres, volumes, np.full(len(volumes), float(chiral_weight))))
    if trans_weight:
        planar = planar_graph(residue_names, atom_residues, atom_names, previous)
        parts.append((planar, np.zeros(len(planar)), np.full(len(planar), float(trans_weight))))
    return tuple(np.concatenate(arrays) for arrays in zip(*parts))


def geometry_terms(residue_names, atom_residues, atom_names, previous, angle_weight: float = ANGLE_WEIGHT,
                   trans_weight: float = TRANS_WEIGHT, side_chain_angle_weight: float = SIDE_CHAIN_ANGLE_WEIGHT,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The covalent pair terms of the relaxation: bonds (weight 1), the 1-3 pairs of the bond angles among
    :data:`ANGLE_ATOMS` (``angle_weight``), those of the other (side-chain) angles (``side_chain_angle_weight``)
    and the 1-4 pairs of trans peptide bonds (``trans_weight``); a weight 0 leaves those out. Returns pairs
    (T, 2), ideal distances (T,) in Å and weights (T,), in that order."""
    pairs, lengths = bond_graph(residue_names, atom_residues, atom_names, previous)
    parts = [(pairs, lengths, np.ones(len(lengths)))]
    if angle_weight or side_chain_angle_weight:
        angle_pairs, angle_lengths = bond_graph(residue_names, atom_residues, atom_names, previous, "angles")
        held = np.isin(np.asarray(atom_names, dtype=str)[angle_pairs], ANGLE_ATOMS).all(axis=1)
        for chosen, weight in ((held, angle_weight), (~held, side_chain_angle_weight)):
            if weight:
                parts.append((angle_pairs[chosen], angle_lengths[chosen], np.full(int(chosen.sum()), float(weight))))
    if trans_weight:
        trans_pairs, trans_lengths = bond_graph(residue_names, atom_residues, atom_names, previous, "trans")
        parts.append((trans_pairs, trans_lengths, np.full(len(trans_lengths), float(trans_weight))))
    return tuple(np.concatenate(arrays) for arrays in zip(*parts))


class _Terms:
    """The energy's terms: pairs held at a distance (bonds, angles, trans peptides and, with contacts, the
    clashing pairs, pulled to their target distance with weight ``repulsion`` only while closer) and
    quadruples held at a signed volume (chirality, planarity)."""

    def __init__(self, pairs, lengths, weights, contacts, repulsion: float, overlap: float, volumes):
        self.a, self.b, self.ideal, self.weights = pairs[:, 0], pairs[:, 1], lengths, weights
        self.contacts, self.repulsion, self.overlap = contacts, repulsion, overlap
        if volumes is None:
            volumes = (np.zeros((0, 4), np.int64), np.zeros(0), np.zeros(0))
        self.centres, self.volumes, self.volume_weights = (np.asarray(v) for v in volumes)
        self._last = (None, None)  # the positions last searched for contacts, and the terms found there

    def at(self, x):
        """(a, b, target, weight) of every active term at positions x. The contact search of the last
        positions is kept: the step accepted by the line search is where the next step starts."""
        if self.contacts is None:
            return self.a, self.b, self.ideal, self.weights
        if self._last[0] is not x:
            i, j, target = self.contacts.overlapping(x, self.overlap)
            self._last = (x, (np.concatenate([self.a, i]), np.concatenate([self.b, j]),
                              np.concatenate([self.ideal, target]),
                              np.concatenate([self.weights, np.full(len(i), self.repulsion)])))
        return self._last[1]

    def energy(self, x, reference, restraint) -> float:
        a, b, target, weight = self.at(x)
        d = x[a] - x[b]
        distance = np.sqrt((d * d).sum(-1) + _EPS)
        volume = (self.volume_weights * (chiral_volumes(x, self.centres)[0] - self.volumes) ** 2).sum()
        return float((weight * (distance - target) ** 2).sum() + volume + restraint * ((x - reference) ** 2).sum())


def _solve(matrix, rhs):
    """matrix^-1 rhs for the symmetric positive definite normal matrix: SuperLU in symmetric mode with a
    minimum-degree order (clash terms join atoms far apart in the chain; this order keeps the factor
    sparse, and was faster than a general LU in either the natural or a column order)."""
    from scipy.sparse.linalg import splu

    lu = splu(matrix, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    return lu.solve(rhs)


def relax_positions(positions, pairs, lengths, restraint: float = RESTRAINT, iterations: int = ITERATIONS,
                    contacts: Contacts | None = None, repulsion: float = REPULSION,
                    overlap: float = TARGET_OVERLAP_A, weights=None, volumes=None) -> np.ndarray:
    """Minimise the energy of the module docstring from ``positions`` (N, 3), Å.

    Gauss-Newton steps (each a sparse direct solve of the normal equations,
    with step halving while the energy would rise), at most ``iterations``,
    until a step moves the atoms by less than 1e-10 Å (RMS). ``pairs`` (T, 2) are held at ``lengths`` (T,)
    with ``weights`` (T,; default 1: bonds), e.g. from :func:`geometry_terms`; ``volumes`` (quadruples,
    target signed volumes, weights) from :func:`volume_terms`. With ``contacts``
    (:class:`.sterics.Contacts` of these atoms), pairs that overlap by more than
    ``overlap`` Å are pushed apart with weight ``repulsion``. Returns new
    positions (N, 3) float64; a copy of the input when there are no bonds, or
    if the input holds non-finite values or the result would.
    """
    from scipy.sparse import coo_matrix, identity

    start = np.asarray(positions, dtype=np.float64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) == 0 or not np.all(np.isfinite(start)):
        return start.copy()
    n = len(start)
    center = start.mean(axis=0)
    reference = start - center  # centred: translation-equivariant and well conditioned
    lengths = np.asarray(lengths, dtype=np.float64)
    weights = np.ones(len(lengths)) if weights is None else np.asarray(weights, dtype=np.float64)
    terms = _Terms(pairs, lengths, weights, contacts, repulsion, overlap, volumes)
    k = np.arange(3)
    damping = restraint * identity(3 * n, format="csc")
    x = reference.copy()
    energy = terms.energy(x, reference, restraint)
    for _ in range(int(iterations)):
        a, b, target, weight = terms.at(x)
        d = x[a] - x[b]
        distance = np.sqrt((d * d).sum(-1) + _EPS)
        u = d / distance[:, None]
        residual = (weight * (distance - target))[:, None] * u
        gradient = restraint * (x - reference)  # half the gradient of the energy
        for axis in range(3):
            gradient[:, axis] += (np.bincount(a, residual[:, axis], minlength=n)
                                  - np.bincount(b, residual[:, axis], minlength=n))
        # signed volumes: residual V - V0 with gradient g_k on each of the term's four atoms
        volume, grads = chiral_volumes(x, terms.centres)
        volume_residual = terms.volume_weights * (volume - terms.volumes)
        np.add.at(gradient, terms.centres, volume_residual[:, None, None] * grads)
        # the 3x3 blocks (a,a), (b,b), (a,b), (b,a) of every pair term, and (k,l) of every volume term
        uu = weight[:, None, None] * u[:, :, None] * u[:, None, :]
        gg = (terms.volume_weights[:, None, None, None, None] * grads[:, :, None, :, None]
              * grads[:, None, :, None, :])  # (V, 4, 4, 3, 3)
        block_atoms_a = np.concatenate([a, b, a, b, np.repeat(terms.centres, 4, axis=1).ravel()])
        block_atoms_b = np.concatenate([a, b, b, a, np.tile(terms.centres, (1, 4)).ravel()])
        shape = (len(block_atoms_a), 3, 3)
        rows = np.broadcast_to(block_atoms_a[:, None, None] * 3 + k[None, :, None], shape).ravel()
        cols = np.broadcast_to(block_atoms_b[:, None, None] * 3 + k[None, None, :], shape).ravel()
        data = np.concatenate([uu, uu, -uu, -uu, gg.reshape(-1, 3, 3)]).ravel()
        normal = coo_matrix((data, (rows, cols)), shape=(3 * n, 3 * n)).tocsc() + damping
        step = -_solve(normal, gradient.ravel()).reshape(n, 3)
        if not np.all(np.isfinite(step)):
            break
        t = 1.0
        while t >= 1e-3:
            candidate = x + t * step
            trial = terms.energy(candidate, reference, restraint)
            if trial <= energy:
                break
            t *= 0.5
        else:
            break  # no decrease: at the minimum to rounding
        x, energy = candidate, trial
        if t * np.sqrt((step * step).sum() / n) < 1e-10:
            break
    result = x + center
    return result if np.all(np.isfinite(result)) else start.copy()


class Relaxation:
    """The relaxation of one set of atoms (a structure's, or a dataset split's): its covalent, chirality,
    planarity and contact terms, built once, applied to any positions of those atoms (models, frames).

    ``groups`` (R,): residues of different groups never meet (entries of a dataset). ``clashes``: push
    clashing atoms apart; ``angle_weight``, ``chiral_weight`` or ``trans_weight`` 0: no bond-angle,
    chirality or trans-peptide terms; ``disulfides``: bond the cysteine residue pairs ``known_disulfides``
    (K, 2) and those whose SG atoms are close in the positions relaxed (:func:`.covalent.disulfide_graph`).
    """

    def __init__(self, residue_names, atom_residues, atom_names, elements, previous, groups=None, *,
                 clashes: bool = True, angle_weight: float = ANGLE_WEIGHT, chiral_weight: float = CHIRAL_WEIGHT,
                 trans_weight: float = TRANS_WEIGHT, disulfides: bool = True,
                 side_chain_angle_weight: float = SIDE_CHAIN_ANGLE_WEIGHT, known_disulfides=None):
        self.names = (residue_names, atom_residues, atom_names)
        self.groups, self.angle_weight, self.disulfides = groups, angle_weight, disulfides
        self.known_disulfides = known_disulfides
        self.pairs, self.lengths, self.weights = geometry_terms(*self.names, previous, angle_weight, trans_weight,
                                                                side_chain_angle_weight)
        self.volumes = volume_terms(*self.names, previous, chiral_weight, trans_weight)
        self.contacts = Contacts.of(elements, atom_names, atom_residues, previous, groups) if clashes else None

    def __call__(self, positions, **options) -> np.ndarray:
        """:func:`relax_positions` of ``positions`` (N, 3) with these terms (and the disulfides found there);
        ``options``: its restraint, iterations, repulsion and overlap."""
        pairs, lengths, weights, exempt = self.pairs, self.lengths, self.weights, np.zeros((0, 2), np.int64)
        if self.disulfides:
            bridge_pairs, bridge_lengths, bridge_weights, exempt = disulfide_terms(
                *self.names, positions, self.angle_weight, self.groups, self.known_disulfides)
            pairs, lengths = np.concatenate([pairs, bridge_pairs]), np.concatenate([lengths, bridge_lengths])
            weights = np.concatenate([weights, bridge_weights])
        contacts = None if self.contacts is None else self.contacts.exempting(exempt)
        return relax_positions(positions, pairs, lengths, contacts=contacts, weights=weights, volumes=self.volumes,
                               **options)


def relax_structure(structure: ProteinStructure, restraint: float = RESTRAINT, iterations: int = ITERATIONS,
                    clashes: bool = True, angle_weight: float = ANGLE_WEIGHT, chiral_weight: float = CHIRAL_WEIGHT,
                    trans_weight: float = TRANS_WEIGHT, disulfides: bool = True,
                    side_chain_angle_weight: float = SIDE_CHAIN_ANGLE_WEIGHT) -> ProteinStructure:
    """A copy of a heavy-atom structure with every model relaxed (see the module docstring).

    Residues follow each other by chain and residue number, or the structure's recorded breaks
    (:func:`structure_previous`); ``clashes``, the weights and ``disulfides`` as in :class:`Relaxation`, with the
    structure's recorded :attr:`~gaatool.io.structure.ProteinStructure.disulfides` bonded however far apart.
    """
    relaxation = Relaxation(structure.residue_names, structure.atom_residues, structure.atom_names,
                            structure.elements, structure_previous(structure), clashes=clashes,
                            angle_weight=angle_weight, chiral_weight=chiral_weight, trans_weight=trans_weight,
                            disulfides=disulfides, side_chain_angle_weight=side_chain_angle_weight,
                            known_disulfides=structure.disulfides)
    frames = []
    for model, positions in enumerate(structure.positions):
        try:
            frames.append(relaxation(positions, restraint=restraint, iterations=iterations))
        except InputFileError as err:  # atoms piled up: say where, and how to do without
            raise InputFileError(f"{structure.source}, model {model}: cannot relax: {err}; --no-relax skips "
                                 "the relaxation") from None
    return structure.with_positions(np.stack(frames))
