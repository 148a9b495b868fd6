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
