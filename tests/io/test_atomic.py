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


def test_unusable_targets_are_one_line_errors(tmp_path):
    from gaatool.errors import OutputPathError
    from gaatool.io.atomic import check_output_path

    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "file").write_text("x")
    cases = {tmp_path / "folder.npz": "is a folder", tmp_path / "file" / "x.npz": "is a file, not a folder",
             tmp_path / "file" / "deeper" / "x.npz": "is a file, not a folder"}
    for target, message in cases.items():
        with pytest.raises(OutputPathError, match=message):
            atomic_write_text(target, "data")
    assert (tmp_path / "file").read_text() == "x" and not list((tmp_path / "folder.npz").iterdir())
    source = tmp_path / "in.gsd"
    source.write_text("input")
    with pytest.raises(OutputPathError, match="also the input"):
        check_output_path(tmp_path / "." / "in.gsd", inputs=("-", None, source))
    check_output_path(tmp_path / "new" / "deeper" / "out.npz", inputs=(source,))
    assert not (tmp_path / "new").exists()  # made only when written: a failed command leaves no empty folder
    atomic_write_text(tmp_path / "new" / "deeper" / "out.npz", "data")
    assert (tmp_path / "new" / "deeper" / "out.npz").read_text() == "data"
    check_output_path("-", inputs=(source,))  # stdout, and no output at all: nothing to check
    check_output_path(None)
