"""Per-epoch metrics files (CSV or JSONL) and the training progress display.

The metrics file lives next to the checkpoints (``metrics.csv`` or
``metrics.jsonl``), gets one row per epoch, and is flushed after each row so
that ``tail -f`` and a crash both see every finished epoch. On resume the
engine rewrites it from the history stored in ``last.safetensors`` and keeps
appending, so the file always matches the checkpoint even if the previous run
died between saving the checkpoint and writing the row.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..errors import ConfigError, GaatoolError, OutputPathError
from ..io.atomic import atomic_write_text

__all__ = ["METRICS_FORMATS", "metrics_path", "MetricsLog", "ProgressReporter", "format_row"]

METRICS_FORMATS = ("csv", "jsonl")


def metrics_path(out_dir: str | os.PathLike, metrics_format: str = "csv") -> Path:
    """``out_dir/metrics.<format>``; ``metrics_format`` is ``"csv"`` or ``"jsonl"``."""
    if metrics_format not in METRICS_FORMATS:
        raise ConfigError(f"unknown metrics format {metrics_format!r}; use one of {list(METRICS_FORMATS)}")
    return Path(out_dir) / f"metrics.{metrics_format}"


class MetricsLog:
    """Append-only per-epoch metrics file, started from ``history``.

    Parameters
    ----------
    path : path-like
        ``*.csv`` or ``*.jsonl``; the suffix picks the format.
    history : iterable of dict
        Rows already run (empty for a new run). The file is rewritten
        atomically to hold exactly these rows before new rows are appended.

    In CSV the columns are those of the first row; a later row with other
    columns raises :class:`GaatoolError` (missing columns are left empty).

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.csv"
    >>> with MetricsLog(path) as log:
    ...     log.append({"epoch": 1, "val_loss": 0.5})
    >>> print(path.read_text().strip())
    epoch,val_loss
    1,0.5
    """

    def __init__(self, path: str | os.PathLike, history: Iterable[dict[str, Any]] = ()):
        self.path = Path(path)
        self.format = self.path.suffix.lstrip(".")
        if self.format not in METRICS_FORMATS:
            raise ConfigError(f"{self.path}: metrics file must end in .csv or .jsonl")
        rows = [dict(row) for row in history]
        self._columns: list[str] | None = list(rows[0]) if rows else None
        try:
            atomic_write_text(self.path, self._render(rows, header=True))
            self._handle = open(self.path, "a", encoding="utf-8", newline="")
        except OutputPathError:
            raise
        except OSError as err:  # a full disk or an exceeded quota
            raise OutputPathError(f"{self.path}: cannot write the metrics file ({err.strerror or err})") from err

    def append(self, row: dict[str, Any]) -> None:
        """Write one row and flush it (:class:`~gaatool.errors.OutputPathError` if the disk refuses)."""
        header = self._columns is None
        if header:
            self._columns = list(row)
        text = self._render([row], header=header)
        try:
            self._handle.write(text)
            self._handle.flush()
        except OSError as err:
            raise OutputPathError(f"{self.path}: cannot write the metrics file ({err.strerror or err})") from err

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _render(self, rows: list[dict[str, Any]], header: bool) -> str:
        if self.format == "jsonl":
            return "".join(json.dumps(row) + "\n" for row in rows)
        if not rows:
            return ""
        for row in rows:
            extra = [key for key in row if key not in self._columns]
            if extra:
                raise GaatoolError(
                    f"{self.path}: row has columns {extra} missing from the header {self._columns}; "
                    'use a new output folder, or "metrics_format": "jsonl" in the --config train section'
                )
        buffer = io.StringIO()
        # str(float) is the shortest exact repr, so values survive a round trip bit for bit.
        writer = csv.DictWriter(buffer, fieldnames=self._columns, restval="", lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()


def format_row(row: dict[str, Any]) -> str:
    """One-line text form of a metrics row: ``epoch 3  lr 0.001  val_loss 0.1235``.

    >>> format_row({"epoch": 3, "lr": 0.001, "val_loss": 0.123456})
    'epoch 3  lr 0.001  val_loss 0.1235'
    """
    parts = []
    for key, value in row.items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{key} {text}")
    return "  ".join(parts)


class ProgressReporter:
    """Show training progress on stderr.

    A rich progress bar when the console is a terminal, one plain line per
    epoch when it is not (logs, CI), nothing when ``quiet``. Use as a context
    manager and call :meth:`epoch_done` after each epoch.

    Parameters
    ----------
    total_epochs : int
    start_epoch : int
        Epochs already done (on resume).
    quiet : bool
    console : rich.console.Console, optional
        Defaults to a console on stderr.
    """

    def __init__(self, total_epochs: int, start_epoch: int = 0, quiet: bool = False, console: Console | None = None):
        self.total_epochs = total_epochs
        self.start_epoch = start_epoch
        self.quiet = quiet
        self.console = console if console is not None else Console(stderr=True)
        self._progress: Progress | None = None
        self._task = None

    @property
    def mode(self) -> str:
        """``"quiet"``, ``"bar"`` or ``"lines"``."""
        if self.quiet:
            return "quiet"
        return "bar" if self.console.is_terminal else "lines"

    def __enter__(self) -> "ProgressReporter":
        if self.mode == "bar":
            self._progress = Progress(
                TextColumn("epoch"),
                MofNCompleteColumn(),
                BarColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
                console=self.console,
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total_epochs, completed=self.start_epoch)
        return self

    def epoch_done(self, row: dict[str, Any], improved: bool = False) -> None:
        """Report a finished epoch's metrics row; ``improved`` marks a new best."""
        mark = "  (best)" if improved else ""
        if self.mode == "bar":
            shown = {k: v for k, v in row.items() if k != "epoch"}
            self._progress.update(self._task, completed=row["epoch"], description=format_row(shown) + mark)
        elif self.mode == "lines":
            shown = {"epoch": f"{row['epoch']}/{self.total_epochs}", **{k: v for k, v in row.items() if k != "epoch"}}
            self.console.print(format_row(shown) + mark, markup=False, highlight=False, soft_wrap=True)

    def message(self, text: str) -> None:
        """A one-line note (e.g. why training stopped), unless quiet."""
        if self.mode != "quiet":
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
