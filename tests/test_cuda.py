"""The CUDA code paths: the same models and commands on a GPU agree with the CPU.

CI has no GPU, so these tests skip there; they run wherever torch sees CUDA
(the project's GPU checks run them on a lent H100/H200, see benchmarks/gpu.sh).
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from gaatool.models.backmap import Backmapper
from gaatool.models.crystal import CrystalClassifier
from gaatool.models.forces import ForceField
from gaatool.nn import VectorAttention
from gaatool.nn.masking import masked_softmax
from gaatool.nn.mlp import FastDropout

# GAATOOL_TEST_DEVICE=cpu runs these on the CPU, to check the tests themselves where there is no GPU
DEVICE_NAME = os.environ.get("GAATOOL_TEST_DEVICE", "cuda")
CUDA = torch.device(DEVICE_NAME)
pytestmark = pytest.mark.skipif(CUDA.type == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device")


def both(model, *args):
    """Outputs of ``model`` on the CPU and on CUDA (float64: only summation order differs)."""
    model = model.double().eval()
    cpu = model(*args)
    gpu = model.to(CUDA)(*(a.to(CUDA) if isinstance(a, torch.Tensor) else a for a in args))
    model.cpu()
    return cpu, gpu


def assert_same(cpu, gpu):
    if isinstance(cpu, tuple):
        for a, b in zip(cpu, gpu):
            assert_same(a, b)
        return
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-9)


def test_crystal_model_on_cuda():
    torch.manual_seed(0)
    model = CrystalClassifier(CrystalClassifier.Config())
    r, t = torch.randn(64, 12, 3, dtype=torch.float64), torch.randn(64, 12, 4, dtype=torch.float64)
    mask = torch.rand(64, 12) > 0.2
    assert_same(*both(model, r, t, mask))


def test_force_field_on_cuda_with_chunks_and_double_backward():
    torch.manual_seed(0)
    model = ForceField(ForceField.Config())
    positions = torch.randn(40, 9, 3, dtype=torch.float64) * 1.5
    types = torch.tensor([1, 1, 2, 0, 0, 0, 0, 0, 0]).expand(40, 9)
    assert_same(*both(model, positions, types))  # 40 molecules: chunked inference
    model = model.to(CUDA).train()
    _, forces = model(positions[:4].to(CUDA), types[:4].to(CUDA))
    forces.pow(2).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_backmapper_on_cuda():
    torch.manual_seed(0)
    model = Backmapper(Backmapper.Config())
    g = torch.Generator().manual_seed(0)
    r = torch.randn(8, 16, 3, generator=g, dtype=torch.float64) * 6
    types = torch.randint(0, 20, (8, 16), generator=g)
    center = torch.randint(0, 20, (8,), generator=g)
    labels = torch.randint(0, 187, (8, 14), generator=g)
    atom_mask = torch.rand(8, 14, generator=g) > 0.3
    assert_same(*both(model, r, types, center, labels, None, atom_mask))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_masking_on_cuda(dtype):
    layer = VectorAttention(8).to(CUDA, dtype).eval()
    r = torch.randn(4, 6, 3, device=CUDA, dtype=dtype)
    v = torch.randn(4, 6, 8, device=CUDA, dtype=dtype)
    mask = torch.ones(4, 6, dtype=torch.bool, device=CUDA)
    mask[1] = False
    out = layer(r, v, mask)
    assert torch.isfinite(out).all() and (out[1] == 0).all()
    weights = masked_softmax(torch.randn(3, 5, device=CUDA, dtype=dtype), mask[:3, :5], 1)
    assert torch.isfinite(weights).all()


def test_dropout_on_cuda_keeps_the_rate():
    x = torch.ones(1_000_000, device=CUDA)
    kept = (FastDropout(0.5).train()(x) != 0).float().mean().item()
    assert abs(kept - 0.5) < 0.01


def test_cli_on_cuda(cli, tmp_path):
    data = tmp_path / "crystals.npz"
    assert cli("data", "crystals", "-o", data, "--min-particles", "40", "--no-steinhardt").code == 0
    run_dir = tmp_path / "run"
    code, out, err = cli("train", "crystal", data, "-o", run_dir, "--epochs", "1", "--dim", "8",
                         "--batch-size", "128", "--device", DEVICE_NAME, "--quiet", "--json")
    assert code == 0, err
    code, out, err = cli("evaluate", "crystal", run_dir / "best.safetensors", data, "--json", "--device", DEVICE_NAME)
    assert code == 0 and 0 <= json.loads(out)["accuracy"] <= 1, err
    example = Path(__file__).resolve().parents[1] / "docs" / "examples" / "metals.gsd"
    outputs = {device: tmp_path / f"{device}.npz" for device in ("cpu", DEVICE_NAME)}
    for device, out_path in outputs.items():  # the pretrained model on both devices
        code, out, err = cli("identify", example, "--device", device, "-o", out_path)
        assert code == 0, err
    with np.load(outputs["cpu"]) as a, np.load(outputs[DEVICE_NAME]) as b:
        assert a["labels"].shape == b["labels"].shape and (a["labels"] == b["labels"]).mean() > 0.999
