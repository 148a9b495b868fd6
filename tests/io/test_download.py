"""Tests of gaatool.io.download against a local HTTP server on 127.0.0.1 (never the internet)."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from gaatool.errors import ConfigError, DownloadError, InputFileError
from gaatool.io import download as dl

@pytest.fixture(scope="module")
def payload(md17_50) -> bytes:
    return md17_50.read_bytes()  # a real file, served as-is


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_download_with_pinned_sha256_and_progress(http_server, tmp_path, payload):
    http_server.routes["/a.npz"] = payload
    seen = []
    dest = tmp_path / "cache" / "a.npz"
    out = dl.download(http_server.url("/a.npz"), dest, sha256=hashlib.sha256(payload).hexdigest(),
                      progress=lambda done, total: seen.append((done, total)))
    assert out == dest
    assert dest.read_bytes() == payload
    assert seen[0] == (0, len(payload)) and seen[-1] == (len(payload), len(payload))
    assert _leftovers(dest.parent) == ["a.npz"]  # no temporary file left behind


def test_sha256_prefix_is_accepted(http_server, tmp_path, payload):
    http_server.routes["/a.npz"] = payload
    prefix = hashlib.sha256(payload).hexdigest()[:12]
    assert dl.download(http_server.url("/a.npz"), tmp_path / "a.npz", sha256=prefix.upper()).read_bytes() == payload


def test_checksum_mismatch_leaves_nothing(http_server, tmp_path, payload):
    http_server.routes["/a.npz"] = payload
    wrong = hashlib.sha256(payload + b"x").hexdigest()
    with pytest.raises(DownloadError) as info:
        dl.download(http_server.url("/a.npz"), tmp_path / "a.npz", sha256=wrong)
    message = str(info.value)
    assert http_server.url("/a.npz") in message and "--from FILE" in message and "SHA-256" in message
    assert "\n" not in message
    assert _leftovers(tmp_path) == []


def test_interrupted_download_leaves_nothing(http_server, tmp_path, payload):
    http_server.routes["/a.npz"] = payload[: len(payload) // 2]
    http_server.truncated.add("/a.npz")
    with pytest.raises(DownloadError, match="interrupted") as info:
        dl.download(http_server.url("/a.npz"), tmp_path / "a.npz")
    assert "--from FILE" in str(info.value)
    assert _leftovers(tmp_path) == []


def test_http_404(http_server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        dl.download(http_server.url("/missing.npz"), tmp_path / "m.npz")
    assert http_server.url("/missing.npz") in str(info.value)
    assert _leftovers(tmp_path) == []


def test_cached_file_is_reused_without_network(http_server, tmp_path, payload):
    http_server.routes["/a.npz"] = payload
    sha = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "a.npz"
    dl.download(http_server.url("/a.npz"), dest, sha256=sha)
    assert http_server.hits["/a.npz"] == 1
    http_server.close()  # any network access would now fail
    assert dl.download(http_server.url("/a.npz"), dest, sha256=sha) == dest
    assert http_server.hits["/a.npz"] == 1


def test_damaged_cached_file_is_fetched_again(http_server, tmp_path, payload):
    http_server.routes["/a.npz"] = payload
    dest = tmp_path / "a.npz"
    dest.write_bytes(payload[:-10])
    dl.download(http_server.url("/a.npz"), dest, sha256=hashlib.sha256(payload).hexdigest())
    assert http_server.hits["/a.npz"] == 1
    assert dest.read_bytes() == payload


def test_custom_verifier_rejects(http_server, tmp_path, payload):
    http_server.routes["/a.npz"] = payload
    calls = []

    def verify(path: Path) -> None:
        calls.append(path.read_bytes())
        raise InputFileError("not the file we wanted")

    with pytest.raises(DownloadError, match="not the file we wanted"):
        dl.download(http_server.url("/a.npz"), tmp_path / "a.npz", verify=verify)
    assert calls == [payload]  # the verifier saw the complete download
    assert _leftovers(tmp_path) == []


def test_connection_refused(http_server, tmp_path):
    url = http_server.url("/a.npz")
    http_server.close()
    with pytest.raises(DownloadError, match="cannot connect"):
        dl.download(url, tmp_path / "a.npz", timeout=5)
    assert _leftovers(tmp_path) == []


def test_bad_sha256_argument():
    with pytest.raises(ConfigError):
        dl.download("http://127.0.0.1:9/x", Path("unused"), sha256="not-hex")


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv(dl.CACHE_ENV_VAR, str(tmp_path / "env"))
    assert dl.cache_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert dl.cache_dir() == tmp_path / "env"
    monkeypatch.delenv(dl.CACHE_ENV_VAR)
    import platformdirs

    assert dl.cache_dir() == Path(platformdirs.user_cache_dir("gaatool"))


# --------------------------------------------------------------------------- archives


def test_extract_from_zip_and_tar(tmp_path, payload, write_tar_bz2):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("ethanol/train.npz", payload)
        zf.writestr("other.txt", b"other")
    out = dl.extract_member(tmp_path / "a.zip", "ethanol/train.npz", tmp_path / "out" / "train.npz")
    assert out.read_bytes() == payload
    archive = write_tar_bz2(tmp_path / "a.tar.bz2",
                            {"rmd17/npz_data/x.npz": payload, "rmd17/splits/s.csv": b"1\n2\n"})
    got = dl.extract_members(archive, {"rmd17/npz_data/x.npz": tmp_path / "x.npz",
                                       "rmd17/splits/s.csv": tmp_path / "s.csv"})
    assert got["rmd17/npz_data/x.npz"].read_bytes() == payload
    assert (tmp_path / "s.csv").read_text() == "1\n2\n"
    assert not (tmp_path / "rmd17").exists()  # nothing extracted under the member's own path


def test_extract_refuses_links_and_unsafe_names(tmp_path, write_tar_bz2):
    archive = write_tar_bz2(tmp_path / "a.tar.bz2", {"ok.txt": b"ok"}, symlink="link.npz")
    with pytest.raises(InputFileError, match="not a regular file"):
        dl.extract_member(archive, "link.npz", tmp_path / "link.npz")
    assert not (tmp_path / "link.npz").exists()
    with pytest.raises(InputFileError, match="unsafe"):
        dl.extract_member(archive, "../escape.txt", tmp_path / "e.txt")
    with pytest.raises(InputFileError, match="not found"):
        dl.extract_member(archive, "missing.txt", tmp_path / "m.txt")


def test_extract_damaged_archive_and_failed_verify(tmp_path, payload, write_tar_bz2):
    archive = write_tar_bz2(tmp_path / "a.tar.bz2", {"x.npz": payload})
    damaged = tmp_path / "d.tar.bz2"
    damaged.write_bytes(archive.read_bytes()[: len(archive.read_bytes()) // 2])
    with pytest.raises(InputFileError, match="damaged archive|not a zip or tar"):
        dl.extract_member(damaged, "x.npz", tmp_path / "out" / "x.npz")
    assert _leftovers(tmp_path / "out") == []

    def reject(path: Path) -> None:
        raise InputFileError("bad content")

    with pytest.raises(InputFileError, match="bad content"):
        dl.extract_member(archive, "x.npz", tmp_path / "out" / "x.npz", verify=reject)
    assert _leftovers(tmp_path / "out") == []


# --------------------------------------------------------------------------- shared caches, flaky networks
# (an HPC audit: jobs share one cache folder, nodes sit behind proxies, downloads get killed)

import errno
import gzip
import http.server
import multiprocessing
import os
import socket
import threading
import time


@pytest.fixture
def raw_server():
    """127.0.0.1 server answering ``routes[path] = (status, {header: value}, body)``."""
    routes: dict = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server API)
            status, headers, body = routes[self.path]
            self.send_response(status)
            for key, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    httpd.routes = routes
    httpd.url = lambda path: f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _hold_lock_then_write(dest, payload, ready, go):
    with dl._download_lock(dest) as locked:
        assert locked
        ready.set()
        go.wait(30)
        dest.write_bytes(payload)  # what another job's finished download leaves


def test_a_second_process_waits_for_the_first_download_instead_of_repeating_it(http_server, tmp_path, payload):
    http_server.routes["/a.npz"] = payload
    dest = tmp_path / "cache" / "a.npz"
    context = multiprocessing.get_context("fork")
    ready, go = context.Event(), context.Event()
    other = context.Process(target=_hold_lock_then_write, args=(dest, payload, ready, go))
    other.start()
    try:
        assert ready.wait(30)
        result = {}
        mine = threading.Thread(target=lambda: result.update(path=dl.download(
            http_server.url("/a.npz"), dest, sha256=hashlib.sha256(payload).hexdigest())))
        mine.start()
        time.sleep(0.5)
        assert mine.is_alive() and http_server.hits["/a.npz"] == 0  # waiting for the other job
        go.set()
        mine.join(30)
    finally:
        go.set()
        other.join(30)
    assert result["path"] == dest and dest.read_bytes() == payload
    assert http_server.hits["/a.npz"] == 0  # the other job's file was used
    assert _leftovers(dest.parent) == ["a.npz"]  # no lock file either


def test_no_locks_on_this_file_system_still_downloads(http_server, tmp_path, payload, monkeypatch):
    import fcntl

    def no_locks(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    http_server.routes["/a.npz"] = payload
    dest = tmp_path / "a.npz"
    assert dl.download(http_server.url("/a.npz"), dest).read_bytes() == payload
    assert _leftovers(tmp_path) == ["a.npz"]


def test_temporary_files_of_killed_downloads_are_removed(http_server, tmp_path, payload):
    http_server.routes["/a.npz"] = payload
    old = tmp_path / ".a.npz.k1ll3d_x.tmp.npz"  # what SIGKILL mid-download leaves
    old.write_bytes(payload[:100])
    os.utime(old, (time.time() - 7200,) * 2)
    fresh = tmp_path / ".a.npz.4ctive_x.tmp.npz"  # could be a live download elsewhere: kept
    fresh.write_bytes(b"")
    other = tmp_path / ".b.npz.k1ll3d_x.tmp.npz"  # another file's: not ours to judge now
    other.write_bytes(b"")
    os.utime(other, (time.time() - 7200,) * 2)
    dl.download(http_server.url("/a.npz"), tmp_path / "a.npz")
    assert _leftovers(tmp_path) == sorted([fresh.name, other.name, "a.npz"])


def test_damaged_copy_in_a_read_only_cache_is_a_one_line_error(http_server, tmp_path, payload, unremovable):
    http_server.routes["/a.npz"] = payload
    dest = tmp_path / "a.npz"
    dest.write_bytes(payload[:-10])
    unremovable(dest)
    with pytest.raises(DownloadError, match="damaged and cannot be removed") as info:
        dl.download(http_server.url("/a.npz"), dest, sha256=hashlib.sha256(payload).hexdigest())
    message = str(info.value)
    assert "Read-only file system" in message and "--cache" in message and "\n" not in message
    assert http_server.hits["/a.npz"] == 0


def test_gzip_content_encoding(raw_server, tmp_path, payload):
    # a server that compressed the file on the way: decoded
    raw_server.routes["/a.npz"] = (200, {"Content-Encoding": "gzip"}, gzip.compress(payload))
    sha = hashlib.sha256(payload).hexdigest()
    assert dl.download(raw_server.url("/a.npz"), tmp_path / "a.npz", sha256=sha).read_bytes() == payload
    # Apache's AddEncoding: a .gz file labelled gzip but sent as it is: kept as it is
    packed = gzip.compress(b"data_1ABC\n")
    raw_server.routes["/1ABC.cif.gz"] = (200, {"Content-Encoding": "x-gzip"}, packed)
    got = dl.download(raw_server.url("/1ABC.cif.gz"), tmp_path / "1ABC.cif.gz",
                      sha256=hashlib.sha256(packed).hexdigest())
    assert got.read_bytes() == packed
    assert sorted(_leftovers(tmp_path)) == ["1ABC.cif.gz", "a.npz"]


def test_redirect_loop_is_one_line(raw_server, tmp_path):
    raw_server.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    with pytest.raises(DownloadError, match="HTTP 302") as info:
        dl.download(raw_server.url("/loop"), tmp_path / "a.npz")
    assert "\n" not in str(info.value) and str(info.value).endswith("--from FILE")
    assert _leftovers(tmp_path) == []


def test_a_proxy_that_does_not_answer_is_named(tmp_path, monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("http_proxy", f"http://someone:s3cret@127.0.0.1:{port}")
    with pytest.raises(DownloadError, match="proxy") as info:
        dl.download("http://data.example.org/a.npz", tmp_path / "a.npz", timeout=5)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "$http_proxy" in message and "s3cret" not in message
    assert "refused" in message.lower()  # the proxy was tried (not a name lookup of data.example.org)
    assert "\n" not in message
