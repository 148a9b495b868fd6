"""The one training engine: ``fit(task, config, out_dir)`` for every task.

A task (crystal, forces, backmap) supplies the model, batches, loss and
metadata through the :class:`TrainTask` protocol; this module owns the rest:
Adam, seeding, the plateau schedule, validation every epoch, checkpoints,
metrics files, exact resume, Ctrl-C and divergence.

Files in ``out_dir``
--------------------
``best.safetensors``
    Weights of the epoch with the best validation loss, written when it improves.
``last.safetensors``
    Weights plus the full training state (Adam moments, schedule, RNG states,
    history) at the end of the last completed epoch, rewritten every epoch.
    ``fit(..., resume=True)`` continues from it exactly: on CPU, 2 epochs plus
    2 resumed epochs give the same weights and metrics, bit for bit, as 4
    epochs straight (with the same number of torch threads: a task that cuts
    its batches into one piece per core sums their gradients in another
    order on another core count). (CUDA RNG state is not saved, so resuming a CUDA run that
    draws random numbers on the GPU is close but not bitwise.)
``metrics.csv`` / ``metrics.jsonl``
    One row per epoch: ``epoch``, ``lr``, ``train_loss``, ``val_loss`` and
    ``train_<name>`` / ``val_<name>`` for each metric the task returns.
    Timings are left out so that the file is reproducible.

Metric averaging
----------------
``task.loss`` returns the batch's mean loss and metrics that are means over
the batch's items. The engine weights each batch by ``task.batch_size_of(batch)``
(its number of items), so an epoch's value is the mean over all items.

Ctrl-C
------
Both checkpoints are written atomically, and ``last`` is rewritten only at
the end of an epoch, so after Ctrl-C ``last.safetensors`` holds the last
completed epoch and no partial file exists. :func:`fit` then raises
:class:`TrainingInterrupted` (a :class:`GaatoolError` whose message says which
epoch was saved and how to resume); the CLI reports it and exits with 130.
``last`` is written before ``best``: a run killed between the two (SIGKILL, a
full disk) is resumed from ``last``, and the resume writes the ``best`` it
missed. A write that the file system refuses (disk full, quota) ends the run
with a one-line :class:`CheckpointError` naming the epoch ``last`` holds.

One run per folder
------------------
While it trains, :func:`fit` holds a lock on ``out_dir/.gaatool-train.lock``
(:mod:`gaatool.train.lock`); a second run into the same folder (array jobs
given one ``-o``) is refused instead of overwriting the first one's files.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Protocol

import numpy as np
import torch
from rich.console import Console

from ..checkpoint import build_stored_model, check_weights_fit, load_checkpoint, read_metadata, save_checkpoint
from ..errors import CheckpointError, ConfigError, GaatoolError
from ..io.atomic import check_output_path, make_parent
from ..models import registry
from ..nn.chunks import draws_random_numbers, draws_unstreamed_random_numbers, gradients_side_by_side
from .device import resolve_device
from .lock import RunLock
from .log import METRICS_FORMATS, MetricsLog, ProgressReporter, metrics_path
from .schedule import PlateauSchedule

__all__ = [
    "TrainTask",
    "TrainConfig",
    "FitResult",
    "TrainingInterrupted",
    "TrainingDiverged",
    "fit",
    "training_step",
    "BEST_NAME",
    "LAST_NAME",
]

BEST_NAME = "best.safetensors"
LAST_NAME = "last.safetensors"
STOP_REASONS = ("max_epochs", "plateau", "max_time")

# Config fields that shape the training trajectory: a resumed run must use the
# same values, or "resume" would silently mean "a different run".
_TRAJECTORY_FIELDS = ("batch_size", "learning_rate", "lr_factor", "lr_patience", "stop_patience", "seed", "grad_clip")
# Metadata keys written by the engine or by save_checkpoint; task metadata must not use them.
_RESERVED_KEYS = {
    "task", "train", "command", "epoch", "best_epoch", "best_val_loss", "history", "metrics", "training_state",
    "model", "format_version", "gaatool_version", "parameter_count", "weights_sha256", "created", "initialized_from",
    "data_fingerprint",
}


class TrainTask(Protocol):
    """What a task gives the engine.

    Attributes and methods
    ----------------------
    task_name : str
        ``"crystal"``, ``"forces"`` or ``"backmap"``; stored in checkpoints.
    build_model() -> torch.nn.Module
        A fresh registry model (see :mod:`gaatool.models.registry`).
    train_batches(epoch, generator) -> iterable
        This epoch's training batches (of ``TrainConfig.batch_size`` items),
        shuffled with ``generator`` (a CPU ``torch.Generator``) only, so that
        resume is exact.
    val_batches() -> iterable
        Validation batches, in a fixed order.
    to_device(batch, device) -> batch
        The batch with its tensors on ``device``.
    batch_size_of(batch) -> int
        Number of items in the batch: the weight of its loss and metrics.
    loss(model, batch, train) -> (Tensor, dict[str, float])
        Scalar mean loss over the batch and per-item mean metrics (not
        named ``loss``). Validation runs under ``torch.no_grad()``; a loss that
        needs gradients (forces = -dE/dr) wraps itself in ``torch.enable_grad()``.
    metadata() -> dict
        Task fields (type maps, units, data provenance, ...) stored in every
        checkpoint, JSON-serialisable.
    split_batch(batch, parts) -> list of (piece, weight) or None, optional
        Cuts a training batch into up to ``parts`` pieces whose losses and
        metrics, weighted, are the batch's, or None when it is too small to
        pay; the pieces of a step then run on the CPU cores side by side (see
        :func:`training_step`). Tasks without it train batch by batch.
    compatibility_keys : tuple of str, optional
        The ``metadata()`` fields that give the model's inputs and outputs
        their meaning (class names, type maps, units): a run started from
        another checkpoint (``init_from``) must have the same values.
    data_config_keys : tuple of str, optional
        Model config fields the task derives from its data (e.g. an energy
        scale); a run continued from a checkpoint keeps the checkpoint's.
    resume_keys : tuple of str, optional
        The ``metadata()`` fields (``a.b`` for a nested one) that shape what is
        trained and logged beyond the model (loss weights, augmentation): a
        resumed run must have the same values.
    data_fingerprint() -> str, optional
        A digest of the training and validation data; stored in checkpoints
        as ``data_fingerprint``, and a resumed run must have the same.
    """

    task_name: str

    def build_model(self) -> torch.nn.Module: ...

    def train_batches(self, epoch: int, generator: torch.Generator) -> Iterable[Any]: ...

    def val_batches(self) -> Iterable[Any]: ...

    def to_device(self, batch: Any, device: torch.device) -> Any: ...

    def batch_size_of(self, batch: Any) -> int: ...

    def loss(self, model: torch.nn.Module, batch: Any, train: bool) -> tuple[torch.Tensor, dict[str, float]]: ...

    def metadata(self) -> dict[str, Any]: ...


@dataclasses.dataclass
class TrainConfig:
    """Training settings shared by all tasks; saved in every checkpoint as ``train``.

    The defaults are the paper's: Adam at 1e-3, x0.75 after 20 epochs without
    validation improvement, stop after 50, at most 800 epochs.

    Attributes
    ----------
    epochs : int
        Maximum number of epochs (counting epochs of resumed runs).
    batch_size : int
        Items per training batch; read by the task when it builds batches.
    learning_rate, lr_factor, lr_patience, stop_patience : float, float, int, int
        See :class:`PlateauSchedule`.
    seed : int
        Seeds torch, numpy, python ``random`` and the shuffling generator.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    metrics_format : str
        ``csv`` or ``jsonl``.
    max_time_s : float or None
        Stop cleanly after the first epoch that ends past this wall time (s).
    grad_clip : float or None
        Clip the gradient norm to this value.
    """

    epochs: int = 800
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_factor: float = 0.75
    lr_patience: int = 20
    stop_patience: int = 50
    seed: int = 0
    device: str = "auto"
    metrics_format: str = "csv"
    max_time_s: float | None = None
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1 (got {self.epochs})")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1 (got {self.batch_size})")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ConfigError(f"learning_rate must be a positive number (got {self.learning_rate})")
        if self.metrics_format not in METRICS_FORMATS:
            raise ConfigError(f"metrics_format must be one of {list(METRICS_FORMATS)} (got {self.metrics_format!r})")
        if self.max_time_s is not None and not self.max_time_s >= 0:
            raise ConfigError(f"max_time_s must be >= 0 (got {self.max_time_s})")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be > 0 (got {self.grad_clip})")
        # Validates lr_factor, lr_patience and stop_patience with the same messages.
        PlateauSchedule(self.lr_factor, self.lr_patience, self.stop_patience)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a dict (e.g. a ``--config`` file), rejecting unknown keys."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training config keys {unknown}; known keys are {sorted(known)}")
        return cls(**values)


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` did.

    ``stop_reason`` is ``"max_epochs"``, ``"plateau"`` or ``"max_time"``;
    ``epochs_run`` counts this call's epochs, ``epoch`` all completed epochs;
    ``history`` holds every epoch's metrics row, resumed ones included.
    """

    stop_reason: str
    best_path: Path
    last_path: Path
    metrics_path: Path
    best_val_loss: float
    best_epoch: int
    epochs_run: int
    epoch: int
    history: list[dict[str, Any]]
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        result = dataclasses.asdict(self)
        for key in ("best_path", "last_path", "metrics_path"):
            result[key] = str(result[key])
        return result


