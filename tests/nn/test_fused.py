"""Linear + ReLU in one oneDNN product (gaatool.nn.fused): same results, and only where it may run."""
from __future__ import annotations

import pytest
import torch

import gaatool.allocator as allocator
import gaatool.nn.attention as attention
import gaatool.nn.fused as fused
import gaatool.nn.workspace as workspace
from gaatool.models.backmap import Backmapper
from gaatool.models.crystal import CrystalClassifier

needs_kernel = pytest.mark.skipif(not fused._kernel_available(), reason="torch built without oneDNN")


@pytest.fixture
def memory_kept(monkeypatch):
    """As after gaatool.allocator.keep_freed_memory(), without changing this test process's malloc."""
    monkeypatch.setattr(allocator, "_kept", True)


@pytest.fixture
def counted(monkeypatch):
    """Counts the calls of the fused kernel."""
    calls = []
    kernel = torch.ops.mkldnn._linear_pointwise

    class Counting:
        def __call__(self, *args):
            calls.append(args[0].shape)
            return kernel(*args)

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", Counting())
    return calls


@needs_kernel
@pytest.mark.parametrize("shape", [(37, 5), (3, 4, 5)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_relu_equals_relu_of_linear(memory_kept, counted, shape, with_bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)
    weight = torch.randn(8, shape[-1], generator=g)
    bias = torch.randn(8, generator=g) if with_bias else None
    with torch.no_grad():
        result = fused.linear_relu(x, weight, bias)
    assert counted == [x.shape]
    torch.testing.assert_close(result, torch.relu(torch.nn.functional.linear(x, weight, bias)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", ["memory not kept", "gradients", "float64", "disabled"])
def test_torch_kernels_where_the_fused_one_may_not_run(monkeypatch, case):
    monkeypatch.setattr(allocator, "_kept", case != "memory not kept")
    monkeypatch.setattr(fused, "ENABLED", case != "disabled")
    dtype = torch.float64 if case == "float64" else torch.float32
    x = torch.randn(6, 5, dtype=dtype)
    linear = torch.nn.Linear(5, 8).to(dtype)
    relu = torch.nn.ReLU().eval()
    with torch.set_grad_enabled(case == "gradients"):
        assert not fused.applies(x, linear.weight)
        result = fused.linear_then(linear, relu, x)
        expected = relu(linear(x))
    assert result.requires_grad == (case == "gradients")
    torch.testing.assert_close(result, expected, rtol=0, atol=0)


def test_a_kernel_that_cannot_run_is_not_used(monkeypatch):
    def broken(*args):
        raise RuntimeError("no oneDNN back end for this CPU")

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", broken)
    fused._kernel_available.cache_clear()
    try:
        assert not fused._kernel_available()
        monkeypatch.setattr(allocator, "_kept", True)
        with torch.no_grad():
            assert not fused.applies(torch.ones(4, 3), torch.ones(5, 3))
            result = fused.linear_relu(torch.ones(4, 3), torch.ones(5, 3), None)
        torch.testing.assert_close(result, torch.full((4, 5), 3.0))
    finally:
        monkeypatch.undo()
        fused._kernel_available.cache_clear()


def test_only_an_eval_mode_relu_is_taken_over():
    relu = torch.nn.ReLU()
    assert not fused.fuses(relu)  # training: the plain module (its own backward)
    assert fused.fuses(relu.eval())
    assert not fused.fuses(torch.nn.GELU().eval())
    assert not fused.fuses(None)


def _crystal():
    torch.manual_seed(0)
    return CrystalClassifier(CrystalClassifier.Config(attention={"dropout": 0.0})).eval()


@needs_kernel
@pytest.mark.parametrize("batch", [5, 300])  # value nets unblocked / in blocks of rows (BLOCK_ROWS patched)
def test_crystal_classifier_gives_the_same_logits(memory_kept, counted, monkeypatch, batch):
    monkeypatch.setattr(attention, "BLOCK_ROWS", 4096)
    model = _crystal()
    g = torch.Generator().manual_seed(1)
    r = torch.randn(batch, 12, 3, generator=g)
    types = torch.randn(batch, 12, 4, generator=g)
    mask = torch.ones(batch, 12, dtype=torch.bool)
    mask[2, 9:] = False  # padding takes the same path
    with torch.no_grad():
        monkeypatch.setattr(fused, "ENABLED", False)
        reference = model(r, types, mask)
        assert counted == []
        monkeypatch.setattr(fused, "ENABLED", True)
        result = model(r, types, mask)
    # per attention layer (3) its score net, and its value net where that fuses its layer norm (from 1024 pair
    # rows); per residual block (2) its expansion
    assert len(counted) >= (3 + 2 if batch == 5 else 3 + 3 + 2)
    torch.testing.assert_close(result, reference, rtol=1e-5, atol=1e-5)
    workspace.release()


@needs_kernel
def test_backmapper_gives_the_same_vectors(memory_kept, counted, monkeypatch, small_backmap_batch):
    torch.manual_seed(2)
    model = Backmapper(Backmapper.Config(n_dim=8, attention={"hidden": 16})).eval()
    batch = small_backmap_batch(torch.float32)
    with torch.no_grad():
        monkeypatch.setattr(fused, "ENABLED", False)
        reference = model(*batch)
        monkeypatch.setattr(fused, "ENABLED", True)
        result = model(*batch)
    assert counted
    torch.testing.assert_close(result, reference, rtol=1e-5, atol=1e-5)
