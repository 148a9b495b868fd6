"""Options shared by several commands, so they have the same names everywhere."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError
from ..io.atomic import check_output_path
from . import render

Device = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
Seed = typer.Option(0, "--seed", help="Random seed.")
Quiet = typer.Option(False, "--quiet", "-q", help="No progress output.")
AsJson = typer.Option(False, "--json", help="Print the result as JSON on stdout.")
Model = typer.Option(None, "--model", "-m", help="Checkpoint (.safetensors); default: the pretrained model.")
StructureFormat = typer.Option(None, "--format", help="pdb or cif (default: by extension; stdout: pdb).")

# the engine options every `train` command takes
Epochs = typer.Option(800, "--epochs", min=1, help="Maximum number of epochs.")
LearningRate = typer.Option(1e-3, "--lr", help="Initial learning rate (Adam).")
MaxTime = typer.Option(None, "--max-time", help="Stop after the epoch that crosses this many seconds of "
                       "training in this call.")
Resume = typer.Option(False, "--resume", help="Continue the run in --out.")
InitFrom = typer.Option(None, "--init-from", help="Start from this checkpoint's weights (same model options), "
                        "with a fresh optimizer and schedule: fine-tuning.")


def load_json_config(path: Optional[Path], sections: tuple[str, ...] = ("train", "model")) -> dict:
    """Read a --config JSON file of overrides ({} when not given): an object of ``sections``, each an object."""
    if path is None:
        return {}
    try:
        values = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a config file must hold a JSON object")
    unknown = sorted(set(values) - set(sections))
    if unknown:
        raise ConfigError(f"{path}: unknown sections {unknown}; this command reads {list(sections)}")
    for name, section in values.items():
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: section {name!r} must be a JSON object of settings")
    return values


def given_on_command_line(ctx: typer.Context) -> set[str]:
    """Names of the command's parameters that were typed on the command line (not left at their defaults)."""
    # by name: typer vendors its own click, whose ParameterSource is not click's
    return {name for name in ctx.params if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"}


def layered(ctx: typer.Context, section: dict, flags: dict[str, str]) -> dict:
    """A config section's values with the command's flags laid over them.

    ``flags`` maps config keys to parameter names. A flag given on the command line wins over the config
    file, the config file over the flag's default; a default of None (no default) sets nothing.
    """
    values = dict(section)
    given = given_on_command_line(ctx)
    for key, param in flags.items():
        value = ctx.params[param]
        if param in given or (key not in values and value is not None):
            values[key] = value
    return values


def check_types(values: dict, hints: dict, where: str) -> None:
    """ConfigError unless every value has its type hint's JSON type (an int counts as a float, not a bool
    as an int): a string "0.1" would otherwise fail deep inside training, or compare as text."""
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known keys are {sorted(hints)}")
    for key, value in values.items():
        if not _has_type(value, hints[key]):
            raise ConfigError(f"{where}.{key} must be {_type_name(hints[key])} (got {json.dumps(value)})")


def dataclass_from_dict(cls, values: dict, what: str, config_file: Optional[Path] = None,
                        from_config: tuple = (), factory=None):
    """Build a dataclass from option values, with one-line errors for unknown keys and wrong types.

    ``from_config``: the keys whose values came from ``config_file``; their types are checked, and a
    range error about one of them names the file and ``what.key``. ``factory(**values)`` builds it
    instead of ``cls`` when given (a task's own defaults).
    """
    import dataclasses
    import re
    import typing

    every = typing.get_type_hints(cls)
    hints = {f.name: every[f.name] for f in dataclasses.fields(cls)}
    where = f"{config_file}: {what}" if config_file is not None else f"--config {what}"
    check_types({k: v for k, v in values.items() if k in from_config or k not in hints}, hints, where)
    for field in dataclasses.fields(cls):  # a dict of settings (e.g. attention): the keys of its own dataclass
        settings = field.metadata.get("settings")
        if settings is not None and field.name in from_config:
            check_types(values[field.name], typing.get_type_hints(settings), f"{where}.{field.name}")
    try:
        return (factory or cls)(**values)
    except ConfigError as err:
        culprit = next((key for key in from_config if re.search(rf"\b{key}\b", str(err))), None)
        if culprit is None:
            raise
        raise ConfigError(f"{where}.{culprit}: {err}") from None


#: TrainConfig fields that `train` commands also take as flags: config key -> parameter name.
TRAIN_FLAGS = {"epochs": "epochs", "batch_size": "batch_size", "learning_rate": "lr", "seed": "seed",
               "device": "device", "max_time_s": "max_time"}


def options_from(ctx: typer.Context, config: dict, section: str, cls, flags: dict[str, str],
                 config_file: Optional[Path], factory=None):
    """``cls`` (a dataclass) from the ``section`` of a --config file and the command's ``flags``
    (see :func:`layered`); ``factory(**values)`` builds it instead when given (a task's own defaults)."""
    own = config.get(section, {})
    values = layered(ctx, own, flags)
    # keys a flag typed on the command line replaced are no longer the file's
    given = given_on_command_line(ctx)
    from_config = tuple(key for key in own if flags.get(key) not in given)
    try:
        return dataclass_from_dict(cls, values, section, config_file, from_config, factory=factory)
    except ConfigError as err:
        raise ConfigError(_in_flag_terms(ctx, str(err), {key: flags[key] for key in flags if flags[key] in given})) \
            from None


def _in_flag_terms(ctx: typer.Context, message: str, typed: dict[str, str]) -> str:
    """``message`` with a leading setting name (``learning_rate must be ...``) replaced by the flag the user
    typed for it (``--lr must be ...``): they never saw the setting's name."""
    for key, param_name in typed.items():
        if message.startswith(f"{key} "):
            flags = [opt for param in ctx.command.params if param.name == param_name for opt in param.opts]
            if flags:
                return max(flags, key=len) + message[len(key):]
    return message


def train_config(ctx: typer.Context, config: dict, config_file: Optional[Path], factory=None):
    """TrainConfig from a command's engine flags and the --config ``train`` section (lr_patience, grad_clip, ...)."""
    from ..train import TrainConfig

    return options_from(ctx, config, "train", TrainConfig, TRAIN_FLAGS, config_file, factory=factory)


def _has_type(value, hint) -> bool:
    import os
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str or hint is os.PathLike:
        return isinstance(value, str)
    hint = origin or hint
    if hint in (list, tuple):
        return isinstance(value, list)
    if hint is dict:
        return isinstance(value, dict)
    return True  # a type JSON cannot name: the option's own checks judge it


def _type_name(hint) -> str:
    import os
    import types
    import typing

    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_type_name(arg) for arg in typing.get_args(hint)))
    names = {type(None): "null", bool: "true or false", int: "an integer", float: "a number", str: "a string",
             os.PathLike: "a string", list: "a list", tuple: "a list", dict: "a JSON object"}
    return names.get(typing.get_origin(hint) or hint, str(hint))


def check_png(plot: Optional[Path], inputs: tuple = ()) -> None:
    """ConfigError unless a --plot file ends in .png (the plots are PNG images, whatever the name says), and
    OutputPathError unless it can be written (a folder, a path inside a file, one of ``inputs``): before the
    evaluation, not after it."""
    if plot is None:
        return
    if plot.suffix.lower() != ".png":
        raise ConfigError(f"--plot {plot}: plots are written as PNG images; name the file *.png")
    check_output_path(plot, inputs=inputs)


#: ``-o -`` refused (see :func:`check_stdout_refused`): what each kind of output is instead of a stream.
NO_STDOUT_DATASET = "the dataset is an .npz archive, not a stream for stdout; give a file name"
NO_STDOUT_RUN = "a training run is a folder of checkpoints and metrics, not a stream for stdout; give a folder name"


def check_stdout_refused(out: Optional[Path], why: str) -> None:
    """ConfigError for ``-o -`` where the output cannot be a stream (an .npz archive, a run folder): it was
    written, with exit code 0, as a file or folder named '-' in the current folder."""
    if out is not None and str(out) == "-":
        raise ConfigError(f"-o -: {why}")


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
