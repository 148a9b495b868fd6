"""Building and reading forces datasets from the real MD17 / rMD17 fixtures (tests/files/SOURCES.md)."""
from __future__ import annotations

import numpy as np
import pytest

from gaatool.data.store import load_dataset, save_dataset
from gaatool.errors import ConfigError, InputFileError
from gaatool.tasks.forces.dataset import UNITS, build_md17_dataset, load_forces_dataset


def test_paper_split_from_local_npz(tmp_path, md17_50):
    out = tmp_path / "ds.npz"
    dataset = build_md17_dataset("ethanol", source=md17_50, seed=4, n_train=20, n_val=10, n_test=15, output=out)
    assert out.is_file() and dataset.path == out
    with np.load(md17_50) as src:
        R, E, F, z = src["R"], src["E"].ravel(), src["F"], src["z"]
    assert dataset.atomic_numbers.tolist() == z.tolist() and dataset.formula == "C2H6O"
    seen = []
    for name, size in (("train", 20), ("val", 10), ("test", 15)):
        part = dataset.splits[name]
        assert part.n_frames == size and np.all(np.diff(part.indices) > 0)
        # each row is the source frame it names
        np.testing.assert_array_equal(part.positions, R[part.indices])
        np.testing.assert_array_equal(part.energies, E[part.indices])
        np.testing.assert_array_equal(part.forces, F[part.indices])
        seen.extend(part.indices.tolist())
    assert len(set(seen)) == 45  # disjoint

    loaded = load_forces_dataset(out)
    for name, part in dataset.splits.items():
        np.testing.assert_array_equal(loaded.splits[name].forces, part.forces)
        np.testing.assert_array_equal(loaded.splits[name].indices, part.indices)
    meta = loaded.metadata
    assert meta["task"] == "forces" and meta["units"] == UNITS and meta["molecule"] == "ethanol"
    assert meta["split"] == {"kind": "paper", "seed": 4, "n_train": 20, "n_val": 10, "n_test": 15, "source_frames": 50}
    assert meta["provenance"]["fingerprint"] == "7100fc8f7a805328026c0c0807a22f83"
    assert meta["provenance"]["fingerprint_verified"] is True
    assert meta["provenance"]["sha256"] == "1ee78ffdc8b846681d1e3228ff185d975d1aeee6c1019bdf2788c0a6af7ecc68"

    summary = loaded.to_dict()
    rms = np.sqrt(np.mean(dataset.splits["test"].forces ** 2)) * 43.364
    assert summary["splits"]["test"]["force_rms_mev_per_a"] == pytest.approx(rms, rel=1e-12)
    assert summary["elements"] == ["C", "C", "O", "H", "H", "H", "H", "H", "H"]


def test_seed_sets_the_split(md17_50):
    kwargs = dict(source=md17_50, n_train=20, n_val=10, n_test=10)
    a = build_md17_dataset("ethanol", seed=1, **kwargs)
    b = build_md17_dataset("ethanol", seed=1, **kwargs)
    c = build_md17_dataset("ethanol", seed=2, **kwargs)
    assert a.splits["train"].indices.tolist() == b.splits["train"].indices.tolist()
    assert a.splits["train"].indices.tolist() != c.splits["train"].indices.tolist()


def test_extended_xyz_and_file_without_molecule(rmd17_50, extxyz):
    from_xyz = build_md17_dataset("ethanol", source=extxyz, n_train=3, n_val=1, n_test=1)
    assert from_xyz.atomic_numbers.tolist() == [1] * 6 + [6, 6, 8]
    # any molecule may come from a local file without naming it
    anonymous = build_md17_dataset(source=rmd17_50, n_train=30, n_val=10, n_test=10)
    assert anonymous.name == "rmd17_ethanol_50" and anonymous.formula == "C2H6O"


def test_published_split(tmp_path, rmd17_archive, rmd17_50):
    # published split n: frames n..n+9 train, 30+n..39+n test
    splits = {n: (range(n, n + 10), range(30 + n, 40 + n)) for n in range(1, 6)}
    archive = rmd17_archive(tmp_path / "rmd17.tar.bz2", splits)
    dataset = build_md17_dataset("ethanol", source=archive, revised=True, split="published", published_index=2,
                                 n_val=5, cache=tmp_path / "cache", download=False)
    assert dataset.splits["train"].indices.tolist() == list(range(2, 12))
    assert dataset.splits["test"].indices.tolist() == list(range(32, 42))
    val = set(dataset.splits["val"].indices.tolist())
    assert len(val) == 5 and not val & set(range(2, 12)) and not val & set(range(32, 42))
    assert dataset.metadata["split"]["kind"] == "published" and dataset.metadata["split"]["published_split"] == 2
    with np.load(rmd17_50) as src:
        np.testing.assert_array_equal(dataset.splits["test"].forces, src["forces"][32:42])
    # smaller sizes draw a seeded subset of the published sets
    small = build_md17_dataset("ethanol", source=archive, revised=True, split="published", n_train=4, n_val=5,
                               n_test=3, cache=tmp_path / "cache", download=False)
    assert set(small.splits["train"].indices) <= set(range(1, 11)) and small.splits["test"].n_frames == 3
    with pytest.raises(ConfigError, match="has only 10 train frames"):
        build_md17_dataset("ethanol", source=archive, revised=True, split="published", n_train=11, n_val=5,
                           cache=tmp_path / "cache", download=False)


