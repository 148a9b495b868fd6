"""Command groups and where their commands come from.

Each workflow module adds its commands to these groups; the root app mounts them.
"""
from __future__ import annotations

import typer

data_app = typer.Typer(help="Build datasets (crystals, md17, pdb).", no_args_is_help=True)
train_app = typer.Typer(help="Train a model (crystal, forces, backmap).", no_args_is_help=True)
evaluate_app = typer.Typer(help="Evaluate a checkpoint on a dataset's test split.", no_args_is_help=True)
predict_app = typer.Typer(help="Apply a force-field checkpoint to structures.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Mount the groups and import the modules that define commands."""
    from . import commands  # noqa: F401  (defines commands on the groups and on app via commands.attach)

    app.add_typer(data_app, name="data")
    app.add_typer(train_app, name="train")
    app.add_typer(evaluate_app, name="evaluate")
    app.add_typer(predict_app, name="predict")
    commands.attach(app)