class TrainingInterrupted(GaatoolError):
    """Ctrl-C stopped training; ``last_path`` holds ``saved_epoch`` (0: nothing saved)."""

    def __init__(self, message: str, last_path: Path, saved_epoch: int):
        super().__init__(message)
        self.last_path = last_path
        self.saved_epoch = saved_epoch


class TrainingDiverged(GaatoolError):
    """The loss became NaN or infinite; no checkpoint was written for that epoch."""


def fit(
    task: TrainTask,
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    quiet: bool = False,
    console: Console | None = None,
    init_from: str | Path | None = None,
) -> FitResult:
    """Train ``task``'s model and write checkpoints and metrics to ``out_dir``.

    Parameters
    ----------
    task : TrainTask
    config : TrainConfig
    out_dir : path-like
        Created if needed. Without ``resume`` it must not hold a run already.
    resume : bool
        Continue from ``out_dir/last.safetensors``; ``config.epochs`` and
        ``max_time_s`` may be raised, the fields that shape the trajectory
        (seed, learning rate, schedule, batch size, clipping), the task's
        ``resume_keys`` and its ``data_fingerprint()`` must not change.
    quiet : bool
        No progress output.
    console : rich.console.Console, optional
        Where progress goes (default: stderr).
    init_from : path-like, optional
        Start a new run from this checkpoint's weights (fine-tuning, or
        continuing a model with other training settings); the optimizer,
        schedule and epoch count start fresh. It must hold the same model
        configuration and the task's ``compatibility_keys``; the checkpoint
        is recorded in every checkpoint of the run as ``initialized_from``.

    Raises
    ------
    TrainingInterrupted
        On Ctrl-C, after making sure ``last.safetensors`` is whole.
    TrainingDiverged
        On a non-finite loss.
    ConfigError, CheckpointError
        On a bad config, an occupied ``out_dir`` (a run's checkpoints without ``resume``, or another run
        training there now), a checkpoint that cannot be resumed, or a checkpoint the disk refused.
    """
    out_dir = Path(out_dir)
    log_path = metrics_path(out_dir, config.metrics_format)
    if resume and init_from is not None:
        raise ConfigError("--init-from starts a new run; it cannot be combined with --resume")
    if resume and not (out_dir / LAST_NAME).exists():
        raise ConfigError(f"{out_dir}: nothing to resume (no {LAST_NAME}); run without --resume")
    created = not out_dir.exists()
    check_output_path(log_path)  # one line if it is a file or cannot be written
    make_parent(log_path)
    try:
        # one run per folder: checked and trained under the lock, so that two runs started at once
        # (array jobs given one -o) cannot both pass the checks below and overwrite each other's files
        with RunLock(out_dir):
            return _fit(task, config, out_dir, log_path, resume, quiet, console, init_from)
    except BaseException:
        if created:  # a run that failed before writing anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise


