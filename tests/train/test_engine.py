"""The engine on a small rotation-invariant regression task.

Target: the mean over pairs of exp(-r_ij^2 / 2) for random 3D point clouds.
The model sees only pairwise distances, so it is rotation invariant; training
augments with random rotations (numpy RNG), reflections (python RNG) and
dropout (torch RNG) so that exact resume has to restore every generator.
"""
import dataclasses
import io
import json
import random

import numpy as np
import pytest
import torch
from rich.console import Console

from gaatool.checkpoint import load_checkpoint, load_model, read_metadata
from gaatool.errors import CheckpointError, ConfigError
from gaatool.models.registry import register
from gaatool.train import (
    BEST_NAME,
    LAST_NAME,
    TrainConfig,
    TrainingDiverged,
    TrainingInterrupted,
    fit,
)

N_POINTS = 5
PAIRS = torch.triu_indices(N_POINTS, N_POINTS, offset=1)


@register
class PairDistanceNet(torch.nn.Module):
    """Mean over pairs of an MLP of the distance r_ij: (B, N, 3) -> (B,)."""

    name = "test_engine_pair_net"

    @dataclasses.dataclass
    class Config:
        hidden: tuple[int, ...] = (16,)  # a tuple: stored as a JSON list, must still resume
        dropout: float = 0.1

    def __init__(self, config):
        super().__init__()
        self.config = config
        layers, width = [], 1
        for hidden in config.hidden:
            layers += [torch.nn.Linear(width, hidden), torch.nn.Tanh(), torch.nn.Dropout(config.dropout)]
            width = hidden
        self.net = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))

    def forward(self, positions):
        r_ij = (positions[:, PAIRS[1]] - positions[:, PAIRS[0]]).norm(dim=-1)  # (B, P)
        return self.net(r_ij.unsqueeze(-1)).squeeze(-1).mean(dim=-1)


def _clouds(count, seed):
    generator = torch.Generator().manual_seed(seed)
    positions = torch.randn(count, N_POINTS, 3, generator=generator)
    r_ij = (positions[:, PAIRS[1]] - positions[:, PAIRS[0]]).norm(dim=-1)
    return positions, torch.exp(-0.5 * r_ij**2).mean(dim=-1)


TRAIN = _clouds(128, seed=1)
VAL = _clouds(64, seed=2)


class PairTask:
    """Implements the TrainTask protocol; the hooks simulate Ctrl-C, divergence and plateaus."""

    task_name = "pairs"

    def __init__(self, batch_size=16, interrupt_at=None, nan_at_epoch=None, constant_val=False, hidden=(16,)):
        self.batch_size = batch_size
        self.interrupt_at = interrupt_at  # (epoch, batch index)
        self.nan_at_epoch = nan_at_epoch
        self.constant_val = constant_val
        self.hidden = hidden
        self.epoch = 0

    def build_model(self):
        return PairDistanceNet(PairDistanceNet.Config(hidden=self.hidden))

    def train_batches(self, epoch, generator):
        self.epoch = epoch
        positions, targets = TRAIN
        order = torch.randperm(len(targets), generator=generator)
        for index, start in enumerate(range(0, len(order), self.batch_size)):
            if self.interrupt_at == (epoch, index):
                raise KeyboardInterrupt
            take = order[start : start + self.batch_size]
            rotation, _ = np.linalg.qr(np.random.normal(size=(3, 3)))
            sign = -1.0 if random.random() < 0.5 else 1.0
            rotated = sign * positions[take] @ torch.as_tensor(rotation, dtype=torch.float32)
            yield rotated, targets[take]

    def val_batches(self):
        positions, targets = VAL
        # Unequal batches on purpose: metrics must be weighted by items.
        for start, stop in ((0, 10), (10, 64)):
            yield positions[start:stop], targets[start:stop]

    def to_device(self, batch, device):
        return tuple(tensor.to(device) for tensor in batch)

    def batch_size_of(self, batch):
        return len(batch[1])

    def loss(self, model, batch, train):
        positions, targets = batch
        predicted = model(positions)
        loss = ((predicted - targets) ** 2).mean()
        if self.nan_at_epoch == self.epoch and train:
            loss = loss * float("nan")
        if self.constant_val and not train:
            loss = torch.tensor(1.0)
        # a metric whose name sorts before "loss" (as "accuracy" does): resumed runs must keep the column order
        return loss, {"abs_error": float((predicted - targets).detach().abs().mean())}

    def metadata(self):
        return {"units": {"target": "dimensionless"}, "data": {"n_train": len(TRAIN[1]), "seed": 1}}


