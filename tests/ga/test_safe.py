import pytest
import torch

from gaatool.ga import safe_abs, safe_norm, tuple_invariants


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_second_derivatives_finite_at_zero(dtype):
    x = torch.zeros(4, 3, dtype=dtype, requires_grad=True)
    (grad,) = torch.autograd.grad(safe_norm(x).sum(), x, create_graph=True)
    assert torch.isfinite(grad).all() and torch.all(grad == 0)
    (second,) = torch.autograd.grad(grad.pow(2).sum() + grad.sum(), x)
    assert torch.isfinite(second).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_invariants_of_self_pairs_differentiate_twice(dtype):
    # a molecule: pair vectors r_j - r_i contain exact zeros on the diagonal
    positions = torch.randn(5, 3, dtype=dtype, requires_grad=True)
    r_ij = positions[None, :, :] - positions[:, None, :]
    for rank, mode in [(2, "full"), (3, "full")]:
        q = tuple_invariants(r_ij, rank, mode, include_normalized_products=True)
        (grad,) = torch.autograd.grad(q.pow(2).sum(), positions, create_graph=True)
        (hess_row,) = torch.autograd.grad(grad.sum(), positions)
        assert torch.isfinite(grad).all() and torch.isfinite(hess_row).all()


def test_values():
    assert float(safe_norm(torch.tensor([3.0, 4.0]))) == 5.0
    assert torch.equal(safe_abs(torch.tensor([-2.0, 0.0, 1.5])), torch.tensor([2.0, 0.0, 1.5]))
    # gradient away from zero is the usual x/|x|
    x = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(safe_norm(x).sum(), x)
    torch.testing.assert_close(g, torch.tensor([0.6, 0.8], dtype=torch.float64))