def _fit(task, config: TrainConfig, out_dir: Path, log_path: Path, resume: bool, quiet: bool,
         console: Console | None, init_from) -> FitResult:
    """:func:`fit` with ``out_dir`` made and locked."""
    best_path, last_path = out_dir / BEST_NAME, out_dir / LAST_NAME
    device = resolve_device(config.device)
    if not resume and (best_path.exists() or last_path.exists()):
        raise ConfigError(
            f"{out_dir} already holds a training run; pass --resume to continue it or choose another output folder"
        )
    task_fields = dict(task.metadata())
    clash = sorted(set(task_fields) & _RESERVED_KEYS)
    if clash:
        raise GaatoolError(f"task {task.task_name!r} metadata uses reserved keys {clash}")

    fingerprint = task.data_fingerprint() if hasattr(task, "data_fingerprint") else None

    _seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = task.build_model()
    source = None  # the checkpoint this run continues from
    if resume:
        if not last_path.exists():  # removed while this run waited for the lock
            raise ConfigError(f"{out_dir}: nothing to resume (no {LAST_NAME}); run without --resume")
        source = load_checkpoint(last_path, task=task.task_name)
        _check_resumable(source.metadata, last_path, task, task_fields, fingerprint)
        model = _model_like(last_path, source.metadata, model, task,
                            f"{last_path} holds a different model configuration than the task builds; "
                            "resume with the same model options")
    elif init_from is not None:
        source = load_checkpoint(init_from, task=task.task_name)
        model = _model_like(init_from, source.metadata, model, task,
                            f"{init_from} holds a different model configuration than the task builds; "
                            "use the same model options as that run")
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    schedule = PlateauSchedule(config.lr_factor, config.lr_patience, config.stop_patience)
    epoch, best_epoch, history, initialized_from = 0, 0, [], None
    if resume:
        epoch, best_epoch, history, initialized_from = _restore(
            source, last_path, config, model, optimizer, schedule, generator)
        _complete_best(source, best_path, model, epoch, best_epoch)
    elif init_from is not None:
        initialized_from = _initialize(source, Path(init_from), task, task_fields, model)

    base_metadata = {"task": task.task_name, **task_fields, "train": config.to_dict(), "command": _command_line()}
    if fingerprint is not None:
        base_metadata["data_fingerprint"] = fingerprint
    if initialized_from is not None:
        base_metadata["initialized_from"] = initialized_from
    start, epochs_run = time.monotonic(), 0
    stop_reason = _stop_reason(epoch, config, schedule, elapsed_s=None)
    pending_best = None  # metadata of a best checkpoint whose last is written but which is not yet itself
    with MetricsLog(log_path, history) as log, ProgressReporter(config.epochs, epoch, quiet, console) as progress:
        try:
            while stop_reason is None:
                epoch += 1
                lr = config.learning_rate * schedule.lr_scale
                for group in optimizer.param_groups:
                    group["lr"] = lr
                model.train()
                batches = task.train_batches(epoch, generator)
                train = _run_batches(task, model, batches, device, epoch, optimizer, config.grad_clip)
                model.eval()
                with torch.no_grad():
                    val = _run_batches(task, model, task.val_batches(), device, epoch)
                improved = schedule.step(val["loss"])
                if improved:
                    best_epoch = epoch
                row = {"epoch": epoch, "lr": lr}
                row.update({f"train_{key}": value for key, value in train.items()})
                row.update({f"val_{key}": value for key, value in val.items()})
                history.append(row)
                metadata = {
                    **base_metadata,
                    "epoch": epoch,
                    "best_epoch": best_epoch,
                    "best_val_loss": schedule.best,
                    "metrics": row,
                    "history": history,
                }
                # last before best: a run stopped between the two writes (SIGKILL, a full disk) keeps a
                # last that --resume continues, and the resume completes best from it (_complete_best).
                # The other order left best without last after the first epoch: a folder that neither
                # --resume ("nothing to resume") nor a new run ("already holds a training run") accepted.
                state, tensors = _training_state(optimizer, schedule, generator)
                _write(save_checkpoint, last_path, model, {**metadata, "training_state": state},
                       extra_tensors=tensors)
                if improved:
                    pending_best = metadata
                    _write(save_checkpoint, best_path, model, metadata)
                    pending_best = None
                _write(log.append, row)
                progress.epoch_done(row, improved)
                epochs_run += 1
                stop_reason = _stop_reason(epoch, config, schedule, time.monotonic() - start)
        except KeyboardInterrupt:
            if pending_best is not None:  # interrupted between last and best: the model is that epoch's
                with contextlib.suppress(KeyboardInterrupt, GaatoolError, OSError):
                    save_checkpoint(best_path, model, pending_best)
            saved = _saved_epoch(last_path)
            where = "no epoch finished, nothing saved"
            if saved:
                where = f"{last_path} holds epoch {saved}; continue with --resume"
            when = f"after epoch {epoch}" if saved == epoch else f"during epoch {epoch}"
            raise TrainingInterrupted(f"training interrupted {when}; {where}", last_path, saved) from None
        except TrainingDiverged as err:
            saved = _saved_epoch(last_path)
            kept = f"; {last_path} holds epoch {saved}" if saved else ""
            raise TrainingDiverged(f"{err}{kept}") from None
        except _WriteFailed as err:
            saved = _saved_epoch(last_path)
            kept = f"{last_path} holds epoch {saved}; continue with --resume" if saved else "no epoch saved"
            raise CheckpointError(f"{err.__cause__}; {kept}") from None
    progress.message(
        f"stopped after epoch {epoch} ({stop_reason}); "
        f"best val_loss {schedule.best:.4g} at epoch {best_epoch} in {best_path}"
    )
    return FitResult(
        stop_reason=stop_reason,
        best_path=best_path,
        last_path=last_path,
        metrics_path=log_path,
        best_val_loss=schedule.best,
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        epoch=epoch,
        history=history,
        elapsed_s=time.monotonic() - start,
    )