def _config(**overrides):
    values = dict(epochs=4, batch_size=16, learning_rate=1e-2, seed=3, device="cpu")
    values.update(overrides)
    return TrainConfig(**values)


def _val_mse(model):
    model.eval()
    with torch.no_grad():
        return float(((model(VAL[0]) - VAL[1]) ** 2).mean())


def _state(path):
    checkpoint = load_checkpoint(path)
    return {**checkpoint.state_dict, **{"extra/" + k: v for k, v in checkpoint.extra_tensors.items()}}


def _assert_same_tensors(a, b):
    assert set(a) == set(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """4 epochs in one go: the reference for the resume tests."""
    out = tmp_path_factory.mktemp("straight")
    return fit(PairTask(), _config(), out, quiet=True)


def test_fit_learns_and_writes_best_last_and_metrics(tmp_path):
    result = fit(PairTask(), _config(epochs=8), tmp_path, quiet=True)
    assert result.stop_reason == "max_epochs" and result.epochs_run == 8 and result.epoch == 8
    torch.manual_seed(3)
    untrained = _val_mse(PairTask().build_model())
    baseline = float(VAL[1].var(unbiased=False))  # predicting the mean target
    assert result.best_val_loss < 0.1 * untrained
    assert result.best_val_loss < 0.3 * baseline  # R^2 > 0.7
    assert result.best_val_loss < 0.2 * result.history[0]["val_loss"]
    losses = [row["val_loss"] for row in result.history]
    assert result.best_val_loss == min(losses) and result.best_epoch == losses.index(min(losses)) + 1

    assert sorted(p.name for p in tmp_path.iterdir()) == [BEST_NAME, LAST_NAME, "metrics.csv"]
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,lr,train_loss,train_abs_error,val_loss,val_abs_error"
    assert len(lines) == 1 + 8
    assert [float(line.split(",")[4]) for line in lines[1:]] == losses

    # best holds the weights of the best epoch, last those of the final epoch
    best_model, best_meta = load_model(result.best_path, task="pairs")
    assert _val_mse(best_model) == pytest.approx(result.best_val_loss, rel=1e-5)
    last_model, last_meta = load_model(result.last_path, task="pairs")
    assert _val_mse(last_model) == pytest.approx(losses[-1], rel=1e-5)
    assert best_meta["epoch"] == result.best_epoch and last_meta["epoch"] == 8
    assert best_meta["metrics"]["val_loss"] == result.best_val_loss
    assert last_meta["train"] == _config(epochs=8).to_dict()
    assert last_meta["units"] == {"target": "dimensionless"} and last_meta["data"]["n_train"] == 128
    assert isinstance(last_meta["command"], str) and len(last_meta["history"]) == 8
    assert "training_state" in last_meta and "training_state" not in best_meta
    assert not any(k.startswith("optim/") for k in load_checkpoint(result.best_path).extra_tensors)


def test_metrics_are_weighted_by_items(tmp_path):
    result = fit(PairTask(), _config(epochs=1), tmp_path, quiet=True)
    model, _ = load_model(result.last_path)
    with torch.no_grad():
        errors = (model(VAL[0]) - VAL[1]).abs()
    row = result.history[0]
    assert row["val_abs_error"] == pytest.approx(float(errors.mean()), rel=1e-6)
    assert row["val_loss"] == pytest.approx(float((errors**2).mean()), rel=1e-6)
    unweighted = (float(errors[:10].mean()) + float(errors[10:].mean())) / 2
    assert abs(row["val_abs_error"] - unweighted) > 1e-4  # the check above can tell them apart


def test_resume_is_exact(tmp_path, straight_run):
    first = fit(PairTask(), _config(epochs=2), tmp_path, quiet=True)
    assert first.epoch == 2
    resumed = fit(PairTask(), _config(epochs=4), tmp_path, resume=True, quiet=True)
    assert resumed.epochs_run == 2 and resumed.epoch == 4 and resumed.stop_reason == "max_epochs"
    assert resumed.history == straight_run.history
    assert (tmp_path / "metrics.csv").read_text() == straight_run.metrics_path.read_text()
    _assert_same_tensors(_state(resumed.last_path), _state(straight_run.last_path))
    _assert_same_tensors(_state(resumed.best_path), _state(straight_run.best_path))


def test_ctrl_c_mid_epoch_keeps_last_epoch_and_resumes_exactly(tmp_path, straight_run):
    with pytest.raises(TrainingInterrupted) as excinfo:
        fit(PairTask(interrupt_at=(3, 2)), _config(), tmp_path, quiet=True)
    message = str(excinfo.value)
    last = tmp_path / LAST_NAME
    assert message == f"training interrupted during epoch 3; {last} holds epoch 2; continue with --resume"
    assert excinfo.value.saved_epoch == 2
    # no partial or temporary files
    assert sorted(p.name for p in tmp_path.iterdir()) == [BEST_NAME, LAST_NAME, "metrics.csv"]
    assert read_metadata(tmp_path / LAST_NAME)["epoch"] == 2
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 1 + 2
    resumed = fit(PairTask(), _config(), tmp_path, resume=True, quiet=True)
    assert resumed.history == straight_run.history
    _assert_same_tensors(_state(resumed.last_path), _state(straight_run.last_path))


def test_ctrl_c_in_first_epoch_saves_nothing(tmp_path):
    with pytest.raises(TrainingInterrupted, match="no epoch finished, nothing saved") as excinfo:
        fit(PairTask(interrupt_at=(1, 1)), _config(), tmp_path, quiet=True)
    assert excinfo.value.saved_epoch == 0
    assert not (tmp_path / LAST_NAME).exists() and not (tmp_path / BEST_NAME).exists()
    assert fit(PairTask(), _config(epochs=1), tmp_path, quiet=True).epoch == 1  # folder not blocked


def test_divergence_is_reported_and_last_stays_valid(tmp_path):
    with pytest.raises(TrainingDiverged) as excinfo:
        fit(PairTask(nan_at_epoch=3), _config(), tmp_path, quiet=True)
    message = str(excinfo.value)
    assert message.startswith("training diverged at epoch 3 (training loss = nan); lower --lr")
    assert message.endswith(f"{tmp_path / LAST_NAME} holds epoch 2")
    checkpoint = load_checkpoint(tmp_path / LAST_NAME)
    assert checkpoint.metadata["epoch"] == 2
    assert all(torch.isfinite(value).all() for value in checkpoint.state_dict.values())


def test_plateau_reduces_lr_then_stops(tmp_path):
    config = _config(epochs=100, lr_patience=2, stop_patience=3)
    result = fit(PairTask(constant_val=True), config, tmp_path, quiet=True)
    assert result.stop_reason == "plateau" and result.epoch == 4
    assert [row["lr"] for row in result.history] == [1e-2, 1e-2, 1e-2, 1e-2 * 0.75]
    assert result.best_epoch == 1
    # resuming a run that already met its stop criterion does nothing
    again = fit(PairTask(constant_val=True), config, tmp_path, resume=True, quiet=True)
    assert again.stop_reason == "plateau" and again.epochs_run == 0 and again.epoch == 4


def test_max_time_stops_after_an_epoch_and_can_be_resumed(tmp_path):
    result = fit(PairTask(), _config(epochs=3, max_time_s=0.0), tmp_path, quiet=True)
    assert result.stop_reason == "max_time" and result.epochs_run == 1
    resumed = fit(PairTask(), _config(epochs=3), tmp_path, resume=True, quiet=True)
    assert resumed.stop_reason == "max_epochs" and resumed.epochs_run == 2 and resumed.epoch == 3


def test_output_folder_and_resume_checks(tmp_path):
    fit(PairTask(), _config(epochs=1), tmp_path, quiet=True)
    with pytest.raises(ConfigError, match="already holds a training run; pass --resume"):
        fit(PairTask(), _config(epochs=1), tmp_path, quiet=True)
    with pytest.raises(ConfigError, match="nothing to resume"):
        fit(PairTask(), _config(epochs=1), tmp_path / "empty", resume=True, quiet=True)
    with pytest.raises(ConfigError, match="was trained with seed=3; resume with the same value"):
        fit(PairTask(), _config(epochs=2, seed=4), tmp_path, resume=True, quiet=True)
    with pytest.raises(ConfigError, match="different model configuration"):
        fit(PairTask(hidden=(8,)), _config(epochs=2), tmp_path, resume=True, quiet=True)
    other = PairTask()
    other.task_name = "forces"
    with pytest.raises(CheckpointError, match="is a 'pairs' checkpoint; this command needs a 'forces' checkpoint"):
        fit(other, _config(epochs=2), tmp_path, resume=True, quiet=True)


class WeightedPairTask(PairTask):
    """PairTask with a loss setting (resume_keys) and a data digest, as the workflows' tasks have."""

    resume_keys = ("model_options", "data.augment")

    def __init__(self, weight=1.0, data="a", augment=False, **kwargs):
        super().__init__(**kwargs)
        self.weight, self.data, self.augment = weight, data, augment

    def metadata(self):
        return {**super().metadata(), "model_options": {"weight": self.weight},
                "data": {"path": f"{self.data}.npz", "augment": self.augment}}

    def data_fingerprint(self):
        return self.data


def test_resume_refuses_other_task_settings_or_data_before_writing(tmp_path):
    fit(WeightedPairTask(), _config(epochs=1), tmp_path, quiet=True)
    files = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert load_checkpoint(tmp_path / "last.safetensors").metadata["data_fingerprint"] == "a"
    with pytest.raises(ConfigError, match=r"other settings \(model_options.weight: checkpoint 1.0, now 2.0\)"):
        fit(WeightedPairTask(weight=2.0), _config(epochs=2), tmp_path, resume=True, quiet=True)
    with pytest.raises(ConfigError, match=r"data.augment: checkpoint False, now True"):
        fit(WeightedPairTask(augment=True), _config(epochs=2), tmp_path, resume=True, quiet=True)
    with pytest.raises(ConfigError, match=r"trained on other data \(a.npz\); resume with the same dataset"):
        fit(WeightedPairTask(data="b"), _config(epochs=2), tmp_path, resume=True, quiet=True)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == files  # nothing written
    assert fit(WeightedPairTask(), _config(epochs=2), tmp_path, resume=True, quiet=True).epoch == 2


def test_array_task_fingerprint_is_of_the_values():
    from gaatool.train.array_task import ArrayTask

    def digest(train, val):
        return ArrayTask({"x": train}, {"x": val}, 4).data_fingerprint()

    base = digest(torch.arange(6.0), torch.zeros(2))
    assert base == digest(torch.arange(6.0), torch.zeros(2))
    assert base != digest(torch.arange(6.0) + 1, torch.zeros(2)) and base != digest(torch.arange(6.0), torch.ones(2))
    assert base != digest(torch.arange(6.0).double(), torch.zeros(2))


def test_grad_clip_limits_updates(tmp_path):
    def change(**overrides):
        out = tmp_path / str(overrides)
        result = fit(PairTask(), _config(epochs=1, **overrides), out, quiet=True)
        torch.manual_seed(3)
        initial = PairTask().build_model().state_dict()
        trained = load_checkpoint(result.last_path).state_dict
        return max(float((trained[k] - initial[k]).abs().max()) for k in initial)

    # Adam normalises gradients, so only a clip far below eps (1e-8) shows up.
    assert change(grad_clip=1e-12) < 0.01 * change()


def test_jsonl_metrics(tmp_path):
    result = fit(PairTask(), _config(epochs=2, metrics_format="jsonl"), tmp_path, quiet=True)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == result.history and [row["epoch"] for row in rows] == [1, 2]


def test_progress_lines_and_quiet(tmp_path, capsys):
    console = Console(file=io.StringIO(), force_terminal=False, width=200)
    fit(PairTask(), _config(epochs=2), tmp_path / "loud", console=console)
    lines = console.file.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines[:2]] == ["epoch 1/2", "epoch 2/2"]
    assert lines[2].startswith("stopped after epoch 2 (max_epochs)") and len(lines) == 3
    fit(PairTask(), _config(epochs=2), tmp_path / "quiet", quiet=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_fit_result_to_dict(straight_run):
    data = straight_run.to_dict()
    json.dumps(data)
    assert data["stop_reason"] == "max_epochs" and data["best_path"].endswith(BEST_NAME)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"lr_factor": 2.0}, "lr_factor"),
        ({"lr_patience": 0}, "lr_patience"),
        ({"metrics_format": "xml"}, "metrics_format"),
        ({"max_time_s": -1.0}, "max_time_s"),
        ({"grad_clip": 0.0}, "grad_clip"),
    ],
)
def test_train_config_validation(overrides, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**overrides)


