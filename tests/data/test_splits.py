import numpy as np
import pytest

from gaatool.data.splits import SPLIT_NAMES, derive_rng, derive_seed, replica_seeds, split_indices
from gaatool.errors import ConfigError


def test_derive_rng_is_deterministic_and_keyed():
    a = derive_rng(3, "train", "cF4-Cu", 0).normal(size=5)
    np.testing.assert_array_equal(a, derive_rng(3, "train", "cF4-Cu", 0).normal(size=5))
    for other in [(4, "train", "cF4-Cu", 0), (3, "val", "cF4-Cu", 0), (3, "train", "hP2-Mg", 0), (3, "train", "cF4-Cu", 1)]:
        assert not np.allclose(a, derive_rng(*other).normal(size=5))


def test_streams_do_not_depend_on_draw_order():
    first = derive_rng(0, "x").normal(size=3)
    derive_rng(0, "y").normal(size=1000)
    np.testing.assert_array_equal(first, derive_rng(0, "x").normal(size=3))


def test_derive_seed_range_and_errors():
    seeds = {derive_seed(s, "k") for s in range(50)}
    assert len(seeds) == 50 and all(0 <= s < 2**63 for s in seeds)
    with pytest.raises(ConfigError, match="non-negative integer"):
        derive_seed(-1, "k")
    with pytest.raises(ConfigError, match="non-negative integer"):
        derive_seed(1.5, "k")


def test_replica_seeds_are_distinct_per_split_and_replica():
    seeds = replica_seeds(0, {"train": 3, "val": 1, "test": 2})
    assert [len(seeds[s]) for s in SPLIT_NAMES] == [3, 1, 2]
    flat = [s for values in seeds.values() for s in values]
    assert len(set(flat)) == 6
    assert replica_seeds(0, {"train": 3})["train"] == seeds["train"]
    assert replica_seeds(1, {"train": 1})["train"] != seeds["train"][:1]
    assert replica_seeds(0, {"val": 0}) == {"val": []}
    with pytest.raises(ConfigError, match="non-negative integer"):
        replica_seeds(0, {"train": -1})


def test_split_indices_partition():
    parts = split_indices(103, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=1)
    sizes = {name: len(v) for name, v in parts.items()}
    assert sum(sizes.values()) == 103
    # 82.4, 10.3, 10.3: floors plus the one left over to the largest remainder.
    assert sizes == {"train": 83, "val": 10, "test": 10}
    together = np.concatenate(list(parts.values()))
    assert len(np.unique(together)) == 103
    assert all(np.all(np.diff(v) > 0) for v in parts.values())
    again = split_indices(103, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=1)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = split_indices(103, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=2)
    assert not np.array_equal(parts["val"], other["val"])


def test_split_indices_leftover_and_errors():
    parts = split_indices(10, {"train": 0.5}, seed=0)
    assert len(parts["train"]) == 5
    with pytest.raises(ConfigError, match="sum to 1.2"):
        split_indices(10, {"train": 0.7, "val": 0.5}, seed=0)
    with pytest.raises(ConfigError, match=r"must be in \(0, 1\]"):
        split_indices(10, {"train": 0.0}, seed=0)
    with pytest.raises(ConfigError, match="cannot split"):
        split_indices(-1, {"train": 0.5}, seed=0)
