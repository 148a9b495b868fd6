"""docs/examples/row_split.py (quoted in docs/crystal.md) deals a dataset's rows out again, keeping sizes."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs/examples/row_split.py"




def _arrays(sizes=(7, 3, 4)):
    """Rows whose bond vectors carry their label and row number, so moved rows stay recognisable."""
    arrays, start = {}, 0
    for split, size in zip(("train", "val", "test"), sizes):
        rows = np.arange(start, start + size)
        arrays[f"{split}/labels"] = rows % 3
        arrays[f"{split}/r_ij"] = np.broadcast_to(rows[:, None, None], (size, 12, 3)).astype(np.float32)
        start += size
    return arrays


def test_rows_are_a_permutation_that_keeps_split_sizes_and_pairs_fields(docs_example):
    module = docs_example("row_split")
    arrays = _arrays()
    split = module.row_split(arrays, seed=0)
    assert {s: len(split[f"{s}/labels"]) for s in module.SPLITS} == {"train": 7, "val": 3, "test": 4}
    row_ids = np.concatenate([split[f"{s}/r_ij"][:, 0, 0] for s in module.SPLITS]).astype(int)
    assert sorted(row_ids) == list(range(14))
    assert row_ids.tolist() != list(range(14))  # rows did move between splits
    labels = np.concatenate([split[f"{s}/labels"] for s in module.SPLITS])
    np.testing.assert_array_equal(labels, row_ids % 3)  # each row keeps its own label


def test_the_split_is_deterministic_in_the_seed(docs_example):
    module = docs_example("row_split")
    first, again, other = (module.row_split(_arrays(), seed) for seed in (1, 1, 2))
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not all(np.array_equal(first[k], other[k]) for k in first)


def test_a_missing_split_is_an_error(docs_example):
    arrays = {k: v for k, v in _arrays().items() if not k.startswith("val/")}
    with pytest.raises(ValueError, match="no val split"):
        docs_example("row_split").row_split(arrays, seed=0)


def test_a_missing_file_is_a_one_line_error_and_writes_nothing(tmp_path):
    out = tmp_path / "rows.npz"
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "absent.npz"), str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("row_split: ") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