def test_train_config_defaults_and_from_dict():
    config = TrainConfig()
    assert (config.epochs, config.learning_rate, config.lr_factor, config.lr_patience, config.stop_patience) == (
        800, 1e-3, 0.75, 20, 50,
    )
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown training config keys \\['lr'\\]"):
        TrainConfig.from_dict({"lr": 0.1})


def test_init_from_starts_a_new_run_from_the_weights(tmp_path, straight_run):
    start = load_checkpoint(straight_run.best_path)
    result = fit(PairTask(), _config(epochs=1, learning_rate=1e-9, batch_size=8), tmp_path / "tuned",
                 quiet=True, init_from=straight_run.best_path)
    assert result.epoch == 1  # a fresh run: own epochs, optimizer and schedule
    tuned = load_checkpoint(result.last_path)
    for key, value in start.state_dict.items():  # lr ~ 0: the weights are where the old run left them
        assert torch.allclose(tuned.state_dict[key], value, atol=1e-6), key
    # its first validation loss is the old model's, not an untrained one's
    assert result.history[0]["val_loss"] == pytest.approx(straight_run.best_val_loss, rel=1e-4)
    origin = tuned.metadata["initialized_from"]
    assert origin["path"] == str(straight_run.best_path) and origin["epoch"] == straight_run.best_epoch
    assert origin["weights_sha256"] == start.metadata["weights_sha256"]
    # resuming the tuned run keeps the record
    resumed = fit(PairTask(), _config(epochs=2, learning_rate=1e-9, batch_size=8), tmp_path / "tuned",
                  resume=True, quiet=True)
    assert read_metadata(resumed.last_path)["initialized_from"] == origin


