"""Apply a crystal checkpoint to simulation snapshots: per-particle structure labels.

Lengths are made dimensionless like the training data: divided by the frame's
nearest-neighbour distance, measured as the median over particles of the
distance to their closest neighbour (or given with ``scale``). The training
replicas are normalised by the same measurement, so thermal noise biases both
sides alike. Particle types
of the file are mapped onto the model's types by name, with ``type_map``,
(single-type files) onto the model's first type, or, when they are element
names of one of the model's training cells (Cs and Cl of CsCl), as in that cell.

Labels come from the class probabilities of each particle averaged with
those of the 12 neighbours the model looked at, its own weighing 4 times a
neighbour's (``smooth`` rounds, default 1; 0 gives the model's own
per-particle output; :mod:`.smoothing`). Thermal noise makes per-particle
errors mostly independent, so one round fixes most of them: the shipped model
at noise 0.1 on bulk fcc/hcp/bcc 93-94% -> 99.8-100% right, cP46-Si 65% -> 88%,
cF136-Si 85% -> 99.6% (``tests/test_pretrained.py``), while single hcp-like
layers in fcc (twin boundaries, random stackings) keep their labels; a second
round erases such layers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch

from ...checkpoint import load_model
from ...data.neighbors import NeighborFinder, nearest_neighbor_distance
from ...errors import ConfigError, InputFileError
from ...io.atomic import atomic_path
from ...io.frame import Frame
from ...io.readers import read_frames
from ...models.crystal import CrystalClassifier
from ...nn.compiled import FixedBatchCompiled, check_compile_mode, compiled_batch_size, should_compile
from ...train.device import resolve_device
from .dataset import type_pair_encoding
from .smoothing import average_over_neighbors, check_rounds

__all__ = ["FrameLabels", "IdentifyResult", "Identifier", "identify_file", "default_crystal_checkpoint",
           "parse_type_map", "species_type_map", "uncertainty_note", "uncertain_confidence", "UNKNOWN",
           "DEFAULT_SMOOTH"]

#: Label of particles below the confidence threshold.
UNKNOWN = -1
#: Without --threshold, identify notes frames where more than UNCERTAIN_FRACTION of the particles have
#: a confidence below :func:`uncertain_confidence`. The model knows only its classes: a Lennard-Jones
#: liquid (tests/files/md) gets close-packed labels. With the model's own probabilities (smooth 0), 85%
#: of the liquid is below 0.99 against 7% and 8% of LJ fcc and hcp near melting; averaged over
#: neighbours (smooth 1), 66% of the liquid is below 0.8 against 4% and 1% of the crystals (averaging
#: pulls every confidence down, a liquid's most). The clathrates at 5% noise, the least certain
#: classes, stay well below half either way (tests/test_pretrained.py).
UNCERTAIN_CONFIDENCE = 0.99
SMOOTHED_UNCERTAIN_CONFIDENCE = 0.8
UNCERTAIN_FRACTION = 0.5
#: Default rounds of neighbour averaging of the class probabilities (see the module docstring).
DEFAULT_SMOOTH = 1
#: Longest periodic box vector accepted, in nearest-neighbour distances (Identifier._check_box_size).
MAX_BOX_OVER_SCALE = 1e5


def default_crystal_checkpoint() -> Path:
    """The pretrained crystal model shipped in ``pretrained/`` (next to the package or in the repo)."""
    from ..pretrained import pretrained_path

    return pretrained_path("crystal.safetensors")


def species_type_map(names: set[str], species: Mapping[str, Mapping[str, str]]) -> dict[str, str] | None:
    """Model types for a frame's type names taken as elements, from the cells the model was trained on.

    ``species``: per class, model type -> element name of its cell (checkpoint
    metadata). Every class whose elements include all ``names`` proposes its
    map; the result is their union if they agree, else (or without any) None.

    >>> species_type_map({"Cs", "Cl"}, {"cF4-Cu": {"A": "Cu"}, "cP2-CsCl": {"A": "Cl", "B": "Cs"}})
    {'Cl': 'A', 'Cs': 'B'}
    >>> species_type_map({"Na", "Cl"}, {"cP2-CsCl": {"A": "Cl", "B": "Cs"}}) is None
    True
    """
    proposals = []
    for cell in species.values():
        inverse = {element: model_type for model_type, element in cell.items()}
        if len(inverse) == len(cell) and names <= set(inverse):
            proposals.append({name: inverse[name] for name in sorted(names)})
    if not proposals or any(p != proposals[0] for p in proposals[1:]):
        return None
    return proposals[0]


def parse_type_map(text: str | None) -> dict[str, str]:
    """'Cu=A,Zn=B' -> {'Cu': 'A', 'Zn': 'B'}.

    >>> parse_type_map("Cu=A, Zn=B")
    {'Cu': 'A', 'Zn': 'B'}
    """
    if not text:
        return {}
    result = {}
    for item in text.split(","):
        if "=" not in item:
            raise ConfigError(f"--type-map {text!r}: use FILE_TYPE=MODEL_TYPE pairs separated by commas, e.g. Cu=A,Zn=B")
        key, value = (part.strip() for part in item.split("=", 1))
        result[key] = value
    return result


@dataclass
class FrameLabels:
    """Result for one frame: labels (N,) int (-1 = unknown), confidence (N,) float in [0, 1]."""

    index: int
    labels: np.ndarray
    confidence: np.ndarray
    scale: float

    def fractions(self, n_classes: int) -> np.ndarray:
        """Fraction of particles per class, then of unknown ones: (C + 1,)."""
        counts = np.bincount(np.where(self.labels < 0, n_classes, self.labels), minlength=n_classes + 1)
        return counts / max(len(self.labels), 1)


@dataclass
class IdentifyResult:
    """Labels of every selected frame of a file."""

    source: str
    class_names: list[str]
    frames: list[FrameLabels] = field(default_factory=list)
    threshold: float | None = None
    notes: list[str] = field(default_factory=list)
    smooth: int = DEFAULT_SMOOTH

    def to_dict(self) -> dict[str, Any]:
        n = len(self.class_names)
        return {
            "source": self.source, "class_names": self.class_names, "threshold": self.threshold,
            "smooth": self.smooth, "notes": self.notes,
            "frames": [{"frame": f.index, "particles": int(len(f.labels)), "scale": f.scale,
                        "fractions": dict(zip(self.class_names + ["unknown"], map(float, f.fractions(n))))}
                       for f in self.frames],
        }

    def padded_arrays(self) -> dict[str, np.ndarray]:
        """labels (F, N_max) int32 padded with -2, confidence (F, N_max) padded with 0, n_particles (F,)."""
        n_max = max((len(f.labels) for f in self.frames), default=0)
        labels = np.full((len(self.frames), n_max), -2, dtype=np.int32)
        confidence = np.zeros((len(self.frames), n_max), dtype=np.float32)
        for row, frame in enumerate(self.frames):
            labels[row, :len(frame.labels)] = frame.labels
            confidence[row, :len(frame.labels)] = frame.confidence
        return {"labels": labels, "confidence": confidence,
                "n_particles": np.array([len(f.labels) for f in self.frames], dtype=np.int64),
                "frame_index": np.array([f.index for f in self.frames], dtype=np.int64),
                "class_names": np.array(self.class_names), "scale": np.array([f.scale for f in self.frames]),
                "smooth": np.array(self.smooth)}

    def save_xyz(self, path: str | Path, frames: Iterable[Frame]) -> Path:
        """Write ``frames`` (the labelled ones, re-read from the input) as extended XYZ with labels, atomically.

        Per atom: ``species``, ``pos``, ``structure`` (class index, -1 unknown),
        ``structure_name`` and ``confidence``; per frame: ``Lattice`` and ``pbc``
        (periodic frames), ``frame`` (index in the input) and ``class_names``
        (comma-separated), so OVITO and ASE users can colour or select by structure.
        """
        from ...io.xyz import XYZFrame, write_extxyz

        names = np.array(self.class_names + ["unknown"])  # label -1 (unknown) indexes the last entry

        def rows() -> Iterator[XYZFrame]:
            for labelled, frame in zip(self.frames, frames, strict=True):
                if frame.index != labelled.index or frame.n_particles != len(labelled.labels):
                    raise InputFileError(f"{self.source}: frame {frame.index} changed while it was labelled; "
                                         "label it again")
                yield XYZFrame(
                    symbols=np.asarray(frame.type_names)[frame.types], positions=frame.positions,
                    lattice=frame.box, pbc=None if frame.box is None else np.array(frame.pbc),
                    info={"frame": labelled.index, "class_names": ",".join(self.class_names)},
                    arrays={"structure": labelled.labels.astype(np.int64), "structure_name": names[labelled.labels],
                            "confidence": labelled.confidence.astype(np.float64)})

        write_extxyz(path, rows())
        return Path(path)

    def save_npz(self, path: str | Path) -> Path:
        """Write labels, confidence and class_names (and padding info) to an .npz atomically."""
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **self.padded_arrays())
        return Path(path)


#: Particles per model call. A call needs ~75 kB per particle of the chunk: on a CPU 2048 runs as fast
#: as 16384 with a fifth of the memory (151 vs 730 MiB for 10^4 particles, bench_identify_scaling);
#: a GPU wants big calls.
CPU_CHUNK_SIZE, CUDA_CHUNK_SIZE = 2048, 16384


def default_chunk_size(device: torch.device) -> int:
    """Particles per model call when ``--chunk-size`` is not given."""
    return CUDA_CHUNK_SIZE if device.type == "cuda" else CPU_CHUNK_SIZE


class Identifier:
    """A loaded crystal model ready to label frames (what ``gaatool identify`` runs per frame).

    Parameters
    ----------
    checkpoint : path, optional
        A ``crystal`` checkpoint of the geometric model; default: the pretrained ``crystal.safetensors``.
    device : str
        ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
    chunk_size : int, optional
        Particles per model call, which bounds memory (default: 2048 on a CPU, 16384 on a GPU).
    type_map : mapping, optional
        Frame type name -> model type (``{"Cu": "A"}``) or element of a training cell (``{"1": "Cs"}``);
        default: the same names, any single type, or the elements of one of the model's training cells.
    scale : float, optional
        Length unit of the frames (their median closest-neighbour distance); default: measured per frame.
    threshold : float, optional
        Particles whose confidence is below it get the label :data:`UNKNOWN` (-1).
    compile : str
        ``auto``, ``on`` or ``off``: torch.compile the model (``auto``: CPU frames of 5 million particles).
    smooth : int
        Rounds of neighbour averaging of the class probabilities (module docstring), default 1.

    ``label(frame)`` takes a :class:`~gaatool.io.frame.Frame` (positions, box or None, types, type names;
    :func:`~gaatool.io.readers.read_frames` reads them from files) and returns its :class:`FrameLabels`;
    ``label_frames`` does so lazily for an iterable of frames. ``notes`` collects how types were mapped.

    >>> import numpy as np
    >>> from gaatool.io.frame import Frame
    >>> cell = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    >>> grid = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    >>> frame = Frame((grid + cell).reshape(-1, 3) * 3.6, np.eye(3) * 14.4, np.zeros(256, int), ["Cu"])
    >>> labels = Identifier(device="cpu").label(frame)
    >>> sorted(set(labels.labels.tolist()))  # every atom of this fcc copper labelled class 0, cF4-Cu
    [0]
    """

    def __init__(self, checkpoint: str | Path | None = None, device: str = "auto", chunk_size: int | None = None,
                 type_map: Mapping[str, str] | None = None, scale: float | None = None,
                 threshold: float | None = None, compile: str = "auto", smooth: int = DEFAULT_SMOOTH):
        check_compile_mode(compile)
        self.smooth = check_rounds(smooth)
        self.compile, self._compiled = compile, None
        self.checkpoint = Path(checkpoint) if checkpoint is not None else default_crystal_checkpoint()
        model, self.metadata = load_model(self.checkpoint, task="crystal")
        if not isinstance(model, CrystalClassifier):
            raise ConfigError(f"{self.checkpoint}: identify needs a geometric (gaa) crystal model, not the baseline")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.class_names = list(self.metadata["class_names"])
        self.type_names = list(self.metadata.get("type_names") or ["A"])
        self.species = dict(self.metadata.get("species") or {})  # per class: model type -> element of its cell
        self.notes: list[str] = []  # how types were mapped when no --type-map said so (once each)
        self.neighbors = int(self.metadata.get("neighbors", 12))
        self.chunk_size = default_chunk_size(self.device) if chunk_size is None else int(chunk_size)
        if self.chunk_size < 1:
            raise ConfigError(f"--chunk-size must be a positive number of particles (got {self.chunk_size})")
        self.type_map = dict(type_map or {})
        if scale is not None and not scale > 0:
            raise ConfigError(f"--scale must be a positive length (got {scale})")
        if threshold is not None and not 0 <= threshold <= 1:
            raise ConfigError(f"--threshold must be between 0 and 1 (got {threshold})")
        self.scale, self.threshold = scale, threshold
        self.type_map = self._elements_as_types(self.type_map)
        unknown_targets = sorted(set(self.type_map.values()) - set(self.type_names))
        if unknown_targets:
            raise ConfigError(f"--type-map maps onto {unknown_targets}, which the model does not know; "
                              f"its types are {self.type_names}")

    def _elements_as_types(self, type_map: dict[str, str]) -> dict[str, str]:
        """``type_map`` with targets that are elements of the model's training cells (X=Si, Y=Cr) replaced by
        the model types those elements had there (X=B, Y=A), where the cells agree."""
        elements = {target for target in type_map.values() if target not in self.type_names}
        by_element = species_type_map(elements, self.species) if elements else None
        if not by_element:
            return type_map
        return {name: by_element.get(target, target) for name, target in type_map.items()}

    def model_types(self, frame: Frame) -> np.ndarray:
        """The frame's particle types as indices of the model's types."""
        names = list(frame.type_names)
        used = np.unique(frame.types)
        if self.type_map:
            mapped = [self.type_map.get(name) for name in names]
        elif len(set(names)) == 1:
            # one-component systems just work, whatever the name: a lone "B" is no CsCl half
            mapped = [self.type_names[0]] * len(names)
        elif set(names) <= set(self.type_names):
            mapped = names
        elif (by_species := species_type_map({names[t] for t in used}, self.species)) is not None:
            mapped = [by_species.get(name) for name in names]  # e.g. Cs and Cl as in the model's CsCl class
            note = ("types mapped as in the model's training cells: "
                    + ",".join(f"{name}={model}" for name, model in by_species.items()) + " (--type-map sets them)")
            if note not in self.notes:
                self.notes.append(note)
        else:
            mapped = [None] * len(names)
        missing = sorted({names[t] for t in used if mapped[t] is None})
        if missing:
            # the types the training cells gave those elements, else the model types no given map uses yet
            by_species = species_type_map({names[t] for t in used}, self.species) or {}
            free = iter([t for t in self.type_names if t not in set(mapped)] + self.type_names)
            example = ",".join(f"{name}={by_species.get(name) or next(free)}" for name in missing)
            alike = ",".join(f"{name}={self.type_names[0]}" for name in missing)
            hint = (f"--type-map {example} (an ordered compound, as CsCl or ZnS), or --type-map {alike} "
                    "(one kind of particle, as in a substitutional alloy)" if len(missing) > 1 else f"--type-map {example}")
            raise InputFileError(f"{frame.source}: frame {frame.index} has particle types {missing} that the model "
                                 f"does not know (its types: {self.type_names}); pass {hint}")
        lookup = np.array([self.type_names.index(m) if m is not None else -1 for m in mapped], dtype=np.int64)
        return lookup[frame.types]

    def measure_scale(self, frame: Frame) -> float:
        """Length unit of the frame, measured as for the training data (median nearest-neighbour distance)."""
        distance = nearest_neighbor_distance(frame.positions, frame.box, frame.pbc)
        if not distance > 0:
            raise InputFileError(f"{frame.source}: frame {frame.index} has overlapping particles "
                                 "(nearest-neighbour distance 0); cannot set the length scale")
        return distance

    def label(self, frame: Frame) -> FrameLabels:
        """Labels and confidences of every particle of one frame."""
        if frame.n_particles < self.neighbors + 1 and frame.box is None:  # a periodic cell is searched in copies
            raise InputFileError(f"{frame.source}: frame {frame.index} has {frame.n_particles} particles; identify "
                                 f"needs at least {self.neighbors + 1}")
        types = self.model_types(frame)
        if frame.box is None:
            self._note_open_boundaries(frame)
        if self.scale is None:
            # every nearest-neighbour distance is at most the particles' extent: checked first, as it refuses
            # such a box without a search over the whole frame
            extent = float(np.linalg.norm(np.ptp(frame.positions, axis=0)))
            self._check_box_size(frame, extent, "the particles' extent")
        scale = self.scale or self.measure_scale(frame)
        self._check_box_size(frame, scale, "the nearest-neighbour distance")
        box = None if frame.box is None else frame.box / scale
        # the neighbour search is built once and queried chunk by chunk: memory stays bounded by the chunk
        finder = NeighborFinder(frame.positions / scale, box, self.neighbors, frame.pbc)
        probabilities = np.empty((frame.n_particles, len(self.class_names)), dtype=np.float32)
        # the neighbours again for the averaging: int32 keeps 10^6 particles at 48 MB
        neighbors = np.empty((frame.n_particles, self.neighbors), dtype=np.int32) if self.smooth else None
        dtype = next(self.model.parameters()).dtype
        model = self._model_for(frame.n_particles)
        with torch.no_grad():
            for start in range(0, frame.n_particles, self.chunk_size):
                stop = min(start + self.chunk_size, frame.n_particles)
                index, r_ij = finder.query(start, stop)
                type_pairs = type_pair_encoding(types, index, len(self.type_names), start=start)
                r = torch.as_tensor(r_ij, dtype=dtype, device=self.device)
                v = torch.as_tensor(type_pairs, dtype=dtype, device=self.device)
                probabilities[start:stop] = torch.softmax(model(r, v), dim=-1).float().cpu().numpy()
                if neighbors is not None:
                    neighbors[start:stop] = index
        if neighbors is not None:
            probabilities = average_over_neighbors(probabilities, neighbors, self.smooth, self.chunk_size)
        labels = probabilities.argmax(axis=-1).astype(np.int32)
        confidence = probabilities[np.arange(frame.n_particles), labels]
        if self.threshold is not None:
            labels[confidence < self.threshold] = UNKNOWN
        return FrameLabels(frame.index, labels, confidence, scale)

    def _check_box_size(self, frame: Frame, length: float, what: str) -> None:
        """Refuse periodic boxes far longer than ``length``: the neighbour search works in float32, whose ~7
        digits leave too few for neighbour vectors in such a box (scratch runs of session 18's audit: a
        108-particle fcc cluster, nearest-neighbour distance 2.5, came out 85% bcc in a box of 1e9; in one of
        1e6 its labels drifted)."""
        if frame.box is None:
            return
        periodic = [axis for axis in range(3) if frame.pbc is None or frame.pbc[axis]]
        if not periodic:
            return
        longest = float(np.linalg.norm(frame.box[periodic], axis=1).max())
        if longest > MAX_BOX_OVER_SCALE * length:
            raise InputFileError(f"{frame.source}: frame {frame.index} has a box length {longest:.4g}, more than "
                                 f"{MAX_BOX_OVER_SCALE:g} times {what} {length:.4g}, where the "
                                 "float32 neighbour search loses precision (an isolated cluster needs no box)")

    def _note_open_boundaries(self, frame: Frame) -> None:
        """Say (once per file) that a frame without a box is taken as a cluster with a surface: a periodic
        snapshot written without its box (a plain XYZ file) gets wrong labels near its faces otherwise."""
        if any(n.startswith(f"{frame.source}: no periodic box") for n in self.notes):
            return
        span = np.ptp(frame.positions, axis=0)
        self.notes.append(f"{frame.source}: no periodic box, so the particles are taken as a cluster whose surface "
                          f"particles have cut-off neighbour shells (they span {span[0]:.4g} x {span[1]:.4g} x "
                          f"{span[2]:.4g}); for a periodic snapshot give --box Lx,Ly,Lz")

    def _model_for(self, n_particles: int):
        """The model, compiled (once, at the chunk size) for frames big enough that compiling pays."""
        if not should_compile(self.compile, n_particles, self.device):
            return self.model
        if self._compiled is None:
            self._compiled = FixedBatchCompiled(self.model, compiled_batch_size(self.chunk_size, self.device))
        return self._compiled

    def label_frames(self, frames: Iterable[Frame]) -> Iterator[FrameLabels]:
        """:meth:`label` of each frame, one at a time (a trajectory is never held in memory whole)."""
        for frame in frames:
            yield self.label(frame)


def identify_file(path: str | Path, checkpoint: str | Path | None = None, frames: slice | None = None, box=None,
                  scale: float | None = None, type_map: Mapping[str, str] | None = None,
                  threshold: float | None = None, device: str = "auto", chunk_size: int | None = None,
                  compile: str = "auto", smooth: int = DEFAULT_SMOOTH) -> IdentifyResult:
    """Label every particle of the selected frames of a GSD or (extended) XYZ file.

    ``compile``: torch.compile the model (``on``), never (``off``), or for CPU
    frames of at least 5 000 000 particles (``auto``), where it saves ~10%.
    ``smooth``: rounds of neighbour averaging of the class probabilities (module docstring).
    """
    identifier = Identifier(checkpoint, device, chunk_size, type_map, scale, threshold, compile, smooth)
    result = IdentifyResult(str(path), identifier.class_names, threshold=threshold, smooth=identifier.smooth)
    result.frames = list(identifier.label_frames(read_frames(path, frames, box=box)))
    result.notes = list(identifier.notes)
    if not result.frames:
        raise InputFileError(f"{path}: no frames selected; check --frames")
    if threshold is None and (note := uncertainty_note(result.frames, identifier.smooth)):
        result.notes.append(note)
    return result


def uncertain_confidence(smooth: int) -> float:
    """The confidence below which a particle counts as uncertain, for ``smooth`` rounds of averaging."""
    return UNCERTAIN_CONFIDENCE if smooth == 0 else SMOOTHED_UNCERTAIN_CONFIDENCE


def uncertainty_note(frames: list[FrameLabels], smooth: int = DEFAULT_SMOOTH) -> str | None:
    """A note naming the frames where most particles are labelled with low confidence, or None."""
    level = uncertain_confidence(smooth)
    uncertain = [(f.index, float(np.mean(f.confidence < level))) for f in frames if len(f.confidence)]
    uncertain = [(index, share) for index, share in uncertain if share > UNCERTAIN_FRACTION]
    if not uncertain:
        return None
    listed = ", ".join(f"frame {index} ({100 * share:.0f}%)" for index, share in uncertain[:3])
    more = f" and {len(uncertain) - 3} more frames" if len(uncertain) > 3 else ""
    return (f"most particles have confidence below {level} in {listed}{more}: liquid, amorphous or "
            f"other structures than the model's classes still get one of its labels; --threshold "
            f"{level} marks such particles unknown")