# ---------------------------------------------------------------------------
# one epoch


def _run_batches(task, model, batches, device, epoch, optimizer=None, grad_clip=None) -> dict[str, float]:
    """Item-weighted mean loss and metrics over ``batches``; trains if ``optimizer`` is given."""
    sums: dict[str, float] = {}
    count = 0
    for batch in batches:
        batch = task.to_device(batch, device)
        items = int(task.batch_size_of(batch))
        if optimizer is not None:
            value, metrics = training_step(model, optimizer, lambda b: task.loss(model, b, train=True), batch,
                                           getattr(task, "split_batch", None), grad_clip, epoch)
        else:
            loss, metrics = task.loss(model, batch, train=False)
            value = _finite(float(loss.detach()), epoch, "validation")
        # "loss" last so that the engine's value wins over a task metric of that name.
        for key, metric in {**metrics, "loss": value}.items():
            sums[key] = sums.get(key, 0.0) + float(metric) * items
        count += items
    if count == 0:
        phase = "training" if optimizer is not None else "validation"
        raise ConfigError(f"the {phase} set gave no batches in epoch {epoch}; check the dataset and its split")
    # Report loss first, then the task's metrics, in a stable order.
    return {"loss": sums.pop("loss") / count, **{key: total / count for key, total in sums.items()}}


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn, batch: Any,
                  split=None, grad_clip: float | None = None, epoch: int = 0) -> tuple[float, dict[str, float]]:
    """One optimiser step on ``batch``: (loss, metrics). What ``fit`` does for every training batch.

    ``loss_fn(batch)`` -> (mean loss, metrics). ``split(batch, parts)``, if
    given, cuts a batch into (piece, weight) pairs, or returns None to keep it
    whole; on a multi-core CPU, for a model that keeps no batch statistics
    and draws its random numbers (if any) through piece streams
    (:mod:`gaatool.nn.streams`), the pieces then run side by side, one per core
    (:func:`~gaatool.nn.chunks.gradients_side_by_side`; the force field's step,
    which differentiates twice, ran ~1.1x faster at ethanol batch 8, ~1.2x at
    32 and ~1.25x at aspirin batch 16 on 2 cores, ``python -m
    benchmarks.ab_switches train-side-by-side``). The gradients
    equal the whole batch's up to rounding; with the same thread count, runs
    (and resumed runs) stay reproducible.
    """
    pieces = _core_pieces(model, batch, split)
    if pieces is None:
        loss, metrics = loss_fn(batch)
        value = _finite(float(loss.detach()), epoch, "training")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
    else:
        parameters = [p for p in model.parameters() if p.requires_grad]
        loss, piece_metrics, grads = gradients_side_by_side(loss_fn, pieces, parameters,
                                                            random_streams=draws_random_numbers(model))
        value = _finite(float(loss), epoch, "training")
        metrics = {key: sum(weight * float(m[key]) for (_, weight), m in zip(pieces, piece_metrics))
                   for key in piece_metrics[0]}
        optimizer.zero_grad(set_to_none=True)
        for parameter, grad in zip(parameters, grads):
            parameter.grad = grad
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return value, metrics


