"""Rendering: rich tables to stderr for people, JSON to stdout for pipelines."""
from __future__ import annotations

import json
import sys
from typing import Any, Iterable, Sequence

from rich.console import Console
from rich.table import Table

__all__ = ["stderr_console", "print_json", "table", "checkpoint_info"]


#: Width of tables written to a file or pipe (Rich's default there, 80, cut class names such as cF136-Si to "cF1…").
PIPE_WIDTH = 200


def stderr_console() -> Console:
    """Console for human-readable output; plain text when stderr is not a terminal, then up to PIPE_WIDTH wide.

    No rich markup: the text printed holds file names, split names and library messages, whose brackets
    rich read as tags (``[test]`` vanished; ``runs[/x]/cg.pdb`` raised MarkupError after the file was written).
    """
    return Console(stderr=True, highlight=False, markup=False, soft_wrap=True,
                   width=None if sys.stderr.isatty() else PIPE_WIDTH)


def print_messages(kind: str, messages: Iterable[str]) -> None:
    """``kind: message`` lines on stderr (``warning: ...``, ``note: ...``), where a pipeline's log goes, also
    when the results go to stdout as JSON."""
    console = stderr_console()
    for message in messages:
        console.print(f"{kind}: {message}")


def print_json(payload: Any) -> None:
    """Write JSON (and only JSON) to stdout."""
    sys.stdout.write(json.dumps(payload, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A rich table with string-formatted cells (floats to 4 significant digits)."""
    result = Table(title=title, title_justify="left")
    for column in columns:
        # narrow terminals fold long names onto a second line instead of cutting them
        result.add_column(column, justify="right" if column not in (columns[0],) else "left", overflow="fold")
    for row in rows:
        result.add_row(*(f"{cell:.4g}" if isinstance(cell, float) else str(cell) for cell in row))
    return result


def checkpoint_info(info: dict, as_json: bool = False) -> None:
    """Render the output of ``gaatool.checkpoint.describe_checkpoint``: one row per field, history summarised."""
    if as_json:
        print_json(info)
        return
    console = stderr_console()
    rows = [(key, value) for key, value in info.items() if key != "metadata"]
    metadata = dict(info.get("metadata", {}))
    history = metadata.pop("history", None)
    metadata.pop("training_state", None)
    shown = {key for key, _ in rows}
    rows += [(key, value) for key, value in metadata.items() if key not in shown]
    if history:
        rows.append(("history", f"{len(history)} epochs (see the metrics file next to the checkpoint)"))
    console.print(table(str(info.get("path", "checkpoint")), ["field", "value"],
                        [(key, _short(value)) for key, value in rows]))


def _short(value, limit: int = 400) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=_json_default)
    return text if len(text) <= limit else text[: limit - 3] + "..."
