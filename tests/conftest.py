import os

import pytest
import torch
from hypothesis import settings

# CI machines have 2 cores; keep hypothesis quick and deterministic there.
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=15, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def float64():
    return torch.float64