def test_init_from_checks(tmp_path, straight_run):
    with pytest.raises(ConfigError, match="cannot be combined with --resume"):
        fit(PairTask(), _config(epochs=1), tmp_path, resume=True, quiet=True, init_from=straight_run.best_path)
    with pytest.raises(ConfigError, match="different model configuration"):
        fit(PairTask(hidden=(8,)), _config(epochs=1), tmp_path / "a", quiet=True, init_from=straight_run.best_path)
    other = PairTask()
    other.compatibility_keys = ("units",)
    other.metadata = lambda: {"units": {"target": "eV"}, "data": {}}
    with pytest.raises(ConfigError, match="was trained with units=.*would mean something else"):
        fit(other, _config(epochs=1), tmp_path / "b", quiet=True, init_from=straight_run.best_path)
    with pytest.raises(CheckpointError):
        fit(PairTask(), _config(epochs=1), tmp_path / "c", quiet=True, init_from=tmp_path / "missing.safetensors")
    assert not (tmp_path / "a" / LAST_NAME).exists() and not (tmp_path / "b" / LAST_NAME).exists()


# ---------------------------------------------------------------------------
# batch-scheduler failures: concurrent runs, kills between writes, full disks, damaged state


def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path, straight_run):
    # two array jobs given one -o: both used to pass the checks, train, and overwrite each other's best
    from gaatool.train.lock import LOCK_NAME, RunLock

    with RunLock(tmp_path):  # another process's run, as far as flock is concerned (another open file)
        with pytest.raises(ConfigError, match=r"is in use by another training run \(pid \d+ on "):
            fit(PairTask(), _config(), tmp_path, quiet=True)
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]  # the refused run wrote nothing
    fit(PairTask(), _config(epochs=2), tmp_path, quiet=True)
    assert not (tmp_path / LOCK_NAME).exists()  # the lock file goes with its run
    files = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    with RunLock(tmp_path):  # a requeued copy of the job while the first still runs
        with pytest.raises(ConfigError, match="is in use by another training run"):
            fit(PairTask(), _config(), tmp_path, resume=True, quiet=True)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == files
    resumed = fit(PairTask(), _config(), tmp_path, resume=True, quiet=True)
    assert resumed.history == straight_run.history


