"""Collects the command modules; each adds its commands to the groups or the root app."""
from __future__ import annotations

import typer


def attach(app: typer.Typer) -> None:
    """Add top-level commands (info, identify, backmap) to the root app."""
    from . import info
    info.attach(app)
