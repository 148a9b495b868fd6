import pytest

from gaatool.tasks.crystal.dataset import CrystalDatasetConfig, build_crystal_dataset
from gaatool.tasks.crystal.train import CrystalModelOptions, train_crystal
from gaatool.train import TrainConfig


@pytest.fixture(scope="session")
def reference_cifs(files_dir):
    """tests/files/crystal: AFLOW prototype unit cells, named by AFLOW label."""
    return files_dir / "crystal"


@pytest.fixture(scope="session")
def tiny_crystal_dataset(tmp_path_factory):
    """A small real dataset: 4 prototypes, 64+ particles each, Steinhardt features included."""
    path = tmp_path_factory.mktemp("crystal") / "tiny.npz"
    config = CrystalDatasetConfig(seed=1, min_particles=64, prototypes=("cF4-Cu", "cI2-W", "cP2-CsCl", "hP2-Mg"),
                                  steinhardt=True)
    build_crystal_dataset(config).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_crystal_checkpoint(tiny_crystal_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("crystal_run")
    options = CrystalModelOptions(n_dim=8, dropout=0.0)
    result = train_crystal(tiny_crystal_dataset, out, options, TrainConfig(epochs=3, batch_size=64, device="cpu",
                                                                           learning_rate=3e-3), quiet=True)
    return result.best_path
