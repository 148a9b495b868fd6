import itertools

import pytest
import torch
from hypothesis import given, strategies as st

from gaatool.ga import algebra

# Independent slow implementation: basis blades as bitmasks, sign by counting swaps.
BLADES = [0b000, 0b001, 0b010, 0b100, 0b011, 0b101, 0b110, 0b111]


def blade_product(a: int, b: int) -> tuple[int, int]:
    swaps = 0
    shifted = a >> 1
    while shifted:
        swaps += bin(shifted & b).count("1")
        shifted >>= 1
    return (-1 if swaps % 2 else 1), a ^ b


def brute_force_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(a)
    for (i, blade_a), (j, blade_b) in itertools.product(enumerate(BLADES), repeat=2):
        sign, blade = blade_product(blade_a, blade_b)
        out[..., BLADES.index(blade)] += sign * a[..., i] * b[..., j]
    return out


def random_mv(seed, *shape):
    return torch.randn(*shape, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@given(st.integers(0, 10_000))
def test_geometric_product_matches_brute_force(seed):
    a, b = random_mv(seed, 5), random_mv(seed + 1, 5)
    torch.testing.assert_close(algebra.geometric_product(a, b), brute_force_product(a, b), atol=1e-12, rtol=0)


def test_product_is_associative_and_not_commutative():
    a, b, c = random_mv(1, 4), random_mv(2, 4), random_mv(3, 4)
    gp = algebra.geometric_product
    torch.testing.assert_close(gp(gp(a, b), c), gp(a, gp(b, c)), atol=1e-12, rtol=0)
    assert (gp(a, b) - gp(b, a)).abs().max() > 1e-3


def test_basis_squares():
    eye = torch.eye(8, dtype=torch.float64)
    squares = [float(algebra.geometric_product(eye[i], eye[i])[0]) for i in range(8)]
    assert squares == [1, 1, 1, 1, -1, -1, -1, -1]


@given(st.integers(0, 10_000))
def test_vector_products_match_full_product(seed):
    g = torch.Generator().manual_seed(seed)
    a, b, c = (torch.randn(6, 3, generator=g, dtype=torch.float64) for _ in range(3))
    A, B, C = (algebra.from_vector(x) for x in (a, b, c))
    ab = algebra.geometric_product(A, B)
    torch.testing.assert_close(algebra.even_to_multivector(algebra.vector_vector(a, b)), ab, atol=1e-12, rtol=0)
    abc = algebra.geometric_product(ab, C)
    odd = algebra.even_vector(algebra.vector_vector(a, b), c)
    torch.testing.assert_close(algebra.odd_to_multivector(odd), abc, atol=1e-12, rtol=0)
    d = torch.randn(6, 3, generator=g, dtype=torch.float64)
    abcd = algebra.geometric_product(abc, algebra.from_vector(d))
    torch.testing.assert_close(algebra.even_to_multivector(algebra.odd_vector(odd, d)), abcd, atol=1e-12, rtol=0)


def test_grade_reverse_dual_norm():
    m = random_mv(7, 3)
    total = sum(algebra.grade(m, k) for k in range(4))
    torch.testing.assert_close(total, m)
    assert torch.all(algebra.grade(m, 2)[..., :4] == 0)
    # reverse(ab) = reverse(b) reverse(a)
    a, b = random_mv(8, 3), random_mv(9, 3)
    gp = algebra.geometric_product
    torch.testing.assert_close(algebra.reverse(gp(a, b)), gp(algebra.reverse(b), algebra.reverse(a)), atol=1e-12, rtol=0)
    # dual of a bivector is the normal vector; dual twice is minus identity in 3D
    torch.testing.assert_close(algebra.dual(algebra.dual(m)), -m, atol=1e-12, rtol=0)
    # norm^2 = <m reverse(m)>_0
    torch.testing.assert_close(algebra.norm(m)[..., 0] ** 2, gp(m, algebra.reverse(m))[..., 0], atol=1e-12, rtol=0)
    with pytest.raises(ValueError):
        algebra.grade(m, 4)