def _core_pieces(model: torch.nn.Module, batch: Any, split) -> list | None:
    """The batch's pieces for the CPU cores, or None to run it whole (see :func:`training_step`)."""
    if split is None or torch.get_num_threads() < 2 or draws_unstreamed_random_numbers(model):
        return None
    if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return None  # batch statistics would be per piece
    if any(p.device.type != "cpu" for p in model.parameters()):
        return None
    pieces = split(batch, torch.get_num_threads())
    return pieces if pieces is not None and len(pieces) > 1 else None


def _finite(value: float, epoch: int, phase: str) -> float:
    if not math.isfinite(value):
        raise TrainingDiverged(f"training diverged at epoch {epoch} ({phase} loss = {value}); lower --lr (a new "
                               "run: --resume keeps the learning rate; --init-from CKPT starts from saved weights)")
    return value


class _WriteFailed(Exception):
    """A checkpoint or metrics write failed (disk full, quota); ``__cause__`` says why."""


def _write(writer, *args, **kwargs) -> None:
    """``writer(...)``; a failure of the file system (not of the data) becomes :class:`_WriteFailed`."""
    try:
        writer(*args, **kwargs)
    except OSError as err:
        raise _WriteFailed() from err
    except CheckpointError as err:
        if not isinstance(err.__cause__, OSError):
            raise
        raise _WriteFailed() from err


