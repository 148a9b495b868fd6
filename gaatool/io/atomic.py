"""Atomic file writes: a temp file in the target's folder, renamed into place.

A crash or Ctrl-C while writing never leaves a truncated file and never
destroys an existing one, because ``os.replace`` is atomic on POSIX and Windows
when source and target are on the same file system.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from ..errors import OutputPathError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "check_output_path", "make_parent"]


def check_output_path(target: str | os.PathLike | None, inputs: tuple = ()) -> None:
    """Nothing if a file can be written at ``target`` (or it is None or ``-``, no file or stdout), else a
    one-line :class:`OutputPathError`.

    Refused: an existing folder, a path inside a file, a folder that cannot be made or written, and any of
    ``inputs`` (an output that replaced its own input would destroy it). Commands call this before their
    work, so a bad ``-o`` fails at once and not after minutes of computing. Missing folders are made only
    when the file is written (:func:`atomic_path`), so a command that fails leaves no empty folder behind.
    """
    if target is None or str(target) == "-":
        return
    target = Path(target)
    if target.is_dir():
        raise OutputPathError(f"{target}: is a folder; give a file name")
    for source in inputs:
        if source is None or str(source) == "-":
            continue
        try:
            same = target.exists() and Path(source).exists() and os.path.samefile(target, source)
        except OSError:
            same = False
        if same:
            raise OutputPathError(f"{target}: is also the input; writing it would destroy the input, so give "
                                  "another output name")
    parent = target.parent
    # the nearest existing ancestor must be a folder in which the missing ones can be made
    existing = next(folder for folder in (parent, *parent.parents) if folder.exists())
    if not existing.is_dir():
        raise OutputPathError(f"{target}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == parent:
            raise OutputPathError(f"{target}: the folder {parent} is not writable")
        raise OutputPathError(f"{target}: cannot make the folder {parent} ({existing} is not writable)")


def make_parent(target: str | os.PathLike) -> None:
    """Make the folder of ``target`` (and the missing ones above it), or a one-line :class:`OutputPathError`."""
    parent = Path(target).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputPathError(f"{target}: cannot make the folder {parent} ({err.strerror or err})") from None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    ``suffix`` defaults to the target's own suffix so that writers which choose
    a format by extension (gsd, matplotlib) still do the right thing.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hi")
    >>> (d / "a.txt").read_text()
    'hi'
    """
    target = Path(target)
    check_output_path(target)
    make_parent(target)
    if suffix is None:
        suffix = "".join(target.suffixes[-1:])
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + suffix, dir=target.parent)
    except OSError as err:  # e.g. /proc, a read-only mount: what access() could not tell
        raise OutputPathError(f"{target}: cannot write in {target.parent} ({err.strerror or err})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes the file private (0600); give outputs the usual umask-based mode
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        try:
            os.replace(tmp, target)
        except OSError as err:  # the target became a folder meanwhile, or another file system's
            raise OutputPathError(f"{target}: cannot replace it ({err.strerror or err})") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))
