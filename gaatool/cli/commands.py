"""Collects the command modules: one per workflow, each adding its commands to the verb groups."""
from __future__ import annotations

import importlib

import typer

# Each module defines commands on the groups in .groups when imported and may
# define top-level commands in attach(app).
WORKFLOW_MODULES = ("crystal", "forces", "backmap")


def attach(app: typer.Typer) -> None:
    """Import the workflow modules and add the top-level commands (info, identify, backmap)."""
    from . import info

    info.attach(app)
    for name in WORKFLOW_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__package__}.{name}":
                raise
            continue  # workflow not installed in this build
        if hasattr(module, "attach"):
            module.attach(app)