def _stop_reason(epoch: int, config: TrainConfig, schedule: PlateauSchedule, elapsed_s: float | None) -> str | None:
    if schedule.should_stop:
        return "plateau"
    if epoch >= config.epochs:
        return "max_epochs"
    # Checked only after an epoch of this call, so a run always makes progress.
    if elapsed_s is not None and config.max_time_s is not None and elapsed_s >= config.max_time_s:
        return "max_time"
    return None


# ---------------------------------------------------------------------------
# state: seeding, saving, restoring


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _training_state(optimizer, schedule, generator) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(JSON part, tensor part) of everything ``last`` needs for an exact resume; no pickle."""
    tensors = {"rng/torch": torch.get_rng_state(), "rng/shuffle": generator.get_state()}
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    tensors["rng/numpy"] = torch.from_numpy(keys.astype(np.int64))
    py_version, py_internal, py_gauss = random.getstate()
    tensors["rng/python"] = torch.tensor(py_internal, dtype=torch.int64)  # 625 values < 2**32
    optim = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in optim["state"].items():
        for name, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/state/{index}/{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    state = {
        "optimizer": {"param_groups": optim["param_groups"], "scalars": scalars},
        "schedule": schedule.state_dict(),
        "rng": {
            "numpy": {"pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
            "python": {"version": py_version, "gauss_next": py_gauss},
        },
    }
    return state, tensors


def _model_like(path, meta: dict[str, Any], model: torch.nn.Module, task, error: str) -> torch.nn.Module:
    """The model to train when continuing a checkpoint: ``model`` if the checkpoint's configuration is
    the same; rebuilt from the checkpoint's if they differ only in the task's ``data_config_keys``
    (constants the task derives from its data, e.g. the force field's energy scale: the weights were
    trained with the checkpoint's); ConfigError ``error`` otherwise."""
    saved = meta.get("model") or {}
    # Compare in JSON form: the stored spec has lists where the config may have tuples.
    built = json.loads(json.dumps(registry.model_spec(model)))
    data_keys = set(getattr(task, "data_config_keys", ()))

    def architecture(spec: dict[str, Any]):
        return spec.get("name"), {k: v for k, v in spec.get("config", {}).items() if k not in data_keys}

    if architecture(saved) != architecture(built):
        raise ConfigError(f"{error} ({_spec_differences(architecture(saved), architecture(built))})")
    if saved == built:
        return model
    dtype = next(model.parameters()).dtype
    return build_stored_model(path, meta).to(dtype)


def _spec_differences(saved, built, limit: int = 3) -> str:
    """'attention.dropout: checkpoint 0.25, now 0.5; ...' for two (name, config) model specs."""
    (saved_name, saved_config), (built_name, built_config) = saved, built
    if saved_name != built_name:
        return f"model: checkpoint {saved_name}, now {built_name}"
    return _differences(saved_config, built_config, limit)


def _differences(saved, now, limit: int = 3, prefix: str = "") -> str:
    """'attention.dropout: checkpoint 0.25, now 0.5; ...' for two (nested) dicts."""
    def flat(value, prefix=""):
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in flat(item, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): value}

    a, b = flat(saved, f"{prefix}." if prefix else ""), flat(now, f"{prefix}." if prefix else "")
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
    text = "; ".join(f"{k}: checkpoint {a.get(k)}, now {b.get(k)}" for k in keys[:limit])
    return text + (f"; {len(keys) - limit} more" if len(keys) > limit else "")


