"""Plots shared by the workflows (matplotlib, Agg backend, atomic PNG writes)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..io.atomic import atomic_path

__all__ = ["save_confusion_matrix", "save_parity_plot"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters
    import matplotlib.pyplot as plt

    return plt


def _save_png(fig, ax, title: str, path: str | Path) -> Path:
    """Titles, lays out and writes ``fig`` to ``path`` atomically, then closes it (also on failure)."""
    try:
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        _pyplot().close(fig)
    return Path(path)


def save_confusion_matrix(confusion: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (true class rows) with counts, as PNG."""
    plt = _pyplot()
    confusion = np.asarray(confusion)
    fractions = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    size = 1.0 + 0.7 * len(class_names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            if confusion[i, j]:
                ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if fractions[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, label="fraction of true class")
    return _save_png(fig, ax, title, path)


def save_parity_plot(reference: np.ndarray, predicted: np.ndarray, path: str | Path, xlabel: str, ylabel: str,
                     title: str = "") -> Path:
    """Predicted against reference values, with the y = x line, as PNG."""
    plt = _pyplot()
    reference, predicted = np.ravel(reference), np.ravel(predicted)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(reference, predicted, s=2, alpha=0.3, rasterized=True)
    low, high = float(min(reference.min(), predicted.min())), float(max(reference.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _save_png(fig, ax, title, path)
