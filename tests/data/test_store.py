import json

import numpy as np
import pytest

from gaatool.data import store
from gaatool.data.store import FORMAT_VERSION, METADATA_KEY, load_dataset, read_metadata, save_dataset
from gaatool.errors import InputFileError


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return {
        "train/r_ij": rng.normal(size=(7, 12, 3)).astype(np.float32),
        "train/labels": np.arange(7, dtype=np.int64),
        "val/mask": np.array([True, False, True]),
        "names": np.array(["cF4-Cu", "hP2-Mg"]),
    }


def test_round_trip(tmp_path, arrays):
    path = tmp_path / "data.npz"
    meta = {"task": "crystal", "class_names": ["a", "b"], "seed": 3, "nested": {"x": [1.5, 2]}}
    assert save_dataset(path, arrays, meta) == path
    loaded, loaded_meta = load_dataset(path, expected_task="crystal")
    assert set(loaded) == set(arrays)
    for name, value in arrays.items():
        assert loaded[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded[name], value)
    assert loaded_meta["class_names"] == ["a", "b"] and loaded_meta["nested"] == {"x": [1.5, 2]}
    assert loaded_meta["format_version"] == FORMAT_VERSION
    assert "gaatool_version" in loaded_meta
    assert read_metadata(path)["seed"] == 3
    # Plain numpy reads it without pickle.
    with np.load(path, allow_pickle=False) as raw:
        assert json.loads(raw[METADATA_KEY].tobytes())["task"] == "crystal"


def test_path_without_npz_suffix_is_kept(tmp_path, arrays):
    path = tmp_path / "dataset.bin"
    save_dataset(path, arrays, {"task": "x"})
    assert path.exists() and not (tmp_path / "dataset.bin.npz").exists()
    assert load_dataset(path)[1]["task"] == "x"


def test_other_task_is_refused(tmp_path, arrays):
    path = tmp_path / "forces.npz"
    save_dataset(path, arrays, {"task": "forces"})
    with pytest.raises(InputFileError, match=r"forces\.npz: is a 'forces' dataset; expected a 'crystal' dataset"):
        load_dataset(path, expected_task="crystal")
    with pytest.raises(InputFileError, match="expected a 'crystal'"):
        read_metadata(path, expected_task="crystal")


def test_missing_and_folder(tmp_path):
    with pytest.raises(InputFileError, match=r"missing\.npz: no such file"):
        load_dataset(tmp_path / "missing.npz")
    with pytest.raises(InputFileError, match="is a folder"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9])
def test_truncated_file(tmp_path, arrays, fraction):
    path = tmp_path / "data.npz"
    save_dataset(path, arrays, {"task": "crystal"})
    data = path.read_bytes()
    broken = tmp_path / "broken.npz"
    broken.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(InputFileError, match=r"broken\.npz: .*(damaged|not a gaatool dataset)"):
        load_dataset(broken)


def test_corrupted_member(tmp_path, arrays):
    path = tmp_path / "data.npz"
    save_dataset(path, {"big": np.arange(50000, dtype=np.int64)}, {"task": "crystal"})
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 64] = bytes(64)
    broken = tmp_path / "flipped.npz"
    broken.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match=r"flipped\.npz: .*damaged"):
        load_dataset(broken)


def test_foreign_files(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.arange(3))
    with pytest.raises(InputFileError, match="has no gaatool metadata"):
        load_dataset(plain)
    single = tmp_path / "single.npy"
    np.save(single, np.arange(3))
    with pytest.raises(InputFileError, match="single array"):
        load_dataset(single)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(InputFileError, match="not a gaatool dataset file or damaged"):
        load_dataset(text)
    bad_json = tmp_path / "badjson.npz"
    np.savez(bad_json, **{METADATA_KEY: np.frombuffer(b"{not json", dtype=np.uint8)})
    with pytest.raises(InputFileError, match="metadata is damaged"):
        load_dataset(bad_json)
    no_task = tmp_path / "notask.npz"
    np.savez(no_task, **{METADATA_KEY: np.frombuffer(b'{"format_version": 1}', dtype=np.uint8)})
    with pytest.raises(InputFileError, match="lacks 'task'"):
        load_dataset(no_task)


def test_newer_format_is_refused(tmp_path):
    path = tmp_path / "future.npz"
    meta = json.dumps({"task": "crystal", "format_version": FORMAT_VERSION + 1}).encode()
    np.savez(path, **{METADATA_KEY: np.frombuffer(meta, dtype=np.uint8)})
    with pytest.raises(InputFileError, match=rf"format version {FORMAT_VERSION + 1} is newer than this gaatool reads \({FORMAT_VERSION}\); upgrade"):
        load_dataset(path)


def test_pickled_members_are_never_loaded(tmp_path):
    path = tmp_path / "pickled.npz"
    meta = json.dumps({"task": "crystal", "format_version": 1}).encode()
    np.savez(path, evil=np.array([{"a": 1}], dtype=object), **{METADATA_KEY: np.frombuffer(meta, dtype=np.uint8)})
    with pytest.raises(InputFileError, match=r"array 'evil' is damaged or unreadable"):
        load_dataset(path)


def test_save_refuses_bad_input(tmp_path):
    with pytest.raises(TypeError, match="dtype object"):
        save_dataset(tmp_path / "x.npz", {"a": np.array([None, 1], dtype=object)}, {"task": "t"})
    with pytest.raises(ValueError, match="must contain 'task'"):
        save_dataset(tmp_path / "x.npz", {}, {})
    with pytest.raises(ValueError, match="reserved"):
        save_dataset(tmp_path / "x.npz", {METADATA_KEY: np.zeros(1)}, {"task": "t"})
    with pytest.raises(ValueError):
        save_dataset(tmp_path / "x.npz", {}, {"task": "t", "bad": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_interrupted_save_keeps_the_old_file(tmp_path, arrays, monkeypatch):
    path = tmp_path / "data.npz"
    save_dataset(path, arrays, {"task": "crystal", "version": "old"})
    before = path.read_bytes()

    def interrupted(handle, **payload):
        handle.write(b"PK partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(store.np, "savez_compressed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_dataset(path, arrays, {"task": "crystal", "version": "new"})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz"]
