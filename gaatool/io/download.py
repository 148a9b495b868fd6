"""Cached, checksummed downloads and safe extraction of single archive members.

A download streams to a temporary file next to its destination, is checked
(byte count against ``Content-Length``, a pinned SHA-256 and/or a custom
verifier) and only then renamed into place, so the cache never holds a partial
or corrupted file. A destination that already exists and verifies is returned
without touching the network.

Archives (``.zip`` as used by sGDML, ``.tar.bz2`` as used by rMD17) are never
unpacked wholesale: only named regular-file members are copied out, each to a
path chosen by the caller, so member names cannot escape the cache
(no path traversal, no links, no device files).
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import socket
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Mapping

from .._version import __version__
from ..errors import ConfigError, DownloadError, GaatoolError, InputFileError
from .atomic import atomic_path

__all__ = [
    "cache_dir",
    "download",
    "extract_member",
    "extract_members",
    "sha256_file",
    "CACHE_ENV_VAR",
]

#: Environment variable that overrides the default cache folder.
CACHE_ENV_VAR = "GAATOOL_CACHE_DIR"

_CHUNK = 1 << 20
_WHAT_TO_DO = "retry, or download it yourself and pass --from FILE"


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder that holds downloaded data sets.

    Precedence: the explicit ``path``, then ``$GAATOOL_CACHE_DIR``, then
    ``platformdirs.user_cache_dir("gaatool")``. The folder is not created here.

    >>> str(cache_dir("/tmp/somewhere"))
    '/tmp/somewhere'
    """
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    # Imported lazily: no work at import time for users who never download.
    import platformdirs

    return Path(platformdirs.user_cache_dir("gaatool"))


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> _ = p.write_bytes(b"abc")
    >>> sha256_file(p)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _normalise_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    # A prefix is accepted because some upstreams publish only one (e.g. 12 hex digits).
    if not 8 <= len(value) <= 64 or any(c not in "0123456789abcdef" for c in value):
        raise ConfigError(f"sha256 {sha256!r} is not 8 to 64 hexadecimal digits; pin the file's SHA-256")
    return value


