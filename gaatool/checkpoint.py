"""Checkpoints: safetensors weights plus versioned JSON metadata, never pickle.

A checkpoint is one ``.safetensors`` file. Its tensors are the model's state
dict (stored as ``model/<key>``) and optional extra tensors such as optimizer
moments or RNG states (stored as ``extra/<key>``). Its header metadata holds
two strings:

``"gaatool"``
    JSON with ``format_version``, ``gaatool_version``, ``task``, ``model``
    (``{"name", "config"}`` for :func:`gaatool.models.registry.build_model`),
    ``parameter_count``, ``created``, ``weights_sha256`` and any task fields
    (type maps, units, data provenance, the training command, metrics, ...).
``"gaatool_sha256"``
    SHA-256 of that JSON string, so a damaged header is reported instead of
    silently read.

``weights_sha256`` covers every tensor's name, dtype, shape and bytes, so
damaged weights are reported too.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from ._version import __version__
from .errors import CheckpointError, ConfigError, OutputPathError
from .io.atomic import atomic_write_bytes
from .models import registry

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "Checkpoint",
    "save_checkpoint",
    "read_metadata",
    "load_checkpoint",
    "load_model",
    "build_stored_model",
    "check_weights_fit",
    "update_metadata",
    "describe_checkpoint",
]

CHECKPOINT_FORMAT_VERSION = 1
METADATA_KEY = "gaatool"
METADATA_HASH_KEY = "gaatool_sha256"
_MODEL_PREFIX = "model/"
_EXTRA_PREFIX = "extra/"
_MAX_HEADER_BYTES = 100_000_000  # the safetensors limit; a larger length means a damaged file
# Keys that describe the weights or the file itself; update_metadata refuses to change them.
_FIXED_KEYS = ("format_version", "gaatool_version", "task", "model", "parameter_count", "weights_sha256")


@dataclasses.dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes
    ----------
    path : Path
    metadata : dict
        The decoded JSON metadata.
    state_dict : dict[str, Tensor]
        The model's state dict, ready for ``model.load_state_dict``.
    extra_tensors : dict[str, Tensor]
        Other tensors saved with the model (optimizer state, RNG states).
    """

    path: Path
    metadata: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    extra_tensors: dict[str, torch.Tensor]

    @property
    def task(self) -> str:
        return self.metadata["task"]


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    metadata: dict[str, Any],
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model``'s weights and ``metadata`` to ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Target file, conventionally ``*.safetensors``. An existing file is
        replaced only once the new one is complete.
    model : torch.nn.Module
        A registry model (has ``name`` and ``config``).
    metadata : dict
        JSON-serialisable; must contain ``task``. Numpy scalars and arrays are
        converted to Python numbers and lists.
    extra_tensors : dict[str, Tensor], optional
        Saved alongside the weights and returned by :func:`load_checkpoint`.

    Returns
    -------
    Path
        ``path``.

    >>> import tempfile, pathlib
    >>> from gaatool.models.registry import register
    >>> @register
    ... class DocLinear(torch.nn.Module):
    ...     name = "doc_linear"
    ...     @dataclasses.dataclass
    ...     class Config:
    ...         width: int = 2
    ...     def __init__(self, config):
    ...         super().__init__()
    ...         self.config = config
    ...         self.linear = torch.nn.Linear(config.width, 1)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.safetensors"
    >>> _ = save_checkpoint(path, DocLinear(DocLinear.Config()), {"task": "crystal"})
    >>> model, meta = load_model(path, task="crystal")
    >>> meta["model"]["name"], meta["model"]["config"], meta["parameter_count"]
    ('doc_linear', {'width': 2}, 3)
    """
    path = Path(path)
    if not (hasattr(model, "name") and hasattr(model, "config")):
        raise CheckpointError(f"{path}: {type(model).__name__} is not a registry model (it needs .name and .config)")
    tensors = {_MODEL_PREFIX + key: value for key, value in model.state_dict().items()}
    for key, value in (extra_tensors or {}).items():
        tensors[_EXTRA_PREFIX + key] = value
    metadata = dict(metadata)
    metadata["model"] = registry.model_spec(model)
    metadata["parameter_count"] = int(sum(p.numel() for p in model.parameters()))
    _write(path, metadata, tensors)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of the checkpoint at ``path``, reading only its header.

    Raises :class:`CheckpointError` if the file is missing, not a safetensors
    file, damaged or truncated, not written by gaatool, or of a newer format.
    """
    return _read_header(Path(path))[1]


