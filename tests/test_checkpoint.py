import dataclasses
import json

import numpy as np
import pytest
import safetensors.torch
import torch

import gaatool.checkpoint as ckpt
import gaatool.io.atomic as atomic
from gaatool import __version__
from gaatool.checkpoint import (
    CHECKPOINT_FORMAT_VERSION,
    describe_checkpoint,
    load_checkpoint,
    load_model,
    read_metadata,
    save_checkpoint,
    update_metadata,
)
from gaatool.errors import CheckpointError, ConfigError
from gaatool.models.registry import register


@register
class TinyTiedNet(torch.nn.Module):
    """A registry model with a buffer and tied weights (shared storage)."""

    name = "test_checkpoint_tiny"

    @dataclasses.dataclass
    class Config:
        width: int = 4

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.encode = torch.nn.Linear(3, config.width)
        self.decode = torch.nn.Linear(config.width, 3, bias=False)
        self.decode.weight = torch.nn.Parameter(self.encode.weight.t())  # not shared yet
        self.tied = torch.nn.Linear(config.width, config.width, bias=False)
        self.tied_again = self.tied  # same module twice: state dict has two names for one tensor
        self.register_buffer("scale", torch.tensor(2.5))

    def forward(self, positions):
        return self.decode(self.tied(self.encode(positions))) * self.scale


def _model(width=4, seed=0):
    torch.manual_seed(seed)
    return TinyTiedNet(TinyTiedNet.Config(width=width))


META = {
    "task": "crystal",
    "type_map": {"Cu": 0, "Zr": 1},
    "units": {"length": "angstrom"},
    "metrics": {"val_accuracy": np.float32(0.75)},
    "split": np.array([1, 2, 3]),
}


@pytest.fixture
def saved(tmp_path):
    model = _model()
    path = save_checkpoint(
        tmp_path / "ckpt.safetensors", model, META, extra_tensors={"optim/state/0/exp_avg": torch.ones(2, 3)}
    )
    return path, model


def _one_line_error(excinfo, path):
    message = str(excinfo.value)
    assert "\n" not in message
    assert path.name in message
    return message


def test_roundtrip_weights_metadata_and_extra_tensors(saved):
    path, model = saved
    loaded, meta = load_model(path, task="crystal")
    assert type(loaded) is TinyTiedNet and not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.randn(5, 3)
    assert torch.equal(loaded(x), model(x))
    assert meta["format_version"] == CHECKPOINT_FORMAT_VERSION
    assert meta["gaatool_version"] == __version__
    assert meta["task"] == "crystal"
    assert meta["model"] == {"name": "test_checkpoint_tiny", "config": {"width": 4}}
    assert meta["parameter_count"] == sum(p.numel() for p in model.parameters())
    assert meta["type_map"] == {"Cu": 0, "Zr": 1}
    assert meta["metrics"]["val_accuracy"] == 0.75  # numpy scalar stored as a JSON number
    assert meta["split"] == [1, 2, 3]
    assert "created" in meta
    checkpoint = load_checkpoint(path)
    assert torch.equal(checkpoint.extra_tensors["optim/state/0/exp_avg"], torch.ones(2, 3))
    assert set(checkpoint.state_dict) == set(model.state_dict())
    assert checkpoint.task == "crystal"


def test_file_is_plain_safetensors_with_json_metadata(saved):
    path, _ = saved
    with safetensors.safe_open(str(path), framework="pt") as handle:
        header = handle.metadata()
        keys = set(handle.keys())
    assert json.loads(header["gaatool"])["task"] == "crystal"
    assert "model/scale" in keys and "extra/optim/state/0/exp_avg" in keys