def test_a_lock_file_left_by_a_killed_run_does_not_block(tmp_path):
    from gaatool.train.lock import LOCK_NAME

    (tmp_path / LOCK_NAME).write_text("pid 1 on elsewhere since long ago\n")  # SIGKILL: file stays, lock does not
    assert fit(PairTask(), _config(epochs=1), tmp_path, quiet=True).epoch == 1


class _Killed(BaseException):
    """What SIGKILL does to the process: nothing after this point runs (no except Exception, no cleanup)."""


def _kill_at_write(monkeypatch, target_name, epoch):
    """Make the engine's checkpoint write of ``target_name`` in ``epoch`` die before writing."""
    import gaatool.train.engine as engine

    original = engine.save_checkpoint

    def dying(path, model, metadata, **kwargs):
        if path.name == target_name and metadata["epoch"] == epoch:
            raise _Killed
        return original(path, model, metadata, **kwargs)

    monkeypatch.setattr(engine, "save_checkpoint", dying)


@pytest.mark.parametrize("epoch", [1, 3])
def test_killed_between_last_and_best_resumes_exactly(tmp_path, monkeypatch, straight_run, epoch):
    # epoch 1 used to leave best without last: --resume said "nothing to resume", a new run "already holds a run"
    _kill_at_write(monkeypatch, BEST_NAME, epoch)
    with pytest.raises(_Killed):
        fit(PairTask(), _config(), tmp_path, quiet=True)
    monkeypatch.undo()
    assert read_metadata(tmp_path / LAST_NAME)["epoch"] == epoch
    resumed = fit(PairTask(), _config(), tmp_path, resume=True, quiet=True)
    assert resumed.history == straight_run.history
    assert (tmp_path / "metrics.csv").read_text() == straight_run.metrics_path.read_text()
    _assert_same_tensors(_state(resumed.best_path), _state(straight_run.best_path))
    _assert_same_tensors(_state(resumed.last_path), _state(straight_run.last_path))
    assert read_metadata(resumed.best_path)["epoch"] == read_metadata(straight_run.best_path)["epoch"]


