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
from ..io.lockfile import LockHeld, lock_file

__all__ = ["LOCK_NAME", "RunLock"]

LOCK_NAME = ".gaatool-train.lock"


class RunLock:
    """Context manager: hold ``out_dir``'s training lock (the folder must exist); removed on exit."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_NAME
        self._held = contextlib.ExitStack()

    def __enter__(self) -> "RunLock":
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        holder = f"pid {os.getpid()} on {socket.gethostname()} since {stamp}"
        try:
            self._held.enter_context(lock_file(self.path, wait=False, holder=holder))
        except LockHeld as held:
            raise ConfigError(
                f"{self.out_dir} is in use by another training run{f' ({held.holder})' if held.holder else ''}; "
                "wait for it to end or choose another output folder") from None
        except OSError as err:
            raise OutputPathError(f"{self.out_dir}: cannot create its lock file {LOCK_NAME} "
                                  f"({err.strerror or err})") from None
        return self

    def __exit__(self, *exc) -> None:
        self._held.close()
