"""Options shared by several commands, so they have the same names everywhere."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError
from . import render

Device = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
Seed = typer.Option(0, "--seed", help="Random seed.")
Quiet = typer.Option(False, "--quiet", "-q", help="No progress output.")
AsJson = typer.Option(False, "--json", help="Print the result as JSON on stdout.")
Model = typer.Option(None, "--model", "-m", help="Checkpoint (.safetensors); default: the pretrained model.")
StructureFormat = typer.Option(None, "--format", help="pdb or cif (default: by extension; stdout: pdb).")

# the engine options every `train` command takes
Epochs = typer.Option(800, "--epochs", help="Maximum number of epochs.")
LearningRate = typer.Option(1e-3, "--lr", help="Initial learning rate (Adam).")
MaxTime = typer.Option(None, "--max-time", help="Stop after this many seconds.")
Resume = typer.Option(False, "--resume", help="Continue the run in --out.")
InitFrom = typer.Option(None, "--init-from", help="Start from this checkpoint's weights (same model options), "
                        "with a fresh optimizer and schedule: fine-tuning.")


def load_json_config(path: Optional[Path]) -> dict:
    """Read a --config JSON file of overrides ({} when not given)."""
    if path is None:
        return {}
    try:
        values = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a config file must hold a JSON object")
    return values


def dataclass_from_dict(cls, values: dict, what: str):
    """Build a dataclass from --config values with a clear error for unknown keys."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"--config {what}: unknown keys {unknown}; known keys are {sorted(known)}")
    return cls(**values)



def train_config(epochs, batch_size, lr, seed, device, max_time, config_file, metrics_format="csv"):
    """TrainConfig from CLI options; --config JSON may hold more fields (lr_patience, grad_clip, ...)."""
    from ..train import TrainConfig

    values = load_json_config(config_file).get("train", {})
    values.update({"epochs": epochs, "batch_size": batch_size, "learning_rate": lr, "seed": seed, "device": device,
                   "max_time_s": max_time, "metrics_format": metrics_format})
    return TrainConfig.from_dict(values)


def report(result, as_json: bool) -> None:
    if as_json:
        render.print_json(result.to_dict())
        return
    render.stderr_console().print(
        f"best checkpoint: {result.best_path} (val_loss {result.best_val_loss:.4g}, epoch {result.best_epoch}); "
        f"stopped: {result.stop_reason}")


def parse_frames(text):
    """--frames 'start:stop:step' (0-based) -> slice; the same parser as the library's readers."""
    from ..io.readers import parse_frame_selection

    return parse_frame_selection(text)


def named_after(file: Path, tag: str, extension: str) -> Path:
    """Where a command writes when no -o is given: ``<input name>_<tag>.<extension>`` in the current folder
    (the input's own extension and .gz dropped); ``-`` (stdout) for stdin input.

    >>> named_after(Path("data/1abc.cif.gz"), "backmapped", "cif"), named_after(Path("-"), "forces", "extxyz")
    (PosixPath('1abc_backmapped.cif'), PosixPath('-'))
    """
    if str(file) == "-":
        return Path("-")
    name = file.name[:-3] if file.name.lower().endswith(".gz") else file.name
    return Path(f"{name.rpartition('.')[0] or name}_{tag}.{extension}")
