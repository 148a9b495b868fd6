"""The one training engine, shared by every task.

:func:`fit` trains a :class:`TrainTask` under a :class:`TrainConfig` and
writes ``best.safetensors``, ``last.safetensors`` and a metrics file;
:class:`PlateauSchedule` is the learning-rate schedule, :func:`resolve_device`
turns ``--device`` into a torch device, and :mod:`gaatool.train.log` holds the
metrics file and the progress display.
"""
from .device import resolve_device
from .engine import (
    BEST_NAME,
    LAST_NAME,
    FitResult,
    TrainConfig,
    TrainingDiverged,
    TrainingInterrupted,
    TrainTask,
    fit,
    training_step,
)
from .log import MetricsLog, ProgressReporter, metrics_path
from .schedule import PlateauSchedule

__all__ = [
    "fit",
    "training_step",
    "FitResult",
    "TrainConfig",
    "TrainTask",
    "TrainingInterrupted",
    "TrainingDiverged",
    "BEST_NAME",
    "LAST_NAME",
    "PlateauSchedule",
    "resolve_device",
    "MetricsLog",
    "ProgressReporter",
    "metrics_path",
]
