"""Exclusive locks between processes (jobs of a cluster sharing a folder) on a lock file.

One mechanism for both users: downloads into a shared cache wait for the job
already fetching the same file (:mod:`.download`), and a training run refuses a
folder that another run is training in (:mod:`gaatool.train.lock`). The lock is
``flock`` on the file: the kernel drops it when its process dies, even by
SIGKILL, so a killed job never blocks the next. The holder removes the file
before letting go, so a waiter that then holds a lock on the removed file
starts over on the current one. Where locks are unavailable (Windows, some NFS
and Lustre mounts) callers go on unlocked.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

__all__ = ["LockHeld", "lock_file"]


class LockHeld(Exception):
    """The lock is held by another process (``wait=False``); ``holder`` is the line it wrote, if any."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


@contextlib.contextmanager
def lock_file(path: str | os.PathLike, wait: bool = True, holder: str = "") -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (made if missing, removed on exit) for the ``with`` block.

    Yields True, or False where this platform or file system has no locks (the caller goes on
    unlocked). ``wait``: block until the holder lets go; else raise :class:`LockHeld` at once.
    ``holder``: a line written into the file for a refused process to show. An ``OSError`` of making
    the file (a folder that cannot be written) is the caller's to judge.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield False
        return
    path = Path(path)
    fd = _acquire(path, wait, fcntl)
    if fd is None:
        yield False
        return
    if holder:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{holder}\n".encode())
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still holding the lock: no waiter can lock a dead file unseen
        os.close(fd)  # releases the lock


def _acquire(path: Path, wait: bool, fcntl) -> int | None:
    """A descriptor of ``path`` holding its lock, or None where locks are unavailable."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockHeld(holder) from None
        except OSError:  # ENOLCK, ENOSYS, EOPNOTSUPP: nobody can hold this file, so it can go
            with contextlib.suppress(OSError):
                if _same_file(path, fd):
                    os.unlink(path)
            os.close(fd)
            return None
        if _same_file(path, fd):
            return fd  # the lock is on the file that is still there
        os.close(fd)


def _same_file(path: Path, fd: int) -> bool:
    try:
        current, mine = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev)


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode("utf-8", "replace").strip()
    except OSError:
        return ""