def test_bad_requests(tmp_path, md17_50):
    with pytest.raises(ConfigError, match="unknown MD17 molecule 'water'"):
        build_md17_dataset("water", source=md17_50)
    with pytest.raises(ConfigError, match="needs 3000 frames"):
        build_md17_dataset("ethanol", source=md17_50)  # the paper's sizes do not fit 50 frames
    with pytest.raises(ConfigError, match="unknown split"):
        build_md17_dataset("ethanol", source=md17_50, split="random")
    with pytest.raises(ConfigError, match="--n-val -1"):
        build_md17_dataset("ethanol", source=md17_50, n_val=-1)
    with pytest.raises(ConfigError, match="name a molecule"):
        build_md17_dataset()
    with pytest.raises(InputFileError, match="holds C2H6O, but benzene is C6H6"):
        build_md17_dataset("benzene", source=md17_50, n_train=1, n_val=1, n_test=1)
    with pytest.raises(ConfigError, match="no published splits"):
        build_md17_dataset("ethanol", source=md17_50, split="published")
    out = tmp_path / "never.npz"
    with pytest.raises(ConfigError):
        build_md17_dataset("ethanol", source=md17_50, output=out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_dataset_files(tmp_path, md17_50):
    good = tmp_path / "good.npz"
    build_md17_dataset("ethanol", source=md17_50, n_train=5, n_val=5, n_test=5, output=good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputFileError, match="truncated.npz"):
        load_forces_dataset(truncated)
    other = tmp_path / "crystal.npz"
    save_dataset(other, {"x": np.zeros(2)}, {"task": "crystal"})
    with pytest.raises(InputFileError, match="is a 'crystal' dataset"):
        load_forces_dataset(other)
    arrays, meta = load_dataset(good)
    ev = tmp_path / "ev.npz"
    save_dataset(ev, arrays, {**meta, "units": {**UNITS, "energies": "eV"}})
    with pytest.raises(InputFileError, match="units"):
        load_forces_dataset(ev)
    arrays.pop("val/forces")
    missing = tmp_path / "missing.npz"
    save_dataset(missing, arrays, meta)
    with pytest.raises(InputFileError, match="lacks the array 'val/forces'"):
        load_forces_dataset(missing)
    arrays, meta = load_dataset(good)
    arrays["test/energies"] = arrays["test/energies"][:-1]
    ragged = tmp_path / "ragged.npz"
    save_dataset(ragged, arrays, meta)
    with pytest.raises(InputFileError, match="inconsistent shapes"):
        load_forces_dataset(ragged)


def test_test_only_dataset_evaluates_but_does_not_train(tmp_path, md17_50):
    """Held-out frames as a test-only dataset (n_train = n_val = 0), as the pretrained model card uses."""
    from gaatool.tasks.forces.train import ForcesModelOptions, ForcesTrainTask

    dataset = build_md17_dataset("ethanol", source=md17_50, n_train=0, n_val=0, n_test=20,
                                 output=tmp_path / "test_only.npz")
    assert dataset.splits["test"].n_frames == 20 and dataset.splits["train"].n_frames == 0
    with pytest.raises(ConfigError, match="train split is empty"):
        ForcesTrainTask(dataset, ForcesModelOptions(), batch_size=4)


def test_rmd17_file_with_its_original_md17_labels(rmd17_50, tmp_path):
    """data md17 --from rmd17.npz --labels md17: the old_* labels the pretrained models learned, recorded so."""
    from gaatool.tasks.forces.md17 import trained_labels

    dataset = build_md17_dataset("ethanol", source=rmd17_50, labels="md17", n_train=0, n_val=0, n_test=50,
                                 output=tmp_path / "old.npz")
    with np.load(rmd17_50) as archive:
        old_forces = archive["old_forces"]
    test = dataset.splits["test"]
    np.testing.assert_allclose(test.forces, old_forces[test.indices])
    assert dataset.metadata["provenance"]["labels"] == "md17"
    assert trained_labels({"data": {"provenance": dataset.metadata["provenance"]}}) == "md17"
    own = build_md17_dataset("ethanol", source=rmd17_50, n_train=0, n_val=0, n_test=50)
    assert trained_labels({"data": {"provenance": own.metadata["provenance"]}}) == "rmd17"
