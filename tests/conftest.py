import os

# Spinning OpenMP threads make torch ~100x slower on shared cores; must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

# CI machines have 2 cores; keep hypothesis quick and deterministic there.
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=15, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Test tensors are small: one thread avoids threading overhead and keeps timings stable.
torch.set_num_threads(1)


@pytest.fixture
def float64():
    return torch.float64
