"""Swish with a fused second derivative equals torch's SiLU to all orders force training uses."""
import pytest
import torch

from gaatool.nn import swish as swish_module
from gaatool.nn.mlp import activation
from gaatool.nn.swish import Swish, swish


def _second_order(fn, x, w):
    """d/dx of |d(sum w*fn(x))/dx|^2: what a forces-only loss differentiates."""
    x = x.detach().requires_grad_(True)
    (first,) = torch.autograd.grad((w * fn(x)).sum(), x, create_graph=True)
    (second,) = torch.autograd.grad(first.square().sum(), x)
    return first.detach(), second


def test_values_and_two_derivatives_equal_silu():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, 6, 64, generator=g, dtype=torch.float64) * 4
    w = torch.randn(64, generator=g, dtype=torch.float64)
    torch.testing.assert_close(swish(x), torch.nn.functional.silu(x), rtol=0, atol=0)
    ours, theirs = _second_order(swish, x, w), _second_order(torch.nn.functional.silu, x, w)
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-10, atol=1e-12)


def test_gradcheck_and_gradgradcheck():
    x = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(swish, (x,))
    assert torch.autograd.gradgradcheck(swish, (x,))


def test_eager_fallback_when_compiling_fails(monkeypatch):
    fused = swish_module._FusedTerms()

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(swish_module, "_fused_terms", fused)
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="swish second derivative"):
        ours = _second_order(swish, x, w)
    assert fused.failed
    theirs = _second_order(torch.nn.functional.silu, x, w)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-10, atol=1e-12)


def test_activation_names():
    assert isinstance(activation("swish"), Swish) and isinstance(activation("silu"), Swish)
    assert isinstance(activation("relu"), torch.nn.ReLU)


def test_module_uses_the_fused_function_only_when_training():
    module, x = Swish(), torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert module(x).grad_fn.name().startswith("_SwishBackward")
    module.eval()
    assert "Silu" in module(x).grad_fn.name()
    torch.testing.assert_close(module(x), Swish().train()(x), rtol=0, atol=0)


def test_one_compiled_kernel_for_every_shape(monkeypatch):
    """The compiled second derivative sees flat tensors: hidden layers of any rank share one kind per
    dtype and thread count, compiled once, with the eager formula's values."""
    fused = swish_module._FusedTerms()
    compiles = []
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compiles.append(fn) or real_compile(fn, **kw))
    g = torch.Generator().manual_seed(2)
    for shape in [(3, 4, 5, 8), (7, 8), (2, 3, 4, 5, 8)]:
        tensors = [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3)]
        ours, expected = fused(*tensors), swish_module._second_derivative_terms(*tensors)
        for a, b in zip(ours, expected):
            assert a.shape == shape
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert len(compiles) == 1 and not fused.failed
    assert fused.ready == {(torch.float64, torch.device("cpu"), torch.get_num_threads())}
