"""keep_freed_memory: when it changes glibc's malloc, what that does, and that the CLI applies it."""
import subprocess
import sys
import textwrap

import pytest

from gaatool import allocator
from gaatool.cli import app as cli_app

GLIBC = allocator._glibc() is not None


@pytest.mark.parametrize("environ", [{"GAATOOL_MALLOC": "default"}, {"GAATOOL_MALLOC": " Default "},
                                     {"MALLOC_TRIM_THRESHOLD_": "0"}, {"MALLOC_MMAP_THRESHOLD_": "131072"},
                                     {"MALLOC_TOP_PAD_": "0"}, {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}])
def test_user_settings_and_opt_out_are_respected(environ, monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "_glibc", lambda: calls.append(1))
    assert allocator.keep_freed_memory(environ) is False
    assert calls == []  # glibc is not even looked up
    assert not allocator.freed_memory_kept()


def test_nothing_happens_without_glibc(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert allocator.keep_freed_memory({}) is False


def test_other_tunables_do_not_stop_it(monkeypatch):
    seen = []

    class FakeLibc:
        def mallopt(self, parameter, value):
            seen.append((parameter, value))
            return 1

    monkeypatch.setattr(allocator, "_glibc", FakeLibc)
    assert not allocator.freed_memory_kept()
    assert allocator.keep_freed_memory({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2"}) is True
    assert allocator.freed_memory_kept()  # what gaatool.nn.fused asks
    assert {p for p, _ in seen} == {-1, -2, -3}
    assert dict(seen)[-3] == allocator.MMAP_THRESHOLD <= 32 << 20  # glibc refuses larger mmap thresholds


_FAULTS = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from gaatool.allocator import keep_freed_memory
    applied = keep_freed_memory({}) if sys.argv[1] == "kept" else False
    faults = []
    for _ in range(3):  # six 8 MiB blocks alive together (like a batch's hidden layers), written, freed
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [np.ones(1 << 20) for _ in range(6)]
        del blocks
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(applied, faults[1], faults[2])
""")


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    def run(setting):
        env = {"PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-c", _FAULTS, setting], capture_output=True, text=True, env=env,
                             check=True).stdout.split()
        return out[0] == "True", int(out[1]), int(out[2])

    applied, second, third = run("kept")
    assert applied
    assert second < 100 and third < 100  # the freed 48 MiB (12288 pages) came back without faults
    applied, second, third = run("default")
    assert not applied
    assert second > 2000 and third > 2000  # glibc's default: trimmed when freed, faulted in again page by page


def test_the_command_line_keeps_freed_memory(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli_app, "keep_freed_memory", lambda: calls.append(1) or True)
    with pytest.raises(SystemExit) as exit_info:
        cli_app.main(["--version"])
    assert exit_info.value.code == 0 and calls == [1]
    assert "gaatool" in capsys.readouterr().out


def test_user_malloc_settings_names_what_sets_the_thresholds():
    from gaatool.allocator import user_malloc_settings

    assert user_malloc_settings({"MALLOC_TOP_PAD_": "0", "MALLOC_ARENA_MAX": "2", "PATH": "/bin"}) == ["MALLOC_TOP_PAD_"]
    assert user_malloc_settings({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}) == ["GLIBC_TUNABLES"]
    assert user_malloc_settings({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"}) == []