def test_ctrl_c_between_last_and_best_still_writes_best(tmp_path, monkeypatch):
    import gaatool.train.engine as engine

    original, calls = engine.save_checkpoint, []

    def interrupted_once(path, model, metadata, **kwargs):
        calls.append(path.name)
        if path.name == BEST_NAME and metadata["epoch"] == 2 and calls.count(BEST_NAME) == 2:
            raise KeyboardInterrupt  # SIGTERM arriving just before best's write
        return original(path, model, metadata, **kwargs)

    monkeypatch.setattr(engine, "save_checkpoint", interrupted_once)
    with pytest.raises(TrainingInterrupted, match="interrupted after epoch 2; .* holds epoch 2; continue with"):
        fit(PairTask(), _config(), tmp_path, quiet=True)
    assert read_metadata(tmp_path / BEST_NAME)["epoch"] == 2


def test_full_disk_is_one_line_and_keeps_the_previous_epoch(tmp_path, monkeypatch):
    import errno

    import gaatool.checkpoint as ckpt
    import gaatool.io.atomic as atomic

    original = atomic.os.fsync

    def full(fd):  # epoch 2's last does not fit
        if (tmp_path / LAST_NAME).exists() and any(p.name.startswith(f".{LAST_NAME}.") for p in tmp_path.iterdir()):
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(fd)

    monkeypatch.setattr(ckpt, "atomic_write_bytes", atomic.atomic_write_bytes)
    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(CheckpointError) as excinfo:
        fit(PairTask(), _config(), tmp_path, quiet=True)
    monkeypatch.undo()
    message = str(excinfo.value)
    assert "\n" not in message and "No space left on device" in message
    assert message.endswith(f"{tmp_path / LAST_NAME} holds epoch 1; continue with --resume")
    assert sorted(p.name for p in tmp_path.iterdir()) == [BEST_NAME, LAST_NAME, "metrics.csv"]  # no temp files
    assert fit(PairTask(), _config(epochs=2), tmp_path, resume=True, quiet=True).epoch == 2


