"""The command line in shell pipelines and batch scripts: Ctrl-C, a reader that leaves the pipe, ``-o -`` where
no stream can be written, bracketed file names, and notes on stderr next to --json."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
METALS = ROOT / "docs" / "examples" / "metals.gsd"


def test_ctrl_c_says_so_and_exits_130(cli, tmp_path, monkeypatch):
    """typer turns Ctrl-C into a return code of 130: the command ended without a word, as if it had finished."""
    import gaatool.tasks.crystal.dataset as dataset

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dataset, "build_crystal_dataset", interrupted)
    out = tmp_path / "crystals.npz"
    code, stdout, err = cli("data", "crystals", "-o", out)
    assert (code, stdout, err) == (130, "", "error: interrupted\n")
    assert not out.exists()


def test_a_reader_leaving_the_pipe_is_not_an_error(cli, monkeypatch):
    """`gaatool ... | head`: typer answers EPIPE with a silent exit 1, which fails `set -o pipefail` scripts."""
    import gaatool.cli.render as render

    def reader_left(payload):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(render, "print_json", reader_left)
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # typer swaps in a wrapper on EPIPE: put ours back afterwards
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    code, _, err = cli("info", ROOT / "pretrained" / "crystal.safetensors", "--json")
    assert (code, err) == (0, "")


def test_head_on_a_labelled_trajectory(tmp_path):
    """The real thing: 3 frames of extended XYZ (~220 kB, more than a pipe holds) read 100 bytes of."""
    process = subprocess.Popen([sys.executable, "-m", "gaatool", "identify", str(METALS), "-o", "-", "--device",
                                "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        head = process.stdout.read(100)
        process.stdout.close()
        err = process.stderr.read().decode()
        process.wait(timeout=120)
    finally:
        process.kill()
    assert head.startswith(b"1008\n")
    assert process.returncode == 0 and err == "", (process.returncode, err)


@pytest.mark.parametrize("args", [["data", "crystals"], ["data", "pdb", "x.pdb"], ["train", "crystal", "x.npz"],
                                  ["train", "backmap", "x.npz"], ["data", "md17", "--molecule", "ethanol"],
                                  ["train", "forces", "--data", "x.npz"]])
def test_dash_is_refused_where_the_output_cannot_be_a_stream(cli, tmp_path, monkeypatch, args):
    """An .npz archive or a run folder: `-o -` made a file or folder named '-' here, with exit code 0."""
    monkeypatch.chdir(tmp_path)
    error = cli(*args, "-o", "-").one_line_error()
    assert error.startswith("error: -o -: ") and "stdout" in error
    assert list(tmp_path.iterdir()) == []


def test_bracketed_file_names_are_printed_as_they_are(cli, tmp_path, pdb_files):
    """Rich read them as markup: '[/b]' raised MarkupError (exit 3) after the file was written, '[red]' vanished."""
    for name in ("a[/b]", "run[red]"):
        out = tmp_path / name / "cg.pdb"
        code, _, err = cli("coarse-grain", pdb_files / "1CKB.pdb.gz", "-o", out)
        assert code == 0, err
        assert f"wrote {out}:" in err and out.exists()


def test_evaluate_crystal_checks_split_and_plot_before_the_work(cli, tmp_path):
    """A folder as --plot failed after the evaluation; an unknown split said the dataset lacked 'foo/labels'."""
    checkpoint = ROOT / "pretrained" / "crystal.safetensors"
    missing = tmp_path / "none.npz"  # the checks come first: this is never read
    error = cli("evaluate", "crystal", checkpoint, missing, "--split", "foo").one_line_error()
    assert error == "error: unknown split 'foo'; choose one of train, val, test"
    (tmp_path / "plot.png").mkdir()
    for task, model in (("crystal", "crystal"), ("forces", "forces-ethanol")):
        error = cli("evaluate", task, ROOT / "pretrained" / f"{model}.safetensors", missing, "--plot",
                    tmp_path / "plot.png").one_line_error()
        assert "is a folder" in error


def test_identify_json_keeps_its_notes_on_stderr(cli, tmp_path):
    """With --json the notes were only in the JSON; a batch job's log is stderr (backmap warns there too)."""
    cell = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    grid = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    positions = (grid + cell).reshape(-1, 3) * 3.6
    path = tmp_path / "cluster.xyz"
    path.write_text(f"{len(positions)}\n\n" + "".join(f"Cu {x:.4f} {y:.4f} {z:.4f}\n" for x, y, z in positions))
    code, out, err = cli("identify", path, "--json", "--device", "cpu")
    assert code == 0, err
    notes = json.loads(out)["notes"]
    assert notes and err == "".join(f"note: {note}\n" for note in notes)


def test_a_folder_given_as_input_is_named_so(cli, tmp_path):
    """A folder where a file belongs: identify called it an unknown file type, predict forces 'no such file'."""
    folder = tmp_path / "frames.xyz"
    folder.mkdir()
    for args in (["identify", str(folder)], ["predict", "forces", str(folder)]):
        error = cli(*args).one_line_error()
        assert error == f"error: {folder}: is a folder, not " + ("a particle file" if args[0] == "identify"
                                                                  else "a file of molecules"), error


def test_bad_values_are_named_by_the_flag_typed(cli, tmp_path, monkeypatch):
    """Errors named the engine's settings (learning_rate, max_time_s), which the user never saw; and --labels
    is checked before a download (it tried to connect first)."""
    monkeypatch.chdir(tmp_path)
    assert cli("train", "crystal", "x.npz", "--lr", "-1").one_line_error().startswith("error: --lr must be")
    assert cli("train", "forces", "--data", "x.npz", "--max-time", "-5").one_line_error().startswith(
        "error: --max-time must be")
    error = cli("data", "md17", "--molecule", "ethanol", "--labels", "foo").one_line_error()
    assert "labels must be one of rmd17, md17" in error and list(tmp_path.iterdir()) == []


def test_a_failed_command_leaves_no_empty_output_folder(cli, tmp_path):
    """-o newdir/x.npz made newdir before the work, and a failing command left it behind, empty."""
    bogus = tmp_path / "bogus.gsd"
    bogus.write_bytes(b"junk")
    assert cli("identify", str(bogus), "-o", str(tmp_path / "new" / "x.npz")).one_line_error().startswith("error: ")
    assert not (tmp_path / "new").exists()
    assert cli("identify", str(METALS), "-o", str(tmp_path / "made" / "deeper" / "x.npz")).code == 0
    assert (tmp_path / "made" / "deeper" / "x.npz").is_file()  # made when written