def load_checkpoint(path: str | os.PathLike, task: str | None = None, device: str | torch.device = "cpu") -> Checkpoint:
    """Load the checkpoint at ``path``, checking its integrity and, if given, its task.

    Parameters
    ----------
    path : path-like
    task : str, optional
        ``"crystal"``, ``"forces"`` or ``"backmap"``: the task the caller
        needs. A checkpoint of another task raises :class:`CheckpointError`.
    device : str or torch.device
        Where to put the tensors.
    """
    path = Path(path)
    metadata, tensors = _read_all(path)
    _check_task(path, metadata, task)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from err
    state_dict, extra = {}, {}
    for key, value in tensors.items():
        if key.startswith(_MODEL_PREFIX):
            state_dict[key[len(_MODEL_PREFIX):]] = value.to(device)
        elif key.startswith(_EXTRA_PREFIX):
            extra[key[len(_EXTRA_PREFIX):]] = value.to(device)
    return Checkpoint(path=path, metadata=metadata, state_dict=state_dict, extra_tensors=extra)


def load_model(path: str | os.PathLike, task: str | None = None, device: str | torch.device = "cpu"):
    """Rebuild the model stored at ``path`` with its weights, in eval mode.

    Returns
    -------
    (torch.nn.Module, dict)
        The model on ``device`` and the checkpoint metadata.
    """
    checkpoint = load_checkpoint(path, task=task, device="cpu")
    model = build_stored_model(checkpoint.path, checkpoint.metadata)
    check_weights_fit(checkpoint.path, model, checkpoint.state_dict)
    model.load_state_dict(checkpoint.state_dict, strict=True)
    return model.to(torch.device(device)).eval(), checkpoint.metadata


def build_stored_model(path: str | os.PathLike, metadata: dict[str, Any]) -> torch.nn.Module:
    """A fresh model of the configuration stored in ``metadata``; a one-line :class:`CheckpointError` if
    that configuration cannot be built (an edited or foreign ``model`` entry: values of the wrong type,
    negative sizes), instead of whatever the model's constructor raised."""
    try:
        return registry.build_model(metadata["model"])
    except (CheckpointError, ConfigError) as err:
        if str(path) in str(err):
            raise
        raise type(err)(f"{path}: {err}") from None
    except Exception as err:  # noqa: BLE001 - TypeError, ValueError, RuntimeError from a constructor
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: its model configuration cannot be built ({first}); the metadata is "
                              "damaged or was edited") from None


