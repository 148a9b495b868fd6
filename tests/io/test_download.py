"""Tests of gaatool.io.download against a local HTTP server on 127.0.0.1 (never the internet)."""
from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from gaatool.errors import ConfigError, DownloadError, InputFileError
from gaatool.io import download as dl

FILES = Path(__file__).resolve().parents[1] / "files"
PAYLOAD = (FILES / "md17" / "md17_ethanol_50.npz").read_bytes()  # a real file, served as-is


class _Server:
    """Serves ``routes[path] = (status, body, mode)``; ``mode="truncate"`` announces
    more bytes than it sends and then closes the connection."""

    def __init__(self):
        self.routes: dict[str, tuple[int, bytes, str]] = {}
        self.hits: Counter = Counter()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                server.hits[self.path] += 1
                if self.path not in server.routes:
                    self.send_error(404, "Not Found")
                    return
                status, body, mode = server.routes[self.path]
                self.send_response(status)
                extra = 1000 if mode == "truncate" else 0
                self.send_header("Content-Length", str(len(body) + extra))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_download_with_pinned_sha256_and_progress(server, tmp_path):
    server.routes["/a.npz"] = (200, PAYLOAD, "")
    seen = []
    dest = tmp_path / "cache" / "a.npz"
    out = dl.download(server.url("/a.npz"), dest, sha256=hashlib.sha256(PAYLOAD).hexdigest(),
                      progress=lambda done, total: seen.append((done, total)))
    assert out == dest
    assert dest.read_bytes() == PAYLOAD
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert _leftovers(dest.parent) == ["a.npz"]  # no temporary file left behind


def test_sha256_prefix_is_accepted(server, tmp_path):
    server.routes["/a.npz"] = (200, PAYLOAD, "")
    prefix = hashlib.sha256(PAYLOAD).hexdigest()[:12]
    assert dl.download(server.url("/a.npz"), tmp_path / "a.npz", sha256=prefix.upper()).read_bytes() == PAYLOAD


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    server.routes["/a.npz"] = (200, PAYLOAD, "")
    wrong = hashlib.sha256(PAYLOAD + b"x").hexdigest()
    with pytest.raises(DownloadError) as info:
        dl.download(server.url("/a.npz"), tmp_path / "a.npz", sha256=wrong)
    message = str(info.value)
    assert server.url("/a.npz") in message and "--from FILE" in message and "SHA-256" in message
    assert "\n" not in message
    assert _leftovers(tmp_path) == []


def test_interrupted_download_leaves_nothing(server, tmp_path):
    server.routes["/a.npz"] = (200, PAYLOAD[: len(PAYLOAD) // 2], "truncate")
    with pytest.raises(DownloadError, match="interrupted") as info:
        dl.download(server.url("/a.npz"), tmp_path / "a.npz")
    assert "--from FILE" in str(info.value)
    assert _leftovers(tmp_path) == []


def test_http_404(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        dl.download(server.url("/missing.npz"), tmp_path / "m.npz")
    assert server.url("/missing.npz") in str(info.value)
    assert _leftovers(tmp_path) == []


def test_cached_file_is_reused_without_network(server, tmp_path):
    server.routes["/a.npz"] = (200, PAYLOAD, "")
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    dest = tmp_path / "a.npz"
    dl.download(server.url("/a.npz"), dest, sha256=sha)
    assert server.hits["/a.npz"] == 1
    server.close()  # any network access would now fail
    assert dl.download(server.url("/a.npz"), dest, sha256=sha) == dest
    assert server.hits["/a.npz"] == 1


def test_damaged_cached_file_is_fetched_again(server, tmp_path):
    server.routes["/a.npz"] = (200, PAYLOAD, "")
    dest = tmp_path / "a.npz"
    dest.write_bytes(PAYLOAD[:-10])
    dl.download(server.url("/a.npz"), dest, sha256=hashlib.sha256(PAYLOAD).hexdigest())
    assert server.hits["/a.npz"] == 1
    assert dest.read_bytes() == PAYLOAD


def test_custom_verifier_rejects(server, tmp_path):
    server.routes["/a.npz"] = (200, PAYLOAD, "")
    calls = []

    def verify(path: Path) -> None:
        calls.append(path.read_bytes())
        raise InputFileError("not the file we wanted")

    with pytest.raises(DownloadError, match="not the file we wanted"):
        dl.download(server.url("/a.npz"), tmp_path / "a.npz", verify=verify)
    assert calls == [PAYLOAD]  # the verifier saw the complete download
    assert _leftovers(tmp_path) == []


def test_connection_refused(tmp_path):
    srv = _Server()
    url = srv.url("/a.npz")
    srv.close()
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


def _tar_bz2(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with tarfile.open(path, "w:bz2") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tf.addfile(info)
    return path


def test_extract_from_zip_and_tar(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("ethanol/train.npz", PAYLOAD)
        zf.writestr("other.txt", b"other")
    out = dl.extract_member(tmp_path / "a.zip", "ethanol/train.npz", tmp_path / "out" / "train.npz")
    assert out.read_bytes() == PAYLOAD
    archive = _tar_bz2(tmp_path / "a.tar.bz2", {"rmd17/npz_data/x.npz": PAYLOAD, "rmd17/splits/s.csv": b"1\n2\n"})
    got = dl.extract_members(archive, {"rmd17/npz_data/x.npz": tmp_path / "x.npz",
                                       "rmd17/splits/s.csv": tmp_path / "s.csv"})
    assert got["rmd17/npz_data/x.npz"].read_bytes() == PAYLOAD
    assert (tmp_path / "s.csv").read_text() == "1\n2\n"
    assert not (tmp_path / "rmd17").exists()  # nothing extracted under the member's own path


def test_extract_refuses_links_and_unsafe_names(tmp_path):
    archive = _tar_bz2(tmp_path / "a.tar.bz2", {"ok.txt": b"ok"}, symlink="link.npz")
    with pytest.raises(InputFileError, match="not a regular file"):
        dl.extract_member(archive, "link.npz", tmp_path / "link.npz")
    assert not (tmp_path / "link.npz").exists()
    with pytest.raises(InputFileError, match="unsafe"):
        dl.extract_member(archive, "../escape.txt", tmp_path / "e.txt")
    with pytest.raises(InputFileError, match="not found"):
        dl.extract_member(archive, "missing.txt", tmp_path / "m.txt")


def test_extract_damaged_archive_and_failed_verify(tmp_path):
    archive = _tar_bz2(tmp_path / "a.tar.bz2", {"x.npz": PAYLOAD})
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
