"""Where the pretrained checkpoints live: $GAATOOL_PRETRAINED, the repo's pretrained/, or the installed copy."""
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
    package = Path(__file__).resolve().parent.parent
    dirs += [package / "pretrained", package.parent / "pretrained"]  # installed wheel / source checkout
    return dirs


def pretrained_path(name: str) -> Path:
    """Path of a pretrained checkpoint by file name; CheckpointError if none is installed."""
    for folder in pretrained_dirs():
        candidate = folder / name
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(d) for d in pretrained_dirs())
    raise CheckpointError(f"no pretrained model {name} found (looked in {searched}); pass --model CKPT")