def update_metadata(path: str | os.PathLike, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into the metadata of ``path`` and rewrite it atomically.

    Dicts are merged recursively (so ``{"metrics": {"test_accuracy": 0.9}}``
    keeps the existing validation metrics); other values are replaced. The
    keys that describe the weights (``model``, ``format_version``, ...) cannot
    be changed. Returns the new metadata.
    """
    path = Path(path)
    fixed = sorted(set(updates) & set(_FIXED_KEYS))
    if fixed:
        raise CheckpointError(f"{path}: metadata keys {fixed} describe the weights and cannot be updated")
    metadata, tensors = _read_all(path)
    metadata = _merge(metadata, updates)
    _write(path, metadata, tensors)
    return metadata


def describe_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A summary for ``gaatool info``: path, file size, parameter count, tensor count, metadata.

    Checks the weights against their checksum as loading does (a checkpoint that ``info`` shows is one
    that loads); checkpoints are a few MB.
    """
    path = Path(path)
    metadata, tensors = _read_all(path)
    model_keys = [k for k in tensors if k.startswith(_MODEL_PREFIX)]
    return {
        "path": str(path),
        "file_size_bytes": path.stat().st_size,
        "task": metadata.get("task"),
        "model": metadata.get("model", {}).get("name"),
        "parameter_count": metadata.get("parameter_count"),
        "tensor_count": len(model_keys),
        "has_training_state": any(k.startswith(_EXTRA_PREFIX + "optim/") for k in tensors),
        "metadata": metadata,
    }


# ---------------------------------------------------------------------------
# internals


def _json_default(value):
    # Task metadata often carries numpy numbers; store them as plain JSON.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(tensors):
        value = tensors[key]
        digest.update(f"{key}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _write(path: Path, metadata: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    task = metadata.get("task")
    if not isinstance(task, str) or not task:
        raise CheckpointError(f"{path}: checkpoint metadata needs a 'task' name")
    # Clone so that tensors sharing storage (tied weights, views) are saved as
    # independent buffers, which safetensors requires.
    tensors = {key: value.detach().to("cpu").contiguous().clone() for key, value in tensors.items()}
    metadata = dict(metadata)
    metadata["format_version"] = CHECKPOINT_FORMAT_VERSION
    metadata["gaatool_version"] = __version__
    metadata.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    metadata["weights_sha256"] = _tensor_digest(tensors)
    try:
        text = json.dumps(metadata, default=_json_default, sort_keys=True)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: metadata cannot be stored as JSON ({err})") from err
    header = {METADATA_KEY: text, METADATA_HASH_KEY: hashlib.sha256(text.encode()).hexdigest()}
    data = safetensors.torch.save(tensors, metadata=header)
    try:
        atomic_write_bytes(path, data)
    except OutputPathError:
        raise
    except OSError as err:  # a full disk or an exceeded quota: the old file is kept, the partial one removed
        raise CheckpointError(f"{path}: cannot write the checkpoint ({err.strerror or err}); "
                              "the previous file, if any, is unchanged") from err


def _read_header(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(safetensors header without __metadata__, gaatool metadata), validated."""
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path}: not a safetensors checkpoint (file too short)")
        length = int.from_bytes(prefix, "little")
        if length > min(size - 8, _MAX_HEADER_BYTES):
            raise CheckpointError(f"{path}: not a safetensors checkpoint, or its header is damaged or truncated")
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        ends = [int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError) as err:
        raise CheckpointError(f"{path}: not a safetensors checkpoint, or its header is damaged ({err})") from err
    if max(ends, default=0) != size - 8 - length:
        raise CheckpointError(
            f"{path}: checkpoint is truncated or damaged "
            f"({size - 8 - length} data bytes, header expects {max(ends, default=0)})"
        )
    extra = header.pop("__metadata__", None) or {}
    text = extra.get(METADATA_KEY) if isinstance(extra, dict) else None
    if not isinstance(text, str):
        raise CheckpointError(f"{path}: safetensors file has no gaatool metadata; it was not written by gaatool")
    if hashlib.sha256(text.encode()).hexdigest() != extra.get(METADATA_HASH_KEY):
        raise CheckpointError(f"{path}: checkpoint metadata is damaged (checksum mismatch); re-download or retrain it")
    try:
        metadata = json.loads(text)
    except ValueError as err:
        raise CheckpointError(f"{path}: checkpoint metadata is damaged ({err})") from err
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: checkpoint metadata is not a JSON object; the file is damaged")
    _check_version(path, metadata)
    return header, metadata


def _check_version(path: Path, metadata: dict[str, Any]) -> None:
    version = metadata.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{path}: checkpoint metadata has no integer format_version; the file is damaged")
    if version > CHECKPOINT_FORMAT_VERSION:
        writer = metadata.get("gaatool_version", "?")
        raise CheckpointError(
            f"{path} was written by gaatool {writer} with format {version}; "
            f"this gaatool ({__version__}) reads up to {CHECKPOINT_FORMAT_VERSION}; upgrade gaatool"
        )
    if not isinstance(metadata.get("task"), str) or not isinstance(metadata.get("model"), dict):
        raise CheckpointError(f"{path}: checkpoint metadata lacks 'task' or 'model'; the file is damaged")
    model = metadata["model"]
    if not isinstance(model.get("name"), str) or not isinstance(model.get("config", {}), dict):
        raise CheckpointError(f"{path}: checkpoint metadata has a malformed 'model' entry (it needs a name and a "
                              "config object); the file is damaged")


def _read_all(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    _, metadata = _read_header(path)
    try:
        tensors = safetensors.torch.load(path.read_bytes())
    except Exception as err:  # SafetensorError has no public import path
        raise CheckpointError(f"{path}: checkpoint weights cannot be read, the file is damaged ({err})") from err
    if _tensor_digest(tensors) != metadata.get("weights_sha256"):
        raise CheckpointError(f"{path}: checkpoint weights are damaged (checksum mismatch); re-download or retrain it")
    return metadata, tensors


def _check_task(path: Path, metadata: dict[str, Any], task: str | None) -> None:
    if task is not None and metadata["task"] != task:
        raise CheckpointError(f"{path} is a {metadata['task']!r} checkpoint; this command needs a {task!r} checkpoint")


def check_weights_fit(path: Path, model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    # load_state_dict's own error spans many lines; report the first problems on one.
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = [
        f"{key} {tuple(state_dict[key].shape)} vs {tuple(expected[key].shape)}"
        for key in sorted(set(expected) & set(state_dict))
        if state_dict[key].shape != expected[key].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {missing[:3]}")
    if unexpected:
        problems.append(f"unexpected {unexpected[:3]}")
    if shapes:
        problems.append(f"shape (file vs config) {shapes[:3]}")
    if problems:
        name = getattr(model, "name", type(model).__name__)
        raise CheckpointError(f"{path}: weights do not match the {name!r} model config: {'; '.join(problems)}")


def _merge(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
