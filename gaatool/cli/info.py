"""`gaatool info CKPT`: print a checkpoint's metadata."""
from __future__ import annotations

from pathlib import Path

import typer

from . import render


def attach(app: typer.Typer) -> None:
    @app.command("info")
    def info(
        checkpoint: Path = typer.Argument(..., help="A gaatool checkpoint (.safetensors)."),
        as_json: bool = typer.Option(False, "--json", help="Print the metadata as JSON on stdout."),
    ) -> None:
        """Show what a checkpoint is: task, model, data, training command and metrics."""
        from ..checkpoint import describe_checkpoint

        render.checkpoint_info(describe_checkpoint(checkpoint), as_json=as_json)
