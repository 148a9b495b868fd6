from pathlib import Path

import pytest
import torch

from gaatool.models.forces import ForceField


@pytest.fixture(scope="session")
def tiny_force_field() -> ForceField:
    """A small random float64 force field (seed 0, eval mode) with MD17-like normalisation in kcal/mol.

    Shared by several modules: use it as it is (float64, CPU), never convert it in place.
    """
    with torch.random.fork_rng():  # the seed fixes these weights without resetting other tests' random state
        torch.manual_seed(0)
        config = ForceField.Config(atomic_numbers=[1, 6, 8], n_dim=8, n_blocks=1, energy_scale=20.0,
                                   atom_energy_shift=[-300.0, -20000.0, -47000.0])
        return ForceField(config).double().eval()


@pytest.fixture(scope="session")
def rmd17_archive(rmd17_50, write_tar_bz2):
    """``rmd17_archive(path, splits, extra=None) -> path``: an archive laid out like rmd17.tar.bz2.

    It holds the real 50-frame rMD17 ethanol fixture and split files made up from ``splits``
    (``{n: (train indices, test indices)}`` for index_train_NN.csv / index_test_NN.csv), because
    the real ones index the 100,000-frame file; ``extra`` adds ``{member name: bytes}``.
    """

    def write(path: Path, splits: dict, extra: dict[str, bytes] | None = None) -> Path:
        members = {"rmd17/npz_data/rmd17_ethanol.npz": rmd17_50.read_bytes()}
        for n, (train, test) in splits.items():
            members[f"rmd17/splits/index_train_{n:02d}.csv"] = "".join(f"{i}\n" for i in train).encode()
            members[f"rmd17/splits/index_test_{n:02d}.csv"] = "".join(f"{i}\n" for i in test).encode()
        return write_tar_bz2(path, {**members, **(extra or {})})

    return write
