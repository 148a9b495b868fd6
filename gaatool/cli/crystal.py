"""Crystal-structure identification commands: data crystals, train/evaluate crystal, identify."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options, render
from .groups import data_app, evaluate_app, train_app


@train_app.command("crystal")
def crystal(
    dataset: Path = typer.Argument(..., help="Dataset from `gaatool data crystals`."),
    out: Path = typer.Option(Path("runs/crystal"), "-o", "--out", help="Output folder for checkpoints and metrics."),
    model: str = typer.Option("gaa", "--model", help="gaa (the paper's network) or steinhardt (the baseline MLP)."),
    epochs: int = typer.Option(800, "--epochs", help="Maximum number of epochs."),
    batch_size: int = typer.Option(256, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr", help="Initial learning rate (Adam)."),
    n_dim: int = typer.Option(32, "--dim", help="Working dimension."),
    rank: int = typer.Option(2, "--rank", help="Tuple rank of the attention (1-3)."),
    o3: bool = typer.Option(False, "--o3", help="O(3)-invariant: ignore the sign of the trivector."),
    max_time: Optional[float] = typer.Option(None, "--max-time", help="Stop after this many seconds."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    config_file: Optional[Path] = typer.Option(None, "--config", help='JSON overrides: {"train": {...}, "model": {...}}.'),
    seed: int = options.Seed, device: str = options.Device, quiet: bool = options.Quiet, as_json: bool = options.AsJson,
) -> None:
    """Train a crystal-structure classifier (defaults: the paper's Listing 1 and schedule)."""
    from ..tasks.crystal.train import CrystalModelOptions, train_crystal
    from .options import dataclass_from_dict

    model_values = options.load_json_config(config_file).get("model", {})
    model_values.update({"model": model, "n_dim": n_dim, "rank": rank, "o3": o3})
    config = options.train_config(epochs, batch_size, lr, seed, device, max_time, config_file)
    options.report(train_crystal(dataset, out, dataclass_from_dict(CrystalModelOptions, model_values, "model"), config, resume=resume, quiet=quiet), as_json)
