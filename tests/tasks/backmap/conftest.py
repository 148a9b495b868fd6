import pytest

from gaatool.tasks.backmap.dataset import BackmapDatasetConfig, build_backmap_dataset
from gaatool.tasks.backmap.train import BackmapModelOptions, train_backmap
from gaatool.train import TrainConfig


@pytest.fixture(scope="session")
def small_backmap_dataset(tmp_path_factory, pdb_files):
    """Three real entries: 1AJJ trains, 1CKB validates, 1A8O tests."""
    path = tmp_path_factory.mktemp("backmap") / "small.npz"
    config = BackmapDatasetConfig(val_entries=("1CKB",), test_entries=("1A8O",))
    paths = [pdb_files / name for name in ("1AJJ.pdb.gz", "1CKB.pdb.gz", "1A8O.cif.gz")]
    build_backmap_dataset(paths, config).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_backmap_checkpoint(small_backmap_dataset, tmp_path_factory):
    """A GAA backmapper (dim 8, rank-1 translation and refinement) after 2 epochs."""
    out = tmp_path_factory.mktemp("backmap_run")
    options = BackmapModelOptions(n_dim=8, translation_rank=1, refine_rank=1)
    config = TrainConfig(epochs=2, batch_size=16, device="cpu", learning_rate=3e-3)
    return train_backmap(small_backmap_dataset, out, options, config, quiet=True).best_path
