import os

# Spinning OpenMP threads make torch ~100x slower on shared cores; must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import http.server  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import tarfile  # noqa: E402
import threading  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

# CI machines have 2 cores; keep hypothesis quick and deterministic there.
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=15, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Test tensors are small: one thread avoids threading overhead and keeps timings stable.
torch.set_num_threads(1)

# The small real input files, with provenance in tests/files/SOURCES.md. Tests reach them through the
# fixtures below: with --import-mode=importlib, test modules cannot import shared constants.
FILES = Path(__file__).resolve().parent / "files"


@pytest.fixture
def float64():
    return torch.float64


@pytest.fixture(autouse=True)
def _freed_memory_not_kept(monkeypatch):
    """Each test starts as a Python user's process does, whatever an earlier in-process CLI call set: the
    command's keep_freed_memory() changes which kernels inference uses (gaatool.nn.fused)."""
    import gaatool.allocator

    monkeypatch.setattr(gaatool.allocator, "_kept", False)


@pytest.fixture
def small_backmap_batch():
    """dtype -> a small backmapping batch (r, types, center, labels, neighbor_mask, atom_mask) with padded
    neighbours and atoms: 3 residues, 6 neighbour beads, 5 atom labels."""
    def make(dtype: torch.dtype = torch.float32):
        g = torch.Generator().manual_seed(3)
        r = torch.randn(3, 6, 3, generator=g, dtype=dtype) * 6.0
        types = torch.randint(0, 20, (3, 6), generator=g)
        center = torch.randint(0, 20, (3,), generator=g)
        labels = torch.randint(0, 187, (3, 5), generator=g)
        neighbor_mask = torch.ones(3, 6, dtype=torch.bool)
        neighbor_mask[1, 4:] = False
        atom_mask = torch.ones(3, 5, dtype=torch.bool)
        atom_mask[2, 3:] = False
        return r, types, center, labels, neighbor_mask, atom_mask

    return make


@pytest.fixture
def two_threads():
    """Two torch threads for the test (side-by-side pieces need several), one again after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


# --------------------------------------------------------------------------- fixture files


@pytest.fixture(scope="session")
def files_dir() -> Path:
    """tests/files."""
    return FILES


@pytest.fixture(scope="session")
def docs_example():
    """Imports a script of docs/examples by name (they are quoted in the docs, not part of the package)."""
    def load(name: str):
        path = FILES.parents[1] / "docs" / "examples" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(scope="session")
def pdb_files() -> Path:
    """tests/files/pdb: real PDB / mmCIF entries (1AJJ, 1CKB, 1A8O, 1AKI, 2VB1, 3NIR)."""
    return FILES / "pdb"


@pytest.fixture(scope="session")
def md17_50() -> Path:
    """The first 50 frames of MD17 ethanol (sGDML npz keys, embedded fingerprint recomputed)."""
    return FILES / "md17" / "md17_ethanol_50.npz"


@pytest.fixture(scope="session")
def rmd17_50() -> Path:
    """The first 50 frames of rMD17 ethanol (rMD17 npz keys; atoms in another order than MD17)."""
    return FILES / "md17" / "rmd17_ethanol_50.npz"


@pytest.fixture(scope="session")
def sgdml_xyz() -> Path:
    """The sGDML xyz export of MD17 ethanol frames 0-2."""
    return FILES / "xyz" / "md17_ethanol_snip_sgdml.xyz"


@pytest.fixture(scope="session")
def extxyz() -> Path:
    """Five rMD17 ethanol frames as extended XYZ; atom i is rmd17_50 atom [3, 4, 5, 6, 7, 8, 0, 1, 2][i]."""
    return FILES / "xyz" / "rmd17_ethanol_reduced_5.xyz"


# --------------------------------------------------------------------------- command line


class CliResult(NamedTuple):
    """Exit code and captured output of one in-process ``gaatool`` run."""

    code: int
    out: str
    err: str

    def one_line_error(self) -> str:
        """Asserts exit code 1 and stderr of exactly one ``error: ...`` line; returns that line."""
        assert self.code == 1, (self.code, self.err)
        assert self.err.startswith("error: ") and self.err.count("\n") == 1 and self.err.endswith("\n"), self.err
        return self.err[:-1]


def _exit_code(args) -> int:
    from gaatool.cli.app import main  # on first use: most tests never touch the CLI

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code


@pytest.fixture(scope="session")
def cli_exit_code():
    """``cli_exit_code(*args) -> int``: runs ``gaatool *args`` in-process, for fixtures wider than a test
    (their output stays with pytest's capture)."""
    return lambda *args: _exit_code(args)


@pytest.fixture
def cli(capsys):
    """``cli(*args) -> CliResult``: runs ``gaatool *args`` in-process (arguments go through ``str``)."""

    def run(*args) -> CliResult:
        code = _exit_code(args)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


# --------------------------------------------------------------------------- local network and archives


class LocalServer:
    """HTTP on 127.0.0.1, never the internet: serves ``routes[path] = body`` and 404 otherwise.

    Paths in ``truncated`` announce more bytes than they send and close the connection (an
    interrupted download); ``hits`` counts requests per path.
    """

    def __init__(self):
        self.routes: dict[str, bytes] = {}
        self.truncated: set[str] = set()
        self.hits: Counter = Counter()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                server.hits[self.path] += 1
                if self.path not in server.routes:
                    self.send_error(404, "Not Found")
                    return
                body = server.routes[self.path]
                self.send_response(200)
                extra = 1000 if self.path in server.truncated else 0
                self.send_header("Content-Length", str(len(body) + extra))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        """Stops serving (safe to call twice): later requests to ``base`` are refused."""
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy_from_the_environment(monkeypatch):
    """Test servers are on 127.0.0.1: an $http_proxy of the machine (HPC login nodes) must not catch them."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def unremovable(monkeypatch):
    """``unremovable(path)``: from now on ``path.unlink()`` fails as on a read-only file system (a shared cache)."""
    import errno

    original = Path.unlink
    paths: set[Path] = set()

    def unlink(self, missing_ok=False):
        if self in paths:
            raise PermissionError(errno.EROFS, "Read-only file system", str(self))
        return original(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    return paths.add


@pytest.fixture
def http_server():
    server = LocalServer()
    yield server
    server.close()


def _write_tar_bz2(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
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


@pytest.fixture(scope="session")
def write_tar_bz2():
    """``write_tar_bz2(path, {name: bytes}, symlink=None) -> path``; ``symlink`` adds a link member
    of that name pointing at /etc/passwd."""
    return _write_tar_bz2