def _rewrite_last(path, edit_metadata=None, edit_tensors=None):
    import gaatool.checkpoint as ckpt

    metadata, tensors = ckpt._read_all(path)
    if edit_metadata:
        edit_metadata(metadata)
    if edit_tensors:
        edit_tensors(tensors)
    ckpt._write(path, metadata, tensors)  # checksums made to match: the damage is in the content


@pytest.mark.parametrize("edit_metadata, edit_tensors", [
    (lambda m: m.update(history="x"), None),
    (lambda m: m.update(train=None), None),
    (lambda m: m.update(epoch="x"), None),
    (lambda m: m["training_state"].pop("schedule"), None),
    (None, lambda t: t.pop("extra/rng/torch")),
    (None, lambda t: t.update({"extra/rng/torch": torch.zeros(5, dtype=torch.uint8)})),
    (None, lambda t: t.update({next(k for k in t if k.endswith("/exp_avg")): torch.zeros(2)})),
])
def test_damaged_training_state_is_one_line(tmp_path, edit_metadata, edit_tensors):
    fit(PairTask(), _config(epochs=1), tmp_path, quiet=True)
    _rewrite_last(tmp_path / LAST_NAME, edit_metadata, edit_tensors)
    with pytest.raises(CheckpointError, match="training state is damaged") as excinfo:
        fit(PairTask(), _config(epochs=2), tmp_path, resume=True, quiet=True)
    assert "\n" not in str(excinfo.value)


def test_weights_that_do_not_fit_are_one_line(tmp_path, straight_run):
    fit(PairTask(), _config(epochs=1), tmp_path / "run", quiet=True)
    for path in (tmp_path / "run" / LAST_NAME, tmp_path / "init.safetensors"):
        if not path.exists():
            import shutil
            shutil.copy(straight_run.best_path, path)
        _rewrite_last(path, edit_tensors=lambda t: t.pop(next(k for k in t if k.startswith("model/"))))
    with pytest.raises(CheckpointError, match="weights do not match") as excinfo:
        fit(PairTask(), _config(epochs=2), tmp_path / "run", resume=True, quiet=True)
    assert "\n" not in str(excinfo.value)
    with pytest.raises(CheckpointError, match="weights do not match") as excinfo:
        fit(PairTask(), _config(epochs=1), tmp_path / "new", quiet=True, init_from=tmp_path / "init.safetensors")
    assert "\n" not in str(excinfo.value) and not (tmp_path / "new").exists()


def test_output_folder_that_is_a_file(tmp_path):
    from gaatool.errors import OutputPathError

    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        fit(PairTask(), _config(epochs=1), tmp_path / "file", quiet=True)