def _check(path: Path, url: str, sha256: str | None, verify: Callable[[Path], None] | None,
           digest: str | None = None) -> None:
    """Raise DownloadError unless ``path`` matches ``sha256`` and passes ``verify``."""
    if sha256 is not None:
        actual = digest if digest is not None else sha256_file(path)
        if not actual.startswith(sha256):
            raise DownloadError(
                f"{url}: SHA-256 {actual[:len(sha256)]} does not match the pinned {sha256} "
                f"(corrupted or changed upstream); {_WHAT_TO_DO}"
            )
    if verify is not None:
        try:
            verify(path)
        except DownloadError:
            raise
        except (GaatoolError, ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile,
                tarfile.TarError) as err:
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            # Drop the temporary name (meaningless to users) and the inner advice (ours follows).
            detail = detail.replace(f"{path}: ", "").split("; ")[0]
            raise DownloadError(f"{url}: the downloaded file failed verification ({detail}); {_WHAT_TO_DO}") from err


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    verify: Callable[[Path], None] | None = None,
    timeout: float = 60,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there.

    Parameters
    ----------
    url
        ``http(s)://`` address.
    dest
        Final path (usually inside :func:`cache_dir`). Its folder is created.
    sha256
        Pinned hex SHA-256 of the file; a shorter hex string (8 or more digits)
        is compared as a prefix.
    verify
        Called with the downloaded (still temporary) path; raises to reject it.
        Used where no checksum is pinned, e.g. the sGDML embedded fingerprint.
    timeout
        Seconds to wait on each network operation.
    progress
        Called as ``progress(bytes_done, bytes_total_or_None)`` while streaming.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    DownloadError
        HTTP error, network failure, interrupted transfer, size or checksum
        mismatch, or failed verification. Nothing is left in the cache.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "x.txt").write_bytes(b"abc")
    >>> download("http://unused.invalid/x.txt", d / "x.txt", sha256="ba7816bf8f01cfea").name
    'x.txt'
    """
    dest = Path(dest)
    pinned = _normalise_sha256(sha256)
    if dest.is_file():
        try:
            _check(dest, url, pinned, verify)
            return dest
        except DownloadError:
            # A damaged cached copy is replaced, not trusted.
            dest.unlink(missing_ok=True)

    request = urllib.request.Request(url, headers={"User-Agent": f"gaatool/{__version__}"})
    try:
        with atomic_path(dest) as tmp:
            digest = hashlib.sha256()
            with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
                length = response.headers.get("Content-Length")
                total = int(length) if length is not None and length.strip().isdigit() else None
                done = 0
                if progress is not None:
                    progress(done, total)
                while True:
                    block = response.read(_CHUNK)
                    if not block:
                        break
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
                out.flush()
                os.fsync(out.fileno())
            if total is not None and done != total:
                raise DownloadError(
                    f"{url}: download interrupted after {done} of {total} bytes; {_WHAT_TO_DO}"
                )
            _check(tmp, url, pinned, verify, digest=digest.hexdigest())
    except DownloadError:
        raise
    except urllib.error.HTTPError as err:
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}; {_WHAT_TO_DO}") from err
    except urllib.error.URLError as err:
        raise DownloadError(f"{url}: cannot connect ({err.reason}); {_WHAT_TO_DO}") from err
    except (http.client.HTTPException, socket.timeout, ConnectionError) as err:
        detail = str(err) or type(err).__name__
        raise DownloadError(f"{url}: download interrupted ({detail}); {_WHAT_TO_DO}") from err
    except OSError as err:
        raise DownloadError(f"{url}: cannot write {dest} ({err.strerror or err}); "
                            f"check the cache folder or set ${CACHE_ENV_VAR}") from err
    return dest


def _member_is_safe(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and not name.startswith(("/", "\\")) and ".." not in parts and ":" not in parts[0]


def extract_members(
    archive: str | os.PathLike,
    members: Mapping[str, str | os.PathLike],
    verify: Callable[[Path], None] | None = None,
) -> dict[str, Path]:
    """Copy named regular-file members of a ``.zip`` or ``.tar[.gz|.bz2|.xz]`` to chosen paths.

    One pass over the archive (a compressed tar must be read sequentially).
    Each member is written atomically to its destination; ``verify`` (if given)
    is called on the temporary copy first. Links, folders, devices and names
    containing ``..`` or an absolute path are refused.

    Parameters
    ----------
    archive
        The archive file.
    members
        ``{member name inside the archive: destination path}``.
    verify
        Raises to reject an extracted member before it is renamed into place.

    Returns
    -------
    dict[str, Path]
        ``{member name: destination path}``.

    Raises
    ------
    InputFileError
        Unreadable archive, missing or unsafe member, or failed verification.

    >>> import tempfile, pathlib, zipfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(d / "a.zip", "w") as z:
    ...     z.writestr("data/x.txt", "hi")
    >>> extract_members(d / "a.zip", {"data/x.txt": d / "x.txt"})["data/x.txt"].read_text()
    'hi'
    """
    archive = Path(archive)
    wanted = {name: Path(dest) for name, dest in members.items()}
    for name in wanted:
        if not _member_is_safe(name):
            raise InputFileError(f"{archive}: refusing unsafe archive member name {name!r}")
    found: dict[str, Path] = {}

    def copy(stream, name: str) -> None:
        with atomic_path(wanted[name]) as tmp:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(stream, out, _CHUNK)
            if verify is not None:
                try:
                    verify(tmp)
                except GaatoolError as err:
                    raise InputFileError(f"{archive}: member {name}: {err}") from err
        found[name] = wanted[name]

    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in wanted:
                    try:
                        info = zf.getinfo(name)
                    except KeyError:
                        continue
                    if info.is_dir():
                        raise InputFileError(f"{archive}: member {name} is a folder, not a file")
                    with zf.open(info) as stream:
                        copy(stream, name)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, mode="r:*") as tf:
                for info in tf:
                    if info.name not in wanted or info.name in found:
                        continue
                    if not info.isreg():
                        raise InputFileError(
                            f"{archive}: member {info.name} is not a regular file; refusing to extract it"
                        )
                    stream = tf.extractfile(info)
                    assert stream is not None  # isreg() guarantees a stream
                    with contextlib.closing(stream):
                        copy(stream, info.name)
                    if len(found) == len(wanted):
                        break
        else:
            raise InputFileError(f"{archive}: not a zip or tar archive; download it again")
    except InputFileError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputFileError(f"{archive}: damaged archive ({detail}); delete it and download it again") from err
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise InputFileError(f"{archive}: member {missing[0]} not found in the archive; "
                             "is this the right archive?")
    return found


def extract_member(
    archive: str | os.PathLike,
    member: str,
    dest: str | os.PathLike,
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """Copy one regular-file member of a zip or tar archive to ``dest`` atomically.

    See :func:`extract_members`.
    """
    return extract_members(archive, {member: dest}, verify=verify)[member]
