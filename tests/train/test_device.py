import pytest
import torch

from gaatool.errors import ConfigError
from gaatool.train.device import resolve_device


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_cpu_and_auto_without_cuda(no_cuda):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_cuda_requested_without_cuda(no_cuda):
    for spec in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError) as excinfo:
            resolve_device(spec)
        assert str(excinfo.value) == f"--device {spec} requested but CUDA is not available; use --device cpu or auto"


def test_auto_and_cuda_with_gpus(two_gpus):
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match="only 2 CUDA device"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "cuda:-1", "", "mps0"])
def test_unknown_specs(no_cuda, spec):
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device(spec)