def test_read_metadata_reads_header_only(saved):
    path, _ = saved
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # damage the last weight byte: the header is still fine
    path.write_bytes(bytes(data))
    assert read_metadata(path)["task"] == "crystal"
    with pytest.raises(CheckpointError, match="weights are damaged") as excinfo:
        load_checkpoint(path)
    _one_line_error(excinfo, path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(CheckpointError, match="no such checkpoint file") as excinfo:
        read_metadata(path)
    _one_line_error(excinfo, path)


def test_not_a_safetensors_file(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_text("this is a text file, not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a safetensors") as excinfo:
        load_checkpoint(path)
    _one_line_error(excinfo, path)


@pytest.mark.parametrize("keep", [0, 5, 8, 40, "half", -1])
def test_truncated_checkpoint(saved, keep):
    path, _ = saved
    data = path.read_bytes()
    keep = {"half": len(data) // 2, -1: len(data) - 1}.get(keep, keep)
    path.write_bytes(data[:keep])
    for reader in (read_metadata, load_checkpoint, load_model):
        with pytest.raises(CheckpointError) as excinfo:
            reader(path)
        _one_line_error(excinfo, path)


def test_flipped_bytes_in_header(saved):
    path, _ = saved
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = data[8 : 8 + length]
    # One flip in the JSON structure, one inside the gaatool metadata string,
    # one in the 8-byte length prefix.
    structure = header.index(b"data_offsets")
    inside_metadata = header.index(b"angstrom")
    for offset in (8 + structure, 8 + inside_metadata, 8 + inside_metadata + 3, 2):
        damaged = bytearray(data)
        damaged[offset] ^= 0x01
        path.write_bytes(bytes(damaged))
        with pytest.raises(CheckpointError) as excinfo:
            load_checkpoint(path)
        _one_line_error(excinfo, path)
    path.write_bytes(data)
    assert load_checkpoint(path).task == "crystal"


def test_safetensors_without_gaatool_metadata(tmp_path):
    path = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not written by gaatool") as excinfo:
        load_checkpoint(path)
    _one_line_error(excinfo, path)


def test_newer_format_version(tmp_path, monkeypatch):
    path = tmp_path / "future.safetensors"
    monkeypatch.setattr(ckpt, "CHECKPOINT_FORMAT_VERSION", CHECKPOINT_FORMAT_VERSION + 1)
    save_checkpoint(path, _model(), {"task": "forces"})
    monkeypatch.undo()
    with pytest.raises(CheckpointError) as excinfo:
        read_metadata(path)
    message = _one_line_error(excinfo, path)
    assert f"with format {CHECKPOINT_FORMAT_VERSION + 1}" in message
    assert f"reads up to {CHECKPOINT_FORMAT_VERSION}" in message
    assert message.endswith("upgrade gaatool")


def test_task_mismatch(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.safetensors", _model(), {"task": "forces"})
    with pytest.raises(CheckpointError) as excinfo:
        load_model(path, task="crystal")
    assert str(excinfo.value) == f"{path} is a 'forces' checkpoint; this command needs a 'crystal' checkpoint"
    assert load_model(path, task="forces")[1]["task"] == "forces"


def test_weights_not_matching_model_config(tmp_path):
    model = _model(width=4)
    model.config.width = 6  # the stored config now disagrees with the stored weights
    path = save_checkpoint(tmp_path / "ckpt.safetensors", model, {"task": "crystal"})
    with pytest.raises(CheckpointError, match="do not match") as excinfo:
        load_model(path)
    message = _one_line_error(excinfo, path)
    assert "encode.weight (4, 3) vs (6, 3)" in message


def test_unknown_model_name(tmp_path):
    model = _model()
    path = save_checkpoint(tmp_path / "ckpt.safetensors", model, {"task": "crystal"})
    data = load_checkpoint(path)
    # A checkpoint from a gaatool that has a model this one lacks (written with the internal writer).
    meta = dict(data.metadata, model={"name": "no_such_model", "config": {}})
    ckpt._write(path, meta, {"model/" + k: v for k, v in data.state_dict.items()})
    with pytest.raises(CheckpointError, match="unknown model 'no_such_model'"):
        load_model(path)


def test_update_metadata_merges_and_keeps_weights(saved):
    path, model = saved
    before = read_metadata(path)
    after = update_metadata(path, {"metrics": {"test_accuracy": 0.5}, "notes": "ok"})
    assert after["metrics"] == {"val_accuracy": 0.75, "test_accuracy": 0.5}
    reread = read_metadata(path)
    assert reread == after
    assert reread["notes"] == "ok" and reread["created"] == before["created"]
    loaded, _ = load_model(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert torch.equal(load_checkpoint(path).extra_tensors["optim/state/0/exp_avg"], torch.ones(2, 3))
    with pytest.raises(CheckpointError, match="cannot be updated"):
        update_metadata(path, {"model": {"name": "other", "config": {}}})


def test_describe_checkpoint(saved):
    path, model = saved
    info = describe_checkpoint(path)
    assert info["file_size_bytes"] == path.stat().st_size
    assert info["parameter_count"] == sum(p.numel() for p in model.parameters())
    assert info["tensor_count"] == len(model.state_dict())
    assert info["task"] == "crystal" and info["model"] == "test_checkpoint_tiny"
    assert info["has_training_state"] is True
    assert info["metadata"]["type_map"] == {"Cu": 0, "Zr": 1}
    json.dumps(info)  # ready for --json
    damaged = bytearray(path.read_bytes())
    damaged[-3] ^= 0xFF  # in the weights: the header still reads
    path.write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError, match="weights are damaged"):
        describe_checkpoint(path)
    with pytest.raises(CheckpointError, match="is a folder"):
        describe_checkpoint(path.parent)


def test_interrupted_overwrite_keeps_old_file(saved, monkeypatch):
    path, _ = saved
    original = path.read_bytes()

    def interrupted_replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, _model(seed=1), {"task": "crystal"})
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_save_rejects_bad_input(tmp_path):
    with pytest.raises(CheckpointError, match="needs a 'task'"):
        save_checkpoint(tmp_path / "a.safetensors", _model(), {"type_map": {}})
    with pytest.raises(CheckpointError, match="not a registry model"):
        save_checkpoint(tmp_path / "b.safetensors", torch.nn.Linear(2, 2), {"task": "crystal"})
    with pytest.raises(CheckpointError, match="cannot be stored as JSON"):
        save_checkpoint(tmp_path / "c.safetensors", _model(), {"task": "crystal", "bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_bad_device(saved):
    path, _ = saved
    with pytest.raises(ConfigError, match="unknown device"):
        load_checkpoint(path, device="gpu7")


def _write_metadata(path, metadata):
    """Rewrite ``path`` with ``metadata`` (checksums made to match: the damage is in the content)."""
    _, tensors = ckpt._read_all(path)
    text = json.dumps(metadata, sort_keys=True)
    header = {ckpt.METADATA_KEY: text, ckpt.METADATA_HASH_KEY: ckpt.hashlib.sha256(text.encode()).hexdigest()}
    path.write_bytes(safetensors.torch.save(tensors, metadata=header))


@pytest.mark.parametrize("edit, message", [
    (lambda m: None, "not a JSON object"),
    (lambda m: [m], "not a JSON object"),
    (lambda m: dict(m, model={"name": "test_checkpoint_tiny", "config": None}), "malformed 'model' entry"),
    (lambda m: dict(m, model={"name": 3, "config": {}}), "malformed 'model' entry"),
    (lambda m: dict(m, model={"name": "test_checkpoint_tiny", "config": {"width": "four"}}), "cannot be built"),
    (lambda m: dict(m, model={"name": "test_checkpoint_tiny", "config": {"width": -2}}), "cannot be built"),
])
def test_edited_metadata_is_a_one_line_error(saved, edit, message):
    # these used to end in "unexpected TypeError/AttributeError/RuntimeError ... (this is a bug)"
    path, _ = saved
    _write_metadata(path, edit(read_metadata(path)))
    with pytest.raises(CheckpointError, match=message) as excinfo:
        load_model(path)
    _one_line_error(excinfo, path)


def test_unknown_model_error_names_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.safetensors", _model(), {"task": "crystal"})
    _write_metadata(path, dict(read_metadata(path), model={"name": "no_such_model", "config": {}}))
    with pytest.raises(CheckpointError, match="unknown model 'no_such_model'") as excinfo:
        load_model(path)
    _one_line_error(excinfo, path)


def test_a_full_disk_is_a_checkpoint_error_and_keeps_the_old_file(saved, monkeypatch):
    import errno

    path, _ = saved
    original = path.read_bytes()

    def full(fd):  # the data did not fit: reported when it is flushed to the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(CheckpointError, match=r"cannot write the checkpoint \(No space left on device\)") as excinfo:
        save_checkpoint(path, _model(seed=1), {"task": "crystal"})
    monkeypatch.undo()
    _one_line_error(excinfo, path)
    assert isinstance(excinfo.value.__cause__, OSError)
    assert path.read_bytes() == original
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
