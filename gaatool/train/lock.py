"""One training run per output folder at a time.

Two runs started into the same folder (an array job given one ``-o``, a job
requeued while its first copy still runs) would overwrite each other's
``best.safetensors``, ``last.safetensors`` and metrics file, and both end
"successfully". :class:`RunLock` holds an advisory lock (``flock``) on
``out_dir/.gaatool-train.lock`` while a run trains; a second run into the
folder is refused with one line naming the holder. The kernel drops the lock
when its process dies, even by SIGKILL, so a killed run never blocks its
``--resume``; a lock file left behind by such a run is reused. On file systems
without locks (and on Windows) the run goes on unlocked.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import socket
from pathlib import Path

from ..errors import ConfigError, OutputPathError

__all__ = ["LOCK_NAME", "RunLock"]

LOCK_NAME = ".gaatool-train.lock"


class RunLock:
    """Context manager: hold ``out_dir``'s training lock (the folder must exist); removed on exit."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # Windows
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise OutputPathError(f"{self.out_dir}: cannot create its lock file {LOCK_NAME} "
                                      f"({err.strerror or err})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise ConfigError(
                    f"{self.out_dir} is in use by another training run{f' ({holder})' if holder else ''}; "
                    "wait for it to end or choose another output folder") from None
            except OSError:  # a file system without locks: train unlocked, as before
                os.close(fd)
                return self
            # The holder may have removed the file (and another run made a new one) between our open and
            # our lock: then we hold a lock nobody else sees; start over on the current file.
            try:
                current = os.stat(self.path)
                mine = os.fstat(fd)
                same = (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev)
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode())
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is None:
            return
        # Remove the file while still holding the lock, so that no waiting run locks a dead file unseen.
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode("utf-8", "replace").strip()
    except OSError:
        return ""
