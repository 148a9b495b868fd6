import os

import pytest

from gaatool.io.atomic import atomic_path, atomic_write_text


def test_success_replaces_and_uses_umask_mode(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_keeps_old_file_and_leaves_no_temp(tmp_path, error):
    target = tmp_path / "out.npz"
    target.write_text("old")
    with pytest.raises(error):
        with atomic_path(target) as tmp:
            assert tmp.suffix == ".npz" and tmp.parent == tmp_path
            tmp.write_text("half")
            raise error()
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]
