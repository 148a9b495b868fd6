"""Plateau schedule: lower the learning rate, then stop, when validation stalls.

The paper's recipe: multiply the learning rate by 0.75 after 20 epochs without
a new best validation loss, and stop after 50 such epochs (at most 800 epochs,
which :class:`gaatool.train.TrainConfig` enforces).
"""
from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError

__all__ = ["PlateauSchedule"]


class PlateauSchedule:
    """Track the best validation loss and derive the learning-rate scale and stop signal.

    Parameters
    ----------
    factor : float
        Learning-rate multiplier per reduction, in (0, 1].
    patience : int
        Epochs without improvement before a reduction. The count restarts
        after each reduction, so with ``patience=20`` reductions happen after
        20, 40, 60, ... epochs without improvement.
    stop_patience : int
        Epochs without improvement (counted since the last improvement, not
        reset by reductions) after which :attr:`should_stop` becomes true.
    min_delta : float
        A validation loss improves only if it is below ``best - min_delta``.

    >>> schedule = PlateauSchedule(factor=0.5, patience=2, stop_patience=3)
    >>> [schedule.step(loss) for loss in [1.0, 2.0, 2.0, 2.0]]
    [True, False, False, False]
    >>> schedule.lr_scale, schedule.should_stop
    (0.5, True)
    """

    def __init__(self, factor: float = 0.75, patience: int = 20, stop_patience: int = 50, min_delta: float = 0.0):
        if not 0.0 < factor <= 1.0:
            raise ConfigError(f"lr_factor must be in (0, 1] (got {factor})")
        if patience < 1:
            raise ConfigError(f"lr_patience must be at least 1 (got {patience})")
        if stop_patience < 1:
            raise ConfigError(f"stop_patience must be at least 1 (got {stop_patience})")
        if not min_delta >= 0.0:
            raise ConfigError(f"min_delta must be >= 0 (got {min_delta})")
        self.factor = factor
        self.patience = patience
        self.stop_patience = stop_patience
        self.min_delta = min_delta
        self.best = math.inf
        self.epochs_since_improvement = 0
        self.epochs_since_reduction = 0  # epochs without improvement since the last reduction
        self.n_reductions = 0

    @property
    def lr_scale(self) -> float:
        """Factor to apply to the base learning rate: ``factor ** n_reductions``."""
        return self.factor**self.n_reductions

    @property
    def should_stop(self) -> bool:
        return self.epochs_since_improvement >= self.stop_patience

    def step(self, val_loss: float) -> bool:
        """Record one epoch's validation loss; return whether it is a new best."""
        if val_loss < self.best - self.min_delta:
            self.best = float(val_loss)
            self.epochs_since_improvement = 0
            self.epochs_since_reduction = 0
            return True
        self.epochs_since_improvement += 1
        self.epochs_since_reduction += 1
        if self.epochs_since_reduction >= self.patience:
            self.n_reductions += 1
            self.epochs_since_reduction = 0
        return False

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (``best`` is None before the first step)."""
        return {
            "best": None if math.isinf(self.best) else self.best,
            "epochs_since_improvement": self.epochs_since_improvement,
            "epochs_since_reduction": self.epochs_since_reduction,
            "n_reductions": self.n_reductions,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore counters from :meth:`state_dict`; the hyperparameters stay as constructed."""
        self.best = math.inf if state["best"] is None else float(state["best"])
        self.epochs_since_improvement = int(state["epochs_since_improvement"])
        self.epochs_since_reduction = int(state["epochs_since_reduction"])
        self.n_reductions = int(state["n_reductions"])
