"""Evaluation of backmapping checkpoints on entries not used for training.

Metrics (all lengths in Å; predictions are placed at their residue's bead, no
superposition):

``rmsd_a``, ``backbone_rmsd_a``, ``sidechain_rmsd_a``, ``per_residue``
    heavy-atom RMSD over all atoms, over the backbone (N, CA, C, O and OXT),
    over the side chains (all other atoms), and per residue type.
``bonds``
    deviations of predicted from reference bond lengths. The bonds are the
    reference structure's: atom pairs of one residue closer than 1.9 Å in the
    reference (every covalent heavy-atom bond inside a standard residue is
    shorter, every non-bonded pair longer), and the peptide bond C(i)-N(i+1)
    between consecutive residues that are bonded (< 1.9 Å) in the reference, with
    its planarity: how far the torsion omega (CA-C-N-CA) is from 180 degrees.
``clashes``
    pairs of heavy atoms of residues that are not sequence neighbours whose
    van der Waals overlap is at least 0.6 Å (ChimeraX's default criterion;
    details in :mod:`.sterics`). Counted for the prediction and, for
    comparison, the reference.
``symmetric``
    the RMSDs again with the names of symmetry-equivalent atoms (ASP OD1/OD2, GLU
    OE1/OE2, ARG NH1/NH2, the ring atoms CD1/CD2 and CE1/CE2 of PHE and TYR)
    swapped wherever that fits the prediction better, as structure comparisons
    usually do: a 180-degree flip of those end groups is the same structure.
``crowding``
    pairs of atoms of one residue that are not bonded (at least 1.9 Å apart
    in the reference, as every non-bonded pair of a real residue is) but
    closer than 1.9 Å in the prediction: side-chain atoms that an average
    over rotamers or over equivalent atoms (ASP OD1/OD2, LEU CD1/CD2) put
    almost on top of each other, which neither the bond deviations nor the
    clashes (between residues) show.
``chirality``
    chiral centres (CA of every residue with a CB, CB of THR and ILE) whose
    signed volume has the other sign than in the reference: D instead of L.
``disulfides``
    cysteine pairs whose SG atoms are closer than 2.5 Å in the reference, how
    many of them are as close in the prediction, and spurious close pairs.

With ``relax=True`` the predictions are first relaxed as ``gaatool backmap``
relaxes them (:mod:`.relax`: ideal covalent geometry, no clashes), the peptide
bonds where the dataset links residues (``previous``: same chain, no
residue-number gap, both residues complete); atoms of different entries never
meet.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...checkpoint import load_model
from ...data.splits import SPLIT_NAMES
from ...data.store import is_dataset_file, load_dataset
from ...errors import ConfigError, InputFileError
from ...io.text import check_input_file
from ...train.device import resolve_device
from .covalent import chiral_graph, chiral_volumes
from .dataset import BackmapDatasetConfig, build_backmap_dataset
from .relax import ANGLE_WEIGHT, CHIRAL_WEIGHT, SIDE_CHAIN_ANGLE_WEIGHT, TRANS_WEIGHT, Relaxation
from .residues import LABELS, RESIDUE_NAMES, atom_element, is_backbone
from .sterics import BONDI_RADII, CLASH_OVERLAP_A, HBOND_ALLOWANCE_A, count_clashes
from .train import check_vocabulary, predict_atoms, split_tensors

__all__ = ["BackmapEvaluation", "evaluate_backmap", "evaluate_predictions", "relax_predictions", "count_clashes",
           "symmetric_squared_errors", "EQUIVALENT_ATOMS",
           "BONDI_RADII", "BOND_CUTOFF_A", "CLASH_OVERLAP_A", "HBOND_ALLOWANCE_A"]

BOND_CUTOFF_A = 1.9
DISULFIDE_CUTOFF_A = 2.5

_LABEL_ATOMS = np.array([atom for _, atom in LABELS])
_LABEL_BACKBONE = np.array([is_backbone(atom) for _, atom in LABELS])
_LABEL_ELEMENTS = np.array([atom_element(atom) for _, atom in LABELS])

#: Atoms whose names a 180-degree flip of the residue's end group exchanges (swapped together per residue).
EQUIVALENT_ATOMS = {"ASP": (("OD1", "OD2"),), "GLU": (("OE1", "OE2"),), "ARG": (("NH1", "NH2"),),
                    "PHE": (("CD1", "CD2"), ("CE1", "CE2")), "TYR": (("CD1", "CD2"), ("CE1", "CE2"))}


def symmetric_squared_errors(predicted: np.ndarray, reference: np.ndarray, labels: np.ndarray, mask: np.ndarray,
                             types: np.ndarray) -> tuple[np.ndarray, int]:
    """Squared errors (M, A) with each residue's equivalent atoms (:data:`EQUIVALENT_ATOMS`) swapped where that
    gives the smaller error, and how many residues were swapped."""
    squared = ((predicted - reference) ** 2).sum(-1)
    names = _LABEL_ATOMS[labels]
    swapped_residues = 0
    for residue, pairs in EQUIVALENT_ATOMS.items():
        rows = np.flatnonzero(types == RESIDUE_NAMES.index(residue))
        if not len(rows):
            continue
        first = np.stack([np.argmax(names[rows] == a, axis=1) for a, _ in pairs], axis=1)  # (R, pairs) slots
        second = np.stack([np.argmax(names[rows] == b, axis=1) for _, b in pairs], axis=1)
        present = (np.all(np.take_along_axis(names[rows], first, 1) == [a for a, _ in pairs], axis=1)
                   & np.all(np.take_along_axis(names[rows], second, 1) == [b for _, b in pairs], axis=1)
                   & np.all(np.take_along_axis(mask[rows], first, 1), axis=1)
                   & np.all(np.take_along_axis(mask[rows], second, 1), axis=1))
        rows, first, second = rows[present], first[present], second[present]
        r = rows[:, None]
        first_crossed = ((predicted[r, first] - reference[r, second]) ** 2).sum(-1)  # (R, pairs)
        second_crossed = ((predicted[r, second] - reference[r, first]) ** 2).sum(-1)
        better = (first_crossed + second_crossed).sum(1) < (squared[r, first] + squared[r, second]).sum(1)
        squared[r[better], first[better]] = first_crossed[better]
        squared[r[better], second[better]] = second_crossed[better]
        swapped_residues += int(better.sum())
    return squared, swapped_residues


@dataclass
class BackmapEvaluation:
    """Accuracy and geometry of a checkpoint's reconstructions on one split (lengths in Å)."""

    checkpoint: str
    dataset: str
    split: str
    model: str
    relax: bool
    n_entries: int
    n_residues: int
    n_atoms: int
    rmsd_a: float
    backbone_rmsd_a: float
    sidechain_rmsd_a: float
    per_residue: dict[str, dict[str, float]]
    bonds: dict[str, dict[str, float]]
    clashes: dict[str, Any]
    chirality: dict[str, Any] = field(default_factory=dict)
    crowding: dict[str, Any] = field(default_factory=dict)
    symmetric: dict[str, Any] = field(default_factory=dict)
    disulfides: dict[str, Any] = field(default_factory=dict)
    entries: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint, "dataset": self.dataset, "split": self.split, "model": self.model,
            "relax": self.relax, "entries": self.entries, "n_entries": self.n_entries,
            "n_residues": self.n_residues, "n_atoms": self.n_atoms, "rmsd_a": self.rmsd_a,
            "backbone_rmsd_a": self.backbone_rmsd_a, "sidechain_rmsd_a": self.sidechain_rmsd_a,
            "symmetric": self.symmetric, "per_residue": self.per_residue, "bonds": self.bonds,
            "clashes": self.clashes, "crowding": self.crowding, "chirality": self.chirality, "disulfides": self.disulfides,
            "warnings": self.warnings,
        }


