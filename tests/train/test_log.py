import io
import json

import pytest
from rich.console import Console

from gaatool.errors import ConfigError, GaatoolError
from gaatool.train.log import MetricsLog, ProgressReporter, format_row, metrics_path

ROWS = [
    {"epoch": 1, "lr": 0.001, "train_loss": 0.30000000000000004, "val_loss": 1 / 3},
    {"epoch": 2, "lr": 0.00075, "train_loss": 0.2, "val_loss": 2 / 7},
    {"epoch": 3, "lr": 0.00075, "train_loss": 1e-17, "val_loss": 0.25},
]


def _read(path):
    if path.suffix == ".csv":
        lines = path.read_text().splitlines()
        header = lines[0].split(",")
        return [dict(zip(header, line.split(","))) for line in lines[1:]]
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_metrics_path(tmp_path):
    assert metrics_path(tmp_path, "csv") == tmp_path / "metrics.csv"
    assert metrics_path(tmp_path, "jsonl") == tmp_path / "metrics.jsonl"
    with pytest.raises(ConfigError, match="unknown metrics format"):
        metrics_path(tmp_path, "xlsx")
    with pytest.raises(ConfigError, match=r"\.csv or \.jsonl"):
        MetricsLog(tmp_path / "metrics.txt")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_rows_are_flushed_each_epoch_and_exact(tmp_path, fmt):
    path = metrics_path(tmp_path, fmt)
    with MetricsLog(path) as log:
        for count, row in enumerate(ROWS, start=1):
            log.append(row)
            rows = _read(path)  # read while still open: the row must be on disk already
            assert len(rows) == count
    values = [float(row["val_loss"]) for row in _read(path)]
    assert values == [row["val_loss"] for row in ROWS]  # bit for bit
    if fmt == "csv":
        assert path.read_text().count("epoch,lr") == 1


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_resume_rewrites_from_history_and_continues(tmp_path, fmt):
    straight = metrics_path(tmp_path / "straight", fmt)
    with MetricsLog(straight) as log:
        for row in ROWS:
            log.append(row)
    resumed = metrics_path(tmp_path / "resumed", fmt)
    with MetricsLog(resumed) as log:
        for row in ROWS:  # the run got past epoch 2 before dying, but the checkpoint holds epoch 2
            log.append(row)
    with MetricsLog(resumed, history=ROWS[:2]) as log:
        log.append(ROWS[2])
    assert resumed.read_text() == straight.read_text()


def test_csv_rejects_new_columns(tmp_path):
    with MetricsLog(tmp_path / "metrics.csv") as log:
        log.append(ROWS[0])
        with pytest.raises(GaatoolError, match="missing from the header") as error:
            log.append({**ROWS[1], "val_accuracy": 0.5})
        # the way out it names exists (there is no --metrics-format flag)
        assert '"metrics_format": "jsonl" in the --config train section' in str(error.value)
        log.append({"epoch": 3, "lr": 0.1})  # missing columns are left empty
    assert (tmp_path / "metrics.csv").read_text().splitlines()[-1] == "3,0.1,,"


def test_format_row():
    assert format_row({"epoch": 2, "lr": 0.00075, "val_loss": 2 / 7}) == "epoch 2  lr 0.00075  val_loss 0.2857"


def _console(terminal):
    return Console(file=io.StringIO(), force_terminal=terminal, width=200)


def test_progress_plain_lines_when_not_a_tty():
    console = _console(terminal=False)
    with ProgressReporter(total_epochs=10, console=console) as progress:
        assert progress.mode == "lines"
        progress.epoch_done(ROWS[0], improved=True)
        progress.epoch_done(ROWS[1])
        progress.message("stopped")
    lines = console.file.getvalue().splitlines()
    assert lines == [
        "epoch 1/10  lr 0.001  train_loss 0.3  val_loss 0.3333  (best)",
        "epoch 2/10  lr 0.00075  train_loss 0.2  val_loss 0.2857",
        "stopped",
    ]
    assert "\x1b" not in console.file.getvalue()


def test_progress_bar_on_a_tty():
    console = _console(terminal=True)
    with ProgressReporter(total_epochs=10, start_epoch=1, console=console) as progress:
        assert progress.mode == "bar"
        progress.epoch_done(ROWS[1])
    text = console.file.getvalue()
    assert "2/10" in text and "val_loss 0.2857" in text


def test_progress_quiet_prints_nothing():
    for terminal in (False, True):
        console = _console(terminal)
        with ProgressReporter(total_epochs=10, quiet=True, console=console) as progress:
            progress.epoch_done(ROWS[0])
            progress.message("stopped")
        assert console.file.getvalue() == ""


def test_metrics_write_failure_is_a_one_line_error(tmp_path):
    import errno

    from gaatool.errors import OutputPathError

    class FullDisk:
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            pass

    with MetricsLog(tmp_path / "metrics.csv") as log:
        log._handle.close()
        log._handle = FullDisk()
        with pytest.raises(OutputPathError, match=r"metrics.csv: cannot write the metrics file \(No space left"):
            log.append({"epoch": 1, "val_loss": 0.5})
