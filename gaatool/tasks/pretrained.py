"""Where the pretrained checkpoints live: $GAATOOL_PRETRAINED, then gaatool/pretrained.

In a source checkout gaatool/pretrained is a symlink to the top-level pretrained/ folder;
wheels carry the files themselves.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import CheckpointError

__all__ = ["pretrained_dirs", "pretrained_path"]


def pretrained_dirs() -> list[Path]:
    """Folders searched for pretrained checkpoints, in order."""
    dirs = []
    if os.environ.get("GAATOOL_PRETRAINED"):
        dirs.append(Path(os.environ["GAATOOL_PRETRAINED"]))
    dirs.append(Path(__file__).resolve().parent.parent / "pretrained")
    return dirs


def pretrained_path(name: str) -> Path:
    """Path of a pretrained checkpoint by file name; CheckpointError if none is installed."""
    for folder in pretrained_dirs():
        candidate = folder / name
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(d) for d in pretrained_dirs())
    raise CheckpointError(f"no pretrained model {name} found (looked in {searched}); pass --model CKPT")
