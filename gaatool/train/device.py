"""Turn a ``--device`` value (auto | cpu | cuda | cuda:N) into a torch.device."""
from __future__ import annotations

import re

import torch

from ..errors import ConfigError

__all__ = ["resolve_device"]

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The torch device for ``spec``, checking that it exists.

    ``"auto"`` picks ``cuda`` when CUDA is available and ``cpu`` otherwise.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA.fullmatch(text)
    if match is None:
        raise ConfigError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {text} requested but CUDA is not available; use --device cpu or auto")
    if match.group(1) is not None:
        index, count = int(match.group(1)), torch.cuda.device_count()
        if index >= count:
            raise ConfigError(
                f"--device {text} requested but only {count} CUDA device(s) are visible; use cuda:0 to cuda:{count - 1}"
            )
    return torch.device(text)