def _check_resumable(meta: dict[str, Any], last_path: Path, task, task_fields: dict[str, Any],
                     fingerprint: str | None) -> None:
    """ConfigError unless the run in ``last_path`` was trained on the same data with the same task settings:
    otherwise "resume" would continue another run (and its metrics file would get other columns)."""
    for key in getattr(task, "resume_keys", ()):
        saved, now = meta, json.loads(json.dumps(task_fields))
        for part in key.split("."):
            saved, now = (saved or {}).get(part), (now or {}).get(part)
        if saved != now:
            raise ConfigError(f"{last_path} was trained with other settings ({_differences(saved, now, prefix=key)}); "
                              "resume with the same options or use a new output folder")
    saved = meta.get("data_fingerprint")
    if saved is not None and fingerprint is not None and saved != fingerprint:
        trained_on = (meta.get("data") or {}).get("path")
        raise ConfigError(f"{last_path} was trained on other data{f' ({trained_on})' if trained_on else ''}; "
                          "resume with the same dataset or use a new output folder")


def _initialize(checkpoint, path: Path, task, task_fields: dict[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """Load another run's weights into the fresh ``model``; return what to record about them."""
    meta = checkpoint.metadata
    for key in getattr(task, "compatibility_keys", ()):
        if meta.get(key) != json.loads(json.dumps(task_fields.get(key))):
            raise ConfigError(f"{path} was trained with {key}={meta.get(key)!r}, this dataset has "
                              f"{task_fields.get(key)!r}; its weights would mean something else here")
    check_weights_fit(path, model, checkpoint.state_dict)
    model.load_state_dict(checkpoint.state_dict, strict=True)
    return {"path": str(path), "weights_sha256": meta.get("weights_sha256"), "epoch": meta.get("epoch"),
            "initialized_from": meta.get("initialized_from")}


def _restore(checkpoint, last_path, config, model, optimizer, schedule,
             generator) -> tuple[int, int, list[dict[str, Any]], dict[str, Any] | None]:
    """Load the ``last`` checkpoint into the fresh objects; return (epoch, best_epoch, history, initialized_from).

    A training state that cannot be read (missing or misshapen RNG, optimizer or history entries: an
    edited file, or one from an incompatible gaatool) is a one-line :class:`CheckpointError`."""
    if "training_state" not in checkpoint.metadata:
        raise CheckpointError(f"{last_path} has no training state; it cannot be resumed")
    try:
        return _restore_state(checkpoint, last_path, config, model, optimizer, schedule, generator)
    except GaatoolError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as err:
        detail = str(err).splitlines()[0] if str(err) else ""
        raise CheckpointError(f"{last_path}: its training state is damaged ({type(err).__name__}: {detail}); "
                              "it cannot be resumed (--init-from it starts a new run from its weights)") from None


def _restore_state(checkpoint, last_path, config, model, optimizer, schedule, generator):
    meta, extra = checkpoint.metadata, checkpoint.extra_tensors
    for field in _TRAJECTORY_FIELDS:
        saved, new = meta["train"].get(field), getattr(config, field)
        if saved != new:
            raise ConfigError(
                f"{last_path} was trained with {field}={saved!r}; "
                f"resume with the same value (got {new!r}) or use a new output folder"
            )
    check_weights_fit(last_path, model, checkpoint.state_dict)
    model.load_state_dict(checkpoint.state_dict, strict=True)

    state = meta["training_state"]
    optim_state: dict[int, dict[str, Any]] = {}
    for key, value in extra.items():
        if key.startswith("optim/state/"):
            index, name = key[len("optim/state/"):].split("/", 1)
            optim_state.setdefault(int(index), {})[name] = value
    for index, values in state["optimizer"]["scalars"].items():
        optim_state.setdefault(int(index), {}).update(values)
    parameters = list(model.parameters())
    for index, values in optim_state.items():
        if not 0 <= index < len(parameters):
            raise ValueError(f"optimizer state for parameter {index} of {len(parameters)}")
        for name, value in values.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != parameters[index].shape:
                raise ValueError(f"optimizer {name} of parameter {index} has shape {tuple(value.shape)}, "
                                 f"the parameter {tuple(parameters[index].shape)}")
    groups = [dict(group, betas=tuple(group["betas"])) for group in state["optimizer"]["param_groups"]]
    optimizer.load_state_dict({"state": optim_state, "param_groups": groups})
    schedule.load_state_dict(state["schedule"])

    torch.set_rng_state(extra["rng/torch"])
    generator.set_state(extra["rng/shuffle"])
    numpy_rng, python_rng = state["rng"]["numpy"], state["rng"]["python"]
    keys = extra["rng/numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, numpy_rng["pos"], numpy_rng["has_gauss"], numpy_rng["cached_gaussian"]))
    internal = tuple(int(value) for value in extra["rng/python"].tolist())
    random.setstate((python_rng["version"], internal, python_rng["gauss_next"]))
    history = [_in_row_order(row) for row in meta["history"]]
    return int(meta["epoch"]), int(meta["best_epoch"]), history, meta.get("initialized_from")


def _complete_best(checkpoint, best_path: Path, model: torch.nn.Module, epoch: int, best_epoch: int) -> None:
    """Write ``best`` from the resumed ``last`` when the run stopped between the two writes of its best epoch.

    ``last`` is written first; if its epoch was the best one, ``model`` (loaded from it) holds the best
    weights, and ``best`` must be that epoch's: the same file an uninterrupted run writes."""
    if best_epoch != epoch or best_epoch < 1:
        return
    try:
        if int(read_metadata(best_path).get("epoch", -1)) == best_epoch:
            return
    except (CheckpointError, TypeError, ValueError):
        pass  # missing or damaged: write it
    metadata = {key: value for key, value in checkpoint.metadata.items() if key != "training_state"}
    save_checkpoint(best_path, model, metadata)


def _in_row_order(row: dict[str, Any]) -> dict[str, Any]:
    """A history row read back from checkpoint metadata (whose JSON keys are sorted) in the order
    :func:`fit` writes rows: epoch, lr, then per split the loss before the other metrics. Without it
    a resumed run's metrics file had its columns sorted (train_accuracy before train_loss)."""
    def rank(key: str):
        for position, prefix in enumerate(("train_", "val_")):
            if key.startswith(prefix):
                return (2 + position, key != prefix + "loss", key)
        return ({"epoch": 0, "lr": 1}.get(key, 4), False, key)

    return {key: row[key] for key in sorted(row, key=rank)}


def _saved_epoch(last_path: Path) -> int:
    try:
        return int(read_metadata(last_path)["epoch"])
    except (CheckpointError, KeyError):
        return 0


def _command_line() -> str:
    """The command that started this run, with the program's name rather than its install path."""
    if not sys.argv or not sys.argv[0]:
        return ""
    program = Path(sys.argv[0]).name
    if program in ("__main__.py", "-c", "-m"):
        program = "python"
    return shlex.join([program, *sys.argv[1:]])
