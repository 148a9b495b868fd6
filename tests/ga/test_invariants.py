import pytest
import torch
from hypothesis import given, strategies as st

from gaatool import ga
from gaatool.testing import assert_rotation_invariant, assert_rotation_covariant

MODES = st.sampled_from(ga.INVARIANT_MODES)


def cloud(seed, n, batch=()):
    return torch.randn(*batch, n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@given(st.integers(0, 1000), st.integers(1, 6), st.integers(1, 3), MODES, st.booleans())
def test_invariants_rotation_invariant(seed, n, rank, mode, normalized):
    r = cloud(seed, n)
    fn = lambda r: ga.tuple_invariants(r, rank, mode, normalized)
    assert fn(r).shape == (n,) * rank + (ga.invariant_count(rank, mode, normalized),)
    assert_rotation_invariant(fn, r, seed=seed)


@given(st.integers(0, 1000), st.integers(2, 6), MODES)
def test_reflection_flips_trivector_unless_o3(seed, n, mode):
    r = cloud(seed, n)
    # rank 3 'single': (|vector|, trivector); the trivector is a pseudoscalar
    fn = lambda r: ga.tuple_invariants(r, 3, "single")[..., 1]
    q = ga.random_reflection(torch.Generator().manual_seed(seed))
    torch.testing.assert_close(fn(r @ q.T), -fn(r), atol=1e-9, rtol=0)
    fn_o3 = lambda r: ga.tuple_invariants(r, 3, mode, o3=True)
    assert_rotation_invariant(fn_o3, r, seed=seed, reflect=True)


@given(st.integers(0, 1000), st.integers(1, 5), st.integers(1, 3), st.sampled_from(ga.COVARIANT_MODES), st.booleans())
def test_covariants_rotate(seed, n, rank, mode, normalized):
    r = cloud(seed, n)
    for k in range(ga.covariant_count(rank, mode, normalized)):
        fn = lambda r: ga.tuple_covariants(r, rank, mode, normalized)[k].expand(*(n,) * rank, 3)
        assert_rotation_covariant(fn, r, seed=seed)


def test_covariants_o3_reflect_like_vectors():
    r = cloud(3, 5)
    fn = lambda r: torch.stack([c.expand(5, 5, 3) for c in ga.tuple_covariants(r, 2, "full", o3=True)])
    assert_rotation_covariant(fn, r, reflect=True)
    # without o3 the cross product (dual of the bivector) does not follow reflections
    fn_so3 = lambda r: ga.tuple_covariants(r, 2, "single")[0].expand(5, 5, 3)
    with pytest.raises(AssertionError):
        assert_rotation_covariant(fn_so3, r, reflect=True)
    with pytest.raises(ga.covariants.ConfigError):
        ga.covariant_count(2, "single", o3=True)


def test_known_values():
    r = torch.tensor([[1.0, 0, 0], [0, 2.0, 0]], dtype=torch.float64)
    q = ga.tuple_invariants(r, 2, "full")
    # pair (0, 1): r0.r1 = 0, |r0 ^ r1| = 2, |r0| = 1, |r1| = 2
    assert q[0, 1].tolist() == [0.0, 2.0, 1.0, 2.0]
    cov = ga.tuple_covariants(r, 2, "single")[0]
    assert cov[0, 1].tolist() == [0.0, 0.0, 2.0]  # r0 x r1


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("mode", ga.INVARIANT_MODES)
@pytest.mark.parametrize("normalized", [False, True])
def test_agrees_with_reference_library(rank, mode, normalized):
    gala = pytest.importorskip("geometric_algebra_attention.pytorch")
    r = cloud(rank, 6, batch=(2,))
    v = torch.randn(2, 6, 4, dtype=torch.float64)
    n_inv = ga.invariant_count(rank, mode, normalized)
    layer = gala.VectorAttention(4, torch.nn.Linear(4, 1).double(), torch.nn.Linear(n_inv, 4).double(), reduce=False,
                                 rank=rank, invariant_mode=mode, include_normalized_products=normalized)
    reference = layer._evaluate((r, v)).invariants
    mine = ga.tuple_invariants(r, rank, mode, normalized)
    # float64 agrees to rounding (~1e-15 on values ~10): 1e-6 let an epsilon added to a norm pass
    assert float((reference.expand_as(mine) - mine).abs().max()) < 1e-12
    for cov_mode in ga.COVARIANT_MODES:
        v2v = gala.Vector2VectorAttention(4, torch.nn.Linear(4, 1).double(), torch.nn.Linear(n_inv, 4).double(),
                                          torch.nn.Linear(4, 1).double(), rank=rank, covariant_mode=cov_mode,
                                          invariant_mode=mode, include_normalized_products=normalized)
        ref_cov = v2v._get_product_summary(v2v._parse_inputs((r, v))).summary.covariants
        mine_cov = ga.tuple_covariants(r, rank, cov_mode, normalized)
        assert len(ref_cov) == len(mine_cov)
        for a, b in zip(ref_cov, mine_cov):
            assert a.shape == b.shape and float((a - b).abs().max()) < 1e-12
