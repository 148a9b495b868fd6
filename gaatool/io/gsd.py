"""GSD (HOOMD-blue) trajectories: read frames, write per-particle labels.

Boxes: GSD stores ``[Lx, Ly, Lz, xy, xz, yz]``; frames get the lattice rows
``a1 = (Lx, 0, 0)``, ``a2 = (xy Ly, Ly, 0)``, ``a3 = (xz Lz, yz Lz, Lz)``.

Labels: :func:`write_labeled_gsd` keeps every original chunk (types included)
and adds per-particle *logged quantities*, which HOOMD writes and OVITO's GSD
importer shows as particle properties to colour by:

* ``log/particles/gaatool_label`` (N,) int32: class index, -1 = no label;
* ``log/particles/gaatool_confidence`` (N,) float32 (optional): the
  probability of that class;
* ``log/gaatool/class_names``: JSON list of the class names (a string chunk).

``particles.typeid`` and ``particles.charge`` are deliberately left untouched
so that the output still runs in HOOMD with the original force field.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import InputFileError
from .atomic import atomic_path
from .frame import Frame, describe_selection, hoomd_box_to_lattice
from .text import check_input_file

__all__ = ["read_gsd", "count_gsd_frames", "write_labeled_gsd", "LABEL_KEY", "CONFIDENCE_KEY", "CLASS_NAMES_KEY"]

LABEL_KEY = "particles/gaatool_label"
CONFIDENCE_KEY = "particles/gaatool_confidence"
CLASS_NAMES_KEY = "gaatool/class_names"


def _open(path: Path):
    import gsd.hoomd

    check_input_file(path, "a GSD file")
    try:
        return gsd.hoomd.open(str(path), mode="r")
    except (RuntimeError, OSError, ValueError, KeyError) as err:
        raise InputFileError(
            f"{path}: not a HOOMD GSD file, or truncated/damaged ({err}); check the file or rewrite it"
        ) from err


def _selected(path: Path, n_frames: int, frames: slice | None) -> range:
    if n_frames == 0:
        raise InputFileError(f"{path}: has no frames")
    chosen = range(n_frames) if frames is None else range(n_frames)[frames]
    if len(chosen) == 0:
        raise InputFileError(
            f"{path}: frame selection {describe_selection(frames)} selects none of its {n_frames} frames"
        )
    return chosen


def _read_frame(path: Path, trajectory, index: int):
    try:
        return trajectory[index]
    except (RuntimeError, OSError, ValueError, KeyError, IndexError) as err:
        raise InputFileError(f"{path}: frame {index} is damaged or unreadable ({err})") from err


def _to_frame(path: Path, snapshot, index: int) -> Frame:
    where = f"{path}: frame {index}"
    box = snapshot.configuration.box
    # checked before the dimensions: gsd calls any box with Lz = 0 two-dimensional, an all-zero one too
    # (Lz = 0 alone is a real 2D box)
    if box is not None and (box[0] <= 0 or box[1] <= 0 or box[2] < 0):
        lx, ly, lz = (float(v) for v in box[:3])
        kind = "zero-length" if 0 in (lx, ly) else "negative-length"
        raise InputFileError(f"{where} has a {kind} box (Lx={lx:g}, Ly={ly:g}, Lz={lz:g})")
    if int(snapshot.configuration.dimensions) == 2:
        raise InputFileError(f"{where} is two-dimensional; gaatool needs 3D particle systems")
    n = int(snapshot.particles.N)
    if n == 0 or snapshot.particles.position is None:
        raise InputFileError(f"{where} has no particles")
    lattice = None if box is None else hoomd_box_to_lattice(box)
    typeid = snapshot.particles.typeid
    types = np.zeros(n, dtype=np.int64) if typeid is None else np.asarray(typeid, dtype=np.int64)
    type_names = list(snapshot.particles.types or ["A"])
    return Frame(
        positions=np.asarray(snapshot.particles.position, dtype=np.float64),
        box=lattice,
        types=types,
        type_names=type_names,
        source=str(path),
        index=index,
    )


def count_gsd_frames(path: str | os.PathLike) -> int:
    """Number of frames in a GSD file (raises :class:`InputFileError` if unreadable)."""
    path = Path(path)
    with _open(path) as trajectory:
        return len(trajectory)


def read_gsd(path: str | os.PathLike, frames: slice | None = None) -> Iterator[Frame]:
    """Read frames of a HOOMD GSD file.

    Parameters
    ----------
    path : path-like
        The ``.gsd`` file.
    frames : slice, optional
        Which frames (Python slice semantics over the file's frames, e.g.
        ``slice(-1, None)`` for the last); all by default.

    Returns
    -------
    iterator of Frame
        Positions (N, 3) float64 in the file's length unit, lattice rows from
        the HOOMD box, HOOMD type ids and names; ``index`` is the frame's
        position in the file.

    Raises
    ------
    InputFileError
        Missing, unreadable, truncated or empty file; an empty selection (both
        raised by this call); a damaged, 2D or invalid frame (raised while
        iterating, naming the frame).
    """
    path = Path(path)
    trajectory = _open(path)
    try:
        chosen = _selected(path, len(trajectory), frames)
    except BaseException:
        trajectory.close()
        raise

    def generate() -> Iterator[Frame]:
        with trajectory:
            for index in chosen:
                yield _to_frame(path, _read_frame(path, trajectory, index), index)

    return generate()


def write_labeled_gsd(
    src_path: str | os.PathLike,
    dst_path: str | os.PathLike,
    labels: Sequence[np.ndarray],
    frames_idx: Sequence[int],
    class_names: Sequence[str],
    confidence: Sequence[np.ndarray] | None = None,
) -> Path:
    """Copy frames of a GSD file and attach per-particle class labels (atomic write).

    Parameters
    ----------
    src_path : path-like
        Source trajectory.
    dst_path : path-like
        Output file; may equal ``src_path`` (written to a temporary file that
        replaces the target only after the source is closed).
    labels : sequence of numpy.ndarray (N_f,) int
        Class index of every particle for each written frame; -1 means no label.
    frames_idx : sequence of int
        Source frame index of each entry of ``labels``; only these frames are
        written, in this order.
    class_names : sequence of str
        Names of the class indices, stored as JSON in ``log/gaatool/class_names``.
    confidence : sequence of numpy.ndarray (N_f,) float, optional
        Probability of the assigned class for each particle.

    Returns
    -------
    pathlib.Path
        ``dst_path``.
    """
    import gsd.hoomd

    src_path, dst_path = Path(src_path), Path(dst_path)
    frames_idx = [int(i) for i in frames_idx]
    if len(labels) != len(frames_idx):
        raise ValueError(f"{len(labels)} label arrays for {len(frames_idx)} frames")
    if confidence is not None and len(confidence) != len(frames_idx):
        raise ValueError(f"{len(confidence)} confidence arrays for {len(frames_idx)} frames")
    names_json = json.dumps([str(name) for name in class_names])
    n_classes = len(class_names)

    source = _open(src_path)
    # Streamed frame by frame so memory stays at one frame; a failure part way
    # leaves no output because the temp file is removed.
    # The source closes before the rename, so dst_path may equal src_path.
    with atomic_path(dst_path, suffix=".gsd") as tmp:
        with source, gsd.hoomd.open(str(tmp), mode="w") as output:
            n_frames = len(source)
            for position, index in enumerate(frames_idx):
                if not -n_frames <= index < n_frames:
                    raise InputFileError(f"{src_path}: has {n_frames} frames; frame {index} does not exist")
                snapshot = _read_frame(src_path, source, index)
                n = int(snapshot.particles.N)
                frame_labels = np.asarray(labels[position])
                if frame_labels.shape != (n,):
                    raise ValueError(
                        f"labels for frame {index} have shape {frame_labels.shape}; it has {n} particles"
                    )
                if frame_labels.size and (frame_labels.min() < -1 or frame_labels.max() >= n_classes):
                    raise ValueError(f"labels for frame {index} lie outside -1..{n_classes - 1}")
                snapshot.log[LABEL_KEY] = frame_labels.astype(np.int32)
                if confidence is not None:
                    values = np.asarray(confidence[position], dtype=np.float32)
                    if values.shape != (n,):
                        raise ValueError(
                            f"confidence for frame {index} has shape {values.shape}; it has {n} particles"
                        )
                    snapshot.log[CONFIDENCE_KEY] = values
                snapshot.log[CLASS_NAMES_KEY] = names_json
                output.append(snapshot)
    return dst_path
