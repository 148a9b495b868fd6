"""Cached, checksummed downloads and safe extraction of single archive members.

A download streams to a temporary file next to its destination, is checked
(byte count against ``Content-Length``, a pinned SHA-256 and/or a custom
verifier) and only then renamed into place, so the cache never holds a partial
or corrupted file. A destination that already exists and verifies is returned
without touching the network.

Several processes may share one cache (jobs on a cluster): the one that must
download holds a lock on ``.<name>.lock`` next to the file while it does, so the
others wait for it and then use its file instead of downloading the same bytes
again (best effort: where the file system refuses locks, each downloads on its
own, still safely). Temporary files that a killed process left behind are
removed by a later download of the same file once they are an hour old.

Archives (``.zip`` as used by sGDML, ``.tar.bz2`` as used by rMD17) are never
unpacked wholesale: only named regular-file members are copied out, each to a
path chosen by the caller, so member names cannot escape the cache
(no path traversal, no links, no device files).
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import re
import shutil
import socket
import ssl
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Mapping

from .._version import __version__
from ..errors import ConfigError, DownloadError, GaatoolError, InputFileError
from .atomic import atomic_path
from .lockfile import lock_file

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
#: Without a working lock, a temporary file this old is taken to be left by a killed process.
_STALE_TEMP_SECONDS = 24 * 3600


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder that holds downloaded data sets.

    Precedence: the explicit ``path`` (``--cache``), then ``$GAATOOL_CACHE_DIR``, then
    ``platformdirs.user_cache_dir("gaatool")`` (on Linux ``$XDG_CACHE_HOME/gaatool``,
    else ``~/.cache/gaatool``). The folder is not created here.

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
                tarfile.TarError, zlib.error) as err:
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
        with contextlib.suppress(DownloadError):
            _check(dest, url, pinned, verify)
            return dest
    with _download_lock(dest) as locked:
        if dest.is_file():
            # Checked again under the lock: another process may have fetched it meanwhile.
            try:
                _check(dest, url, pinned, verify)
                return dest
            except DownloadError as err:
                # A damaged cached copy is replaced, not trusted.
                try:
                    dest.unlink(missing_ok=True)
                except OSError as unlink_err:  # e.g. a read-only shared cache
                    raise DownloadError(
                        f"{dest}: the cached copy is damaged and cannot be removed "
                        f"({unlink_err.strerror or unlink_err}), so delete or replace it or use another "
                        f"cache folder (--cache or ${CACHE_ENV_VAR}); {_WHAT_TO_DO}") from err
        _remove_stale_temps(dest, locked)
        _fetch_into(url, dest, pinned, verify, timeout, progress)
    return dest


def _fetch_into(url: str, dest: Path, pinned: str | None, verify: Callable[[Path], None] | None,
                timeout: float, progress: Callable[[int, int | None], None] | None) -> None:
    # identity: a file is wanted byte for byte, not a transfer encoding of it
    request = urllib.request.Request(url, headers={"User-Agent": f"gaatool/{__version__}",
                                                   "Accept-Encoding": "identity"})
    try:
        with atomic_path(dest) as tmp:
            digest = hashlib.sha256()
            # A new opener each time: it reads $http_proxy / $https_proxy / $no_proxy now, as _proxy_for does.
            opener = urllib.request.build_opener()
            with opener.open(request, timeout=timeout) as response, open(tmp, "wb") as out:
                encoding = (response.headers.get("Content-Encoding") or "").strip().lower()
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
            try:
                _check(tmp, url, pinned, verify, digest=digest.hexdigest())
            except DownloadError:
                # The raw bytes come first: Apache's AddEncoding labels .gz files "gzip" and sends them as
                # they are. A server that compressed the file on the way is undone here.
                if encoding not in ("gzip", "x-gzip") or not _gunzip_in_place(tmp):
                    raise
                _check(tmp, url, pinned, verify)
    except DownloadError:
        raise
    except urllib.error.HTTPError as err:
        reason = " ".join(str(err.reason).split())  # a redirect loop's reason spans three lines
        raise DownloadError(f"{url}: HTTP {err.code} {reason}; {_WHAT_TO_DO}") from err
    except urllib.error.URLError as err:
        reason = " ".join(str(err.reason).split())
        proxy = _proxy_for(url)
        if proxy is not None:
            raise DownloadError(f"{url}: cannot connect through the proxy {proxy} ({reason}), check "
                                f"${urllib.parse.urlsplit(url).scheme}_proxy; {_WHAT_TO_DO}") from err
        if isinstance(err.reason, ssl.SSLCertVerificationError):
            raise DownloadError(f"{url}: cannot connect ({reason}), behind a proxy that inspects TLS set "
                                f"$SSL_CERT_FILE to its CA bundle; {_WHAT_TO_DO}") from err
        raise DownloadError(f"{url}: cannot connect ({reason}); {_WHAT_TO_DO}") from err
    except socket.timeout as err:
        raise DownloadError(f"{url}: download stalled, nothing received for {timeout:g} s; {_WHAT_TO_DO}") from err
    except (http.client.HTTPException, ConnectionError) as err:
        detail = str(err) or type(err).__name__
        raise DownloadError(f"{url}: download interrupted ({detail}); {_WHAT_TO_DO}") from err
    except OSError as err:
        raise DownloadError(f"{url}: cannot write {dest} ({err.strerror or err}); "
                            f"check the cache folder (--cache or ${CACHE_ENV_VAR})") from err


def _gunzip_in_place(path: Path) -> bool:
    """Replace a gzip file by its content; False (and ``path`` unchanged) if it is not gzip data."""
    plain = path.with_name(path.name + ".plain")
    try:
        with gzip.open(path, "rb") as source, open(plain, "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
        os.replace(plain, path)
        return True
    except (OSError, EOFError, zlib.error):
        plain.unlink(missing_ok=True)
        return False


def _proxy_for(url: str) -> str | None:
    """The proxy urllib uses for ``url`` ($http_proxy, $https_proxy, $no_proxy), without its password."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.netloc):
        return None
    shown = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if shown.username or shown.password:
        host = shown.hostname or ""
        netloc = f"***@{host}" + (f":{shown.port}" if shown.port else "")
        return urllib.parse.urlunsplit(shown._replace(netloc=netloc))
    return proxy


@contextlib.contextmanager
def _download_lock(dest: Path) -> Iterator[bool]:
    """Hold the lock of ``.<name>.lock`` next to ``dest`` (:func:`.lockfile.lock_file`, waiting for a job
    already downloading it); yields whether it is held.

    Best effort: without locks, or in a folder that cannot be written, it yields False and the caller goes
    on unlocked, which is still safe (atomic renames), only not shared (atomic_path then reports an
    unwritable cache folder).
    """
    with contextlib.ExitStack() as held:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            locked = held.enter_context(lock_file(dest.parent / f".{dest.name}.lock"))
        except OSError:
            locked = False
        yield locked


def _remove_stale_temps(dest: Path, locked: bool) -> None:
    """Remove temporary files of ``dest`` that killed downloads left (SIGKILL, a crashed node).

    Under the lock no other gaatool process is downloading ``dest``, so an hour without a write is
    stale; without it only a day without a write is.
    """
    pattern = re.compile(r"\." + re.escape(dest.name) + r"\.[a-z0-9_]{8}\.tmp")
    limit = 3600 if locked else _STALE_TEMP_SECONDS
    now = time.time()
    try:
        entries = list(os.scandir(dest.parent))
    except OSError:
        return
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        with contextlib.suppress(OSError):
            if now - entry.stat(follow_symlinks=False).st_mtime > limit:
                os.unlink(entry.path)


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
