"""Open text inputs, gzipped or not, with one-line errors."""
from __future__ import annotations

import gzip
import os
import sys
import zlib
from contextlib import contextmanager
from typing import IO, BinaryIO, Iterator

from ..errors import InputFileError

__all__ = ["check_input_file", "open_text", "CountedLines", "FileLines", "decoding_errors", "read_stdin"]


def check_input_file(path: str | os.PathLike, what: str) -> None:
    """A one-line :class:`InputFileError` unless ``path`` is an existing file (not a folder).

    ``what`` names the expected content ("a GSD file"); "-" (stdin) is not checked.
    """
    if str(path) == "-":
        return
    if os.path.isdir(path):
        raise InputFileError(f"{path}: is a folder, not {what}")
    if not os.path.exists(path):
        raise InputFileError(f"{path}: no such file; check the path")


def open_text(path: str | os.PathLike, what: str) -> IO[str]:
    """``path`` opened for reading as UTF-8 text; ``.gz`` files are decompressed on the fly.

    ``what`` names the expected content in errors ("an XYZ file", "a LAMMPS dump").
    """
    try:
        if str(path).lower().endswith(".gz"):  # trajectories are often gzipped: read them as they are
            return gzip.open(path, "rt", encoding="utf-8", newline=None)
        return open(path, encoding="utf-8", newline=None)
    except FileNotFoundError as err:
        raise InputFileError(f"{path}: no such file; check the path") from err
    except IsADirectoryError as err:
        raise InputFileError(f"{path}: is a folder, not {what}") from err
    except OSError as err:
        raise InputFileError(f"{path}: cannot open ({err.strerror or err})") from err


class CountedLines:
    """Line reader that counts lines, for error messages that name them."""

    def __init__(self, handle: IO[str]):
        self.handle = handle
        self.number = 0

    def next(self) -> str | None:
        """The next line (with its newline), or None at the end."""
        line = self.handle.readline()
        if not line:
            return None
        self.number += 1
        return line


class FileLines(CountedLines):
    """Counted lines of one text file, with one-line errors naming the file, the line and, in a
    trajectory, the frame: ``path: not a valid <what> file at frame F (line L): problem``.

    :meth:`next` gives raw lines, :meth:`content` lines without their comments (after any of
    :attr:`COMMENT_MARKS`).
    """

    COMMENT_MARKS: tuple[str, ...] = ("#",)

    def __init__(self, handle: IO[str], path: str | os.PathLike, what: str):
        super().__init__(handle)
        self.path, self.what = path, what

    def content(self) -> str | None:
        """The next line without its comment, stripped; None at the end."""
        line = self.next()
        if line is None:
            return None
        for mark in self.COMMENT_MARKS:
            line = line.split(mark)[0]
        return line.strip()

    def fail(self, problem: str, frame: int | None = None) -> InputFileError:
        where = f"frame {frame} (line {self.number})" if frame is not None else f"line {self.number}"
        return InputFileError(f"{self.path}: not a valid {self.what} file at {where}: {problem}")

    def require(self, what: str, frame: int | None = None) -> str:
        """:meth:`content`, or an error saying the file ends before ``what``."""
        line = self.content()
        if line is None:
            raise self.fail(f"the file ends before {what}", frame)
        return line


@contextmanager
def decoding_errors(name: str | os.PathLike, lines: CountedLines, what: str) -> Iterator[None]:
    """Turn undecodable bytes and damaged gzip data met while reading ``lines`` into one-line errors
    that name the file and the line (``what``: the expected content, e.g. "XYZ")."""
    try:
        yield
    except UnicodeDecodeError as err:
        raise InputFileError(f"{name}: not a text file (near line {lines.number + 1}); expected {what}") from err
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise InputFileError(f"{name}: damaged gzip data near line {lines.number + 1} "
                             f"({str(err) or type(err).__name__})") from err


def read_stdin(stream: BinaryIO | None = None) -> bytes:
    """All of standard input (or ``stream``) as bytes, gunzipped when it is gzip data."""
    data = (stream or sys.stdin.buffer).read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise InputFileError(f"stdin: damaged gzip data ({err})") from err
    return data