def _rmsd(squared: np.ndarray) -> float:
    return float(np.sqrt(squared.mean())) if squared.size else float("nan")


def _torsion_deg(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> np.ndarray:
    """Torsion angles (degrees, -180..180) of point quadruples (..., 3)."""
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1 = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - (b0 * b1).sum(-1, keepdims=True) * b1
    w = b2 - (b2 * b1).sum(-1, keepdims=True) * b1
    return np.degrees(np.arctan2((np.cross(b1, v) * w).sum(-1), (v * w).sum(-1)))


def evaluate_predictions(predicted: np.ndarray, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Metrics of predicted atom positions (M, A, 3) (relative to the beads, Å) against one split's arrays.

    ``arrays`` holds that split's ``atom_positions``, ``atom_labels``,
    ``atom_mask``, ``residue_types``, ``bead_positions``, ``entry`` and
    ``previous`` (names without the split prefix).
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    reference = np.asarray(arrays["atom_positions"], dtype=np.float64)
    mask = np.asarray(arrays["atom_mask"], dtype=bool)
    labels = np.asarray(arrays["atom_labels"], dtype=np.int64)
    types = np.asarray(arrays["residue_types"], dtype=np.int64)
    squared = ((predicted - reference) ** 2).sum(-1)
    backbone = _LABEL_BACKBONE[labels] & mask
    sidechain = ~_LABEL_BACKBONE[labels] & mask
    per_residue = {}
    for t, name in enumerate(RESIDUE_NAMES):
        rows = types == t
        if rows.any():
            per_residue[name] = {"residues": int(rows.sum()), "rmsd_a": _rmsd(squared[rows][mask[rows]])}

    # bonds inside residues: pairs closer than the cutoff in the reference
    def distances(x):
        return np.linalg.norm(x[:, :, None] - x[:, None], axis=-1)

    ref_d, pred_d = distances(reference), distances(predicted)
    upper = np.triu(np.ones((mask.shape[1], mask.shape[1]), bool), 1)
    pairs = mask[:, :, None] & mask[:, None] & upper & (ref_d < BOND_CUTOFF_A)
    deviation = (pred_d - ref_d)[pairs]
    crowded = mask[:, :, None] & mask[:, None] & upper & (ref_d >= BOND_CUTOFF_A) & (pred_d < BOND_CUTOFF_A)
    crowding = {"pairs": int(crowded.sum()), "residues": int(crowded.any(axis=(1, 2)).sum()),
                "definition": f"atom pairs of one residue, not bonded (>= {BOND_CUTOFF_A} A apart in the reference), "
                              f"closer than {BOND_CUTOFF_A} A"}
    intra = {"count": int(deviation.size)}
    if deviation.size:
        intra.update({"mean_abs_deviation_a": float(np.abs(deviation).mean()),
                      "rms_deviation_a": float(np.sqrt((deviation ** 2).mean())),
                      "max_abs_deviation_a": float(np.abs(deviation).max()),
                      "fraction_over_0.1_a": float((np.abs(deviation) > 0.1).mean())})

    # peptide bonds C(previous)-N(this)
    beads = np.asarray(arrays["bead_positions"], dtype=np.float64)
    names = _LABEL_ATOMS[labels]
    has = lambda atom: (names == atom) & mask  # noqa: E731
    c_index, n_index = has("C").argmax(1), has("N").argmax(1)
    previous = np.asarray(arrays["previous"], dtype=np.int64)
    rows = np.flatnonzero((previous >= 0) & has("N").any(1))
    rows = rows[has("C").any(1)[previous[rows]]]
    prev = previous[rows]

    def peptide(rel):
        c = beads[prev] + rel[prev, c_index[prev]]
        n = beads[rows] + rel[rows, n_index[rows]]
        return np.linalg.norm(n - c, axis=-1)

    ref_pep, pred_pep = peptide(reference), peptide(predicted)
    bonded = ref_pep < BOND_CUTOFF_A
    peptide_stats = {"count": int(bonded.sum())}
    if bonded.any():
        dev = pred_pep[bonded] - ref_pep[bonded]
        peptide_stats.update({"mean_length_a": float(pred_pep[bonded].mean()),
                              "reference_mean_length_a": float(ref_pep[bonded].mean()),
                              "mean_abs_deviation_a": float(np.abs(dev).mean()),
                              "rms_deviation_a": float(np.sqrt((dev ** 2).mean()))})
        # planarity: the torsion omega = CA(i)-C(i)-N(i+1)-CA(i+1), 180 degrees for a trans peptide bond
        with_ca = bonded & has("CA").any(1)[prev] & has("CA").any(1)[rows]
        if with_ca.any():
            ca_index = has("CA").argmax(1)
            p, r = prev[with_ca], rows[with_ca]

            def omega(rel):
                points = [beads[p] + rel[p, ca_index[p]], beads[p] + rel[p, c_index[p]],
                          beads[r] + rel[r, n_index[r]], beads[r] + rel[r, ca_index[r]]]
                return np.abs(_torsion_deg(*points))

            off = 180.0 - omega(predicted)
            peptide_stats.update({"omega_mean_abs_deviation_deg": float(off.mean()),
                                  "omega_fraction_over_20_deg": float((off > 20).mean()),
                                  "reference_omega_mean_abs_deviation_deg": float((180.0 - omega(reference)).mean())})

    # chirality: centres whose signed volume has the other sign than in the reference (D instead of L)
    flat_names = np.asarray(RESIDUE_NAMES)[types]
    atom_rows = np.broadcast_to(np.arange(len(mask))[:, None], mask.shape)[mask]
    centres, _ = chiral_graph(flat_names, atom_rows, names[mask])
    flipped = np.sign(chiral_volumes(predicted[mask], centres)[0]) != np.sign(chiral_volumes(reference[mask],
                                                                                                centres)[0])
    chirality = {"centres": int(len(centres)), "inverted": int(flipped.sum()),
                 "definition": "CA (and THR/ILE CB) whose signed volume has the other sign than the reference's"}

    # disulfides: CYS SG pairs of one entry closer than 2.5 Å in the reference, and in the prediction
    entries = np.asarray(arrays["entry"])
    sulfur_rows = np.flatnonzero(has("SG").any(1))
    sulfur_index = has("SG").argmax(1)[sulfur_rows]

    def sulfur_bonds(rel):
        x = beads[sulfur_rows] + rel[sulfur_rows, sulfur_index]
        close = np.linalg.norm(x[:, None] - x[None], axis=-1) < DISULFIDE_CUTOFF_A
        return np.triu(close & (entries[sulfur_rows][:, None] == entries[sulfur_rows][None]), 1)

    ss_reference, ss_predicted = sulfur_bonds(reference), sulfur_bonds(predicted)
    disulfides = {"reference": int(ss_reference.sum()), "formed": int((ss_reference & ss_predicted).sum()),
                  "spurious": int((ss_predicted & ~ss_reference).sum()),
                  "definition": f"CYS SG pairs closer than {DISULFIDE_CUTOFF_A} A"}

    # clashes, per entry
    clashes_pred = clashes_ref = 0
    for entry in np.unique(entries):
        rows_e = np.flatnonzero(entries == entry)
        local = np.full(len(entries), -1)
        local[rows_e] = np.arange(len(rows_e))
        excluded = np.zeros((len(rows_e), len(rows_e)), bool)
        prev_e = previous[rows_e]
        linked = prev_e >= 0
        a, b = local[prev_e[linked]], np.flatnonzero(linked)
        excluded[a, b] = excluded[b, a] = True
        m = mask[rows_e]
        residue_of = np.broadcast_to(np.arange(len(rows_e))[:, None], m.shape)[m]
        elements = _LABEL_ELEMENTS[labels[rows_e]][m]
        sulfur = ((names[rows_e] == "SG") & m)[m]
        absolute = beads[rows_e, None]
        clashes_pred += count_clashes((absolute + predicted[rows_e])[m], elements, residue_of, excluded, sulfur)
        clashes_ref += count_clashes((absolute + reference[rows_e])[m], elements, residue_of, excluded, sulfur)
    n_atoms = int(mask.sum())
    symmetric, swapped = symmetric_squared_errors(predicted, reference, labels, mask, types)
    return {
        "n_residues": int(len(types)),
        "n_atoms": n_atoms,
        "rmsd_a": _rmsd(squared[mask]),
        "backbone_rmsd_a": _rmsd(squared[backbone]),
        "sidechain_rmsd_a": _rmsd(squared[sidechain]),
        "symmetric": {"rmsd_a": _rmsd(symmetric[mask]), "sidechain_rmsd_a": _rmsd(symmetric[sidechain]),
                      "residues_swapped": swapped,
                      "definition": "names of " + ", ".join(f"{r} {'/'.join('-'.join(p) for p in pairs)}"
                                                            for r, pairs in EQUIVALENT_ATOMS.items())
                                    + " swapped per residue where that fits better"},
        "per_residue": per_residue,
        "bonds": {"intra_residue": intra, "peptide": peptide_stats},
        "crowding": crowding,
        "chirality": chirality,
        "disulfides": disulfides,
        "clashes": {"predicted": clashes_pred, "reference": clashes_ref,
                    "predicted_per_1000_atoms": 1000.0 * clashes_pred / max(n_atoms, 1),
                    "definition": "heavy atoms of non-adjacent residues with vdW overlap >= 0.6 A "
                                  "(0.4 A H-bond allowance for N/O pairs; S-S ignored; Bondi radii)"},
    }


def relax_predictions(predicted: np.ndarray, arrays: dict[str, np.ndarray], clashes: bool = True,
                      angle_weight: float = ANGLE_WEIGHT, chiral_weight: float = CHIRAL_WEIGHT,
                      trans_weight: float = TRANS_WEIGHT, disulfides: bool = True,
                      side_chain_angle_weight: float = SIDE_CHAIN_ANGLE_WEIGHT, **options) -> np.ndarray:
    """Predicted positions (M, A, 3) relative to the beads, relaxed as :func:`.relax.relax_structure` does.

    ``arrays`` as in :func:`evaluate_predictions`; only ``atom_labels``,
    ``atom_mask``, ``residue_types``, ``bead_positions``, ``previous`` and ``entry`` are used.
    ``clashes``, ``disulfides`` and the weights as in :func:`.relax.relax_structure` (0: without those terms);
    ``options``: keyword arguments of :func:`.relax.relax_positions` (restraint, repulsion, overlap).
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    mask = np.asarray(arrays["atom_mask"], dtype=bool)
    labels = np.asarray(arrays["atom_labels"], dtype=np.int64)
    beads = np.asarray(arrays["bead_positions"], dtype=np.float64)
    residue_names = np.asarray(RESIDUE_NAMES)[np.asarray(arrays["residue_types"], dtype=np.int64)]
    atom_residues = np.broadcast_to(np.arange(len(mask))[:, None], mask.shape)[mask]
    # entries share no coordinate frame: their atoms never meet
    relaxation = Relaxation(residue_names, atom_residues, _LABEL_ATOMS[labels][mask], _LABEL_ELEMENTS[labels][mask],
                            arrays["previous"], groups=arrays["entry"], clashes=clashes, angle_weight=angle_weight,
                            chiral_weight=chiral_weight, trans_weight=trans_weight, disulfides=disulfides,
                            side_chain_angle_weight=side_chain_angle_weight)
    absolute = relaxation((beads[:, None] + predicted)[mask], **options)
    out = predicted.copy()
    out[mask] = absolute - np.broadcast_to(beads[:, None], predicted.shape)[mask]
    return out


def evaluate_backmap(checkpoint: str | Path, dataset: str | Path, split: str = "test", device: str = "auto",
                     batch_size: int = 512, relax: bool = False,
                     relax_options: dict[str, Any] | None = None) -> BackmapEvaluation:
    """Evaluate a backmapping checkpoint on ``split`` of a dataset from ``gaatool data pdb``.

    ``relax``: relax the predictions first (:func:`relax_predictions`, with ``relax_options``).
    """
    if split not in SPLIT_NAMES:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_NAMES)}")
    if isinstance(batch_size, bool) or int(batch_size) < 1:  # a negative one scored an empty prediction
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    model, metadata = load_model(checkpoint, task="backmap")
    check_vocabulary(metadata, str(checkpoint))
    check_input_file(dataset, "a dataset of `gaatool data pdb` or a structure file")
    if is_dataset_file(dataset):
        arrays, dataset_metadata = load_dataset(dataset, expected_task="backmap")
    else:  # all-atom structures of one's own: beads and neighbourhoods as the checkpoint was trained on
        if split != "test":
            raise ConfigError(f"{dataset}: a structure file, not a dataset of `gaatool data pdb`: its residues are "
                              "evaluated, as the test split (leave out --split)")
        built = build_backmap_dataset(
            [dataset], BackmapDatasetConfig(bead=str(metadata.get("bead", "centroid")),
                                            neighbors=int(metadata.get("neighbors", 16))), every_entry_in="test")
        if built.skipped_files:
            raise InputFileError(f"{dataset}: {built.skipped_files[0][1]}")
        arrays, dataset_metadata = built.arrays, built.metadata
    check_vocabulary(dataset_metadata, str(dataset))
    for key in ("bead", "neighbors"):
        if key in metadata and dataset_metadata.get(key) != metadata[key]:
            raise InputFileError(f"{dataset}: built with {key}={dataset_metadata.get(key)!r} but the checkpoint was "
                                 f"trained with {key}={metadata[key]!r}; rebuild the dataset to match")
    tensors = split_tensors(arrays, split, str(dataset))
    n_rows = len(tensors["residue_types"])
    if n_rows == 0:
        raise InputFileError(f"{dataset}: the {split!r} split is empty; choose another --split or rebuild the "
                             "dataset with entries for it")
    target = resolve_device(device)
    model = model.to(target).eval()
    # residues of similar size share a batch (little padding through the model); rows keep their places
    order = torch.argsort(tensors["atom_mask"].sum(-1), stable=True)
    predicted = np.zeros(tuple(tensors["atom_positions"].shape))
    with torch.no_grad():
        for start in range(0, n_rows, batch_size):
            rows = order[start:start + batch_size]
            batch = {key: value[rows].to(target) for key, value in tensors.items()}
            predicted[rows.numpy()] = predict_atoms(model, batch).double().cpu().numpy()
    split_arrays = {key.split("/", 1)[1]: value for key, value in arrays.items() if key.startswith(f"{split}/")}
    if relax:
        predicted = relax_predictions(predicted, split_arrays, **(relax_options or {}))
    metrics = evaluate_predictions(predicted, split_arrays)
    entry_names = [e["entry"] for e in dataset_metadata.get("entries", [])]
    used = sorted({entry_names[i] for i in np.unique(split_arrays["entry"])}) if entry_names else []
    training = set(metadata.get("data", {}).get("train_entries", []))
    overlap = sorted(set(used) & training)
    warnings = [f"entries {overlap} of the {split!r} split were used to train this checkpoint"] if overlap else []
    return BackmapEvaluation(
        checkpoint=str(checkpoint), dataset=str(dataset), split=split, model=metadata["model"]["name"],
        relax=bool(relax), n_entries=len(used), entries=used, warnings=warnings, **metrics)
