"""Symmetry, masking and reference-agreement tests for the three attention layers."""
import pytest
import torch
from hypothesis import given, strategies as st

from gaatool import testing
from gaatool.nn import LabeledVectorAttention, Vector2VectorAttention, VectorAttention, masked_softmax

D = 5
SETTINGS = st.tuples(st.integers(0, 10_000), st.integers(2, 6), st.integers(1, 3),
                     st.sampled_from(["single", "partial", "full"]), st.sampled_from(["mean", "concat"]))


def inputs(seed, n, batch=(2,)):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*batch, n, 3, generator=g, dtype=torch.float64),
            torch.randn(*batch, n, D, generator=g, dtype=torch.float64))


def make(cls, seed, rank, mode, merge, **kw):
    torch.manual_seed(seed)
    return cls(D, rank=rank, invariant_mode=mode, merge=merge, join=merge, **kw).double().eval()


def assert_uses_geometry(fn, r, seed):
    """fn(r) is far from zero and changes when the cloud is deformed (not moved rigidly).

    Without this the symmetry checks (absolute tolerance 1e-9) also pass for an output that is
    (nearly) zero or that ignores the positions altogether.
    """
    out = fn(r)
    assert out.abs().max() > 1e-6, f"output is ~0 (max {float(out.abs().max()):.1e}): symmetry checks are vacuous"
    bent = r + 0.3 * torch.randn(r.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=r.dtype)
    assert (fn(bent) - out).abs().max() > 1e-6, "output does not depend on the positions"


def exactly_cancelling(rank, mode, merge, reduce, cov_mode):
    """Rank-2 symmetric weights and values (pair invariants, mean merge) times the antisymmetric bivector dual
    (covariant mode 'single'), summed over all pairs: the output is zero by construction."""
    return rank == 2 and mode == "single" and merge == "mean" and reduce and cov_mode == "single"


@given(SETTINGS, st.booleans())
def test_vector_attention_symmetries(setting, reduce):
    seed, n, rank, mode, merge = setting
    layer = make(VectorAttention, seed, rank, mode, merge, reduce=reduce)
    r, v = inputs(seed, n)
    assert_uses_geometry(lambda r: layer(r, v), r, seed)
    testing.assert_rotation_invariant(lambda r: layer(r, v), r, seed=seed)
    if reduce:
        testing.assert_permutation_invariant(lambda r, v: layer(r, v), r, v, seed=seed)
    else:
        testing.assert_permutation_equivariant(lambda r, v: layer(r, v), r, v, seed=seed)
    testing.assert_padding_invariant(layer, r, v, seed=seed, per_point_output=not reduce)


@given(SETTINGS, st.booleans(), st.sampled_from(["single", "partial", "full"]))
def test_vector2vector_symmetries(setting, reduce, cov_mode):
    seed, n, rank, mode, merge = setting
    layer = make(Vector2VectorAttention, seed, rank, mode, merge, reduce=reduce, covariant_mode=cov_mode)
    r, v = inputs(seed, n)
    if not exactly_cancelling(rank, mode, merge, reduce, cov_mode):
        assert_uses_geometry(lambda r: layer(r, v), r, seed)
    testing.assert_rotation_covariant(lambda r: layer(r, v), r, seed=seed)
    if reduce:
        testing.assert_permutation_invariant(lambda r, v: layer(r, v), r, v, seed=seed)
    else:
        testing.assert_permutation_equivariant(lambda r, v: layer(r, v), r, v, seed=seed)
    testing.assert_padding_invariant(layer, r, v, seed=seed, per_point_output=not reduce)


@given(SETTINGS, st.integers(1, 4), st.sampled_from(["single", "partial", "full"]), st.booleans())
def test_labeled_symmetries(setting, n_labels, cov_mode, reduce):
    seed, n, rank, mode, merge = setting
    layer = make(LabeledVectorAttention, seed, rank, mode, merge, covariant_mode=cov_mode, reduce=reduce)
    r, v = inputs(seed, n)
    labels = torch.randn(2, n_labels, D, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    if not exactly_cancelling(rank, mode, merge, reduce, cov_mode):
        assert_uses_geometry(lambda r: layer(labels, r, v), r, seed)
    testing.assert_rotation_covariant(lambda r: layer(labels, r, v), r, seed=seed)
    if reduce:  # (..., L, 3)
        testing.assert_permutation_invariant(lambda r, v: layer(labels, r, v), r, v, seed=seed)
        # permuting labels permutes outputs
        testing.assert_permutation_equivariant(lambda c: layer(c, r, v), labels, seed=seed)
    else:  # (..., L, N, 3): points on axis -2, labels on axis -3
        testing.assert_permutation_equivariant(lambda r, v: layer(labels, r, v), r, v, seed=seed)
        testing.assert_permutation_equivariant(lambda c: layer(c, r, v).transpose(-3, -2), labels, seed=seed)
    testing.assert_padding_invariant(lambda r, v, m: layer(labels, r, v, mask=m), r, v, seed=seed,
                                     per_point_output=not reduce)
    # padded labels give zero outputs and do not change the others
    label_mask = torch.ones(2, n_labels + 1, dtype=torch.bool)
    label_mask[:, -1] = False
    padded_labels = torch.cat([labels, torch.full_like(labels[:, :1], 1e3)], dim=1)
    out = layer(padded_labels, r, v, label_mask=label_mask)
    testing.assert_close(out[:, :-1], layer(labels, r, v), 1e-9, "label padding")
    assert torch.all(out[:, -1] == 0)


def test_o3_option_gives_reflection_invariance():
    r, v = inputs(1, 6)
    # with mean merging, summing over all (j, k) pairs up each tuple with its mirror
    # (j <-> k flips the trivector, keeps |vector|), so use concat to see the pseudoscalar
    so3 = make(VectorAttention, 1, 3, "single", "concat", reduce=True)
    o3 = make(VectorAttention, 1, 3, "single", "concat", reduce=True, o3=True)
    testing.assert_rotation_invariant(lambda r: o3(r, v), r, reflect=True)
    with pytest.raises(AssertionError):
        testing.assert_rotation_invariant(lambda r: so3(r, v), r, reflect=True)
    v2v = make(Vector2VectorAttention, 1, 2, "single", "mean", covariant_mode="full", o3=True)
    testing.assert_rotation_covariant(lambda r: v2v(r, v), r, reflect=True)


@pytest.mark.parametrize("cls", [VectorAttention, Vector2VectorAttention])
@pytest.mark.parametrize("reduce", [False, True])
def test_fully_masked_cloud_gives_zeros(cls, reduce):
    layer = make(cls, 0, 2, "single", "mean", reduce=reduce)
    r, v = inputs(0, 4)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[0] = True  # first cloud real, second fully padded
    out = layer(r, v, mask)
    assert torch.isfinite(out).all()
    assert torch.all(out[1] == 0)
    assert out[0].abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_masking_is_safe_in_half_precision(dtype):
    scores = torch.randn(3, 4, 4).to(dtype)
    mask = torch.rand(3, 4, 4) > 0.5
    mask[0] = False
    weights = masked_softmax(scores, mask, 1)
    assert torch.isfinite(weights).all()
    assert torch.all(weights[~mask] == 0)
    sums = weights.float().sum(-1)
    assert torch.allclose(sums[mask.any(-1)], torch.ones(()), atol=1e-2)
    layer = VectorAttention(D, reduce=True)
    r, v = inputs(0, 4)
    m = torch.ones(2, 4, dtype=torch.bool)
    m[1] = False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(r.float(), v.float(), m)
    assert torch.isfinite(out).all() and torch.all(out[1] == 0)


def test_attention_weights_are_returned():
    layer = make(VectorAttention, 0, 2, "single", "mean")
    r, v = inputs(0, 5)
    result = layer(r, v, return_attention=True)
    assert result.attention.shape == (2, 5, 5)
    torch.testing.assert_close(result.attention.sum(-1), torch.ones(2, 5, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_second_derivatives_through_layers(dtype):
    """Force training differentiates twice; self pairs (r_ii = 0) must stay finite."""
    torch.manual_seed(0)
    layer = VectorAttention(D, reduce=True, rank=2, invariant_mode="full", include_normalized_products=True).to(dtype)
    positions = torch.randn(5, 3, dtype=dtype, requires_grad=True)
    values = torch.randn(5, 5, D, dtype=dtype)
    r_ij = positions[None, :, :] - positions[:, None, :]
    energy = layer(r_ij, values).sum()
    (forces,) = torch.autograd.grad(energy, positions, create_graph=True)
    loss = forces.pow(2).sum()
    grads = torch.autograd.grad(loss, list(layer.parameters()) + [positions], allow_unused=True)
    assert all(g is None or torch.isfinite(g).all() for g in grads)


REFERENCE_CASES = [(cls, reduce, rank, merge) for cls in ("va", "v2v") for reduce in (False, True)
                   for rank in (1, 2, 3) for merge in ("mean", "concat")]


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_layers_agree_with_reference_library(case):
    gala = pytest.importorskip("geometric_algebra_attention.pytorch")
    kind, reduce, rank, merge = case
    r, v = inputs(rank, 5)
    if kind == "va":
        mine = make(VectorAttention, 0, rank, "partial", merge, reduce=reduce)
        ref = gala.VectorAttention(D, mine.score_net, mine.value_net, reduce=reduce, rank=rank, merge_fun=merge,
                                   join_fun=merge, invariant_mode="partial").double()
    else:
        mine = make(Vector2VectorAttention, 0, rank, "partial", merge, reduce=reduce, covariant_mode="full")
        ref = gala.Vector2VectorAttention(D, mine.score_net, mine.value_net, mine.scale_net, reduce=reduce, rank=rank,
                                          merge_fun=merge, join_fun=merge, invariant_mode="partial",
                                          covariant_mode="full").double()
        if mine.vector_kernels is not None:
            ref.vector_kernels.data.copy_(mine.vector_kernels.data)
    if merge == "concat":
        for theirs, ours in zip(ref.merge_kernels, mine.merge.kernels):
            theirs.data.copy_(ours.data)
        for theirs, ours in zip(ref.join_kernels, mine.join.kernels):
            theirs.data.copy_(ours.data)
    with torch.no_grad():
        assert testing.max_error(mine(r, v), ref((r, v))) < 1e-9


@pytest.mark.parametrize("merge", ["mean", "concat"])
def test_labeled_agrees_with_reference_library(merge):
    gala = pytest.importorskip("geometric_algebra_attention.pytorch")
    r, v = inputs(4, 5)
    labels = torch.randn(2, 3, D, dtype=torch.float64)
    mine = make(LabeledVectorAttention, 0, 2, "single", merge)
    ref = gala.LabeledVectorAttention(D, mine.score_net, mine.value_net, mine.scale_net, merge_fun=merge,
                                      join_fun=merge).double()
    ref.vector_kernels.data.copy_(mine.vector_kernels.data)
    if merge == "concat":
        for theirs, ours in zip(ref.merge_kernels, mine.merge.kernels):
            theirs.data.copy_(ours.data)
        for theirs, ours in zip(ref.join_kernels, mine.join.kernels):
            theirs.data.copy_(ours.data)
    with torch.no_grad():
        assert testing.max_error(mine(labels, r, v), ref((labels, (r, v)))) < 1e-9


def test_fast_dropout_statistics():
    from gaatool.nn.mlp import FastDropout

    layer = FastDropout(0.5).train()
    x = torch.ones(200_000)
    y = layer(x)
    kept = (y != 0).float().mean()
    assert abs(float(kept) - 0.5) < 0.01
    assert float(y.mean()) == pytest.approx(1.0, abs=0.02)  # unbiased
    assert torch.equal(layer.eval()(x), x)
    y = FastDropout(0.25).train()(torch.ones(200_000))
    assert abs(float((y != 0).float().mean()) - 0.75) < 0.01


def test_random_bytes_are_uniform_and_shaped():
    from gaatool.nn.mlp import random_bytes

    sample = random_bytes(torch.Size([1001, 999]))  # not a multiple of 8
    assert sample.shape == (1001, 999) and sample.dtype == torch.uint8
    counts = torch.bincount(sample.flatten().long(), minlength=256).double()
    expected = sample.numel() / 256
    assert float(((counts - expected) ** 2 / expected).sum()) < 400  # chi-square, 255 dof: mean 255, sd ~23
    assert not torch.equal(random_bytes(torch.Size([64])), random_bytes(torch.Size([64])))


@pytest.mark.parametrize("dims", [0, 1, 2])
def test_softmax_without_mask_equals_all_true_mask(dims):
    scores = torch.randn(3, 5, 5, dtype=torch.float64, requires_grad=True) * 30
    no_mask = masked_softmax(scores, None, dims)
    full_mask = masked_softmax(scores, torch.ones(3, 5, 5, dtype=torch.bool), dims)
    torch.testing.assert_close(no_mask, full_mask, rtol=1e-12, atol=1e-15)
    sums = no_mask.reshape(*no_mask.shape[:3 - dims], -1).sum(-1)
    torch.testing.assert_close(sums, torch.ones_like(sums), rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(no_mask)
    (a,) = torch.autograd.grad((no_mask * upstream).sum(), scores)
    (b,) = torch.autograd.grad((full_mask * upstream).sum(), scores)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_fused_linear_layer_norm_equals_the_modules_with_gradients_of_two_orders():
    from gaatool.nn.mlp import ValueMLP, linear_layer_norm, value_net

    torch.manual_seed(0)
    net = value_net(2, 8, hidden=16).double()
    assert isinstance(net, ValueMLP) and isinstance(net[:-1], ValueMLP)
    with torch.no_grad():  # non-trivial affine parameters
        net[1].weight.uniform_(0.5, 2.0)
        net[1].bias.normal_()
    x = (torch.randn(50, 2, dtype=torch.float64) * 3).requires_grad_(True)
    fused = linear_layer_norm(x, net[0], net[1])
    plain = net[1](net[0](x))
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-12)
    # first and second derivatives (force training differentiates twice) agree too
    weights = torch.randn_like(plain)
    (g_fused,) = torch.autograd.grad((fused * weights).sum(), x, create_graph=True)
    (g_plain,) = torch.autograd.grad((plain * weights).sum(), x, create_graph=True)
    torch.testing.assert_close(g_fused, g_plain, rtol=0, atol=1e-10)
    second_fused = torch.autograd.grad(g_fused.pow(2).sum(), [x, net[0].weight, net[1].weight])
    second_plain = torch.autograd.grad(g_plain.pow(2).sum(), [x, net[0].weight, net[1].weight])
    for a, b in zip(second_fused, second_plain):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    # the net uses it in training mode only, with the same result either way
    net.train()
    train_out = net(x)
    net.eval()
    torch.testing.assert_close(train_out, net(x), rtol=0, atol=1e-12)
    # a constant input row (zero variance after the map) stays finite
    flat = linear_layer_norm(torch.zeros(1, 2, dtype=torch.float64), net[0], net[1])
    assert torch.isfinite(flat).all()


@pytest.mark.parametrize("shape", [(50, 2), (3, 7, 2), (4, 5, 6, 3), (1, 1)])
def test_layer_norm_statistics_channels_first_equal_rows_first(monkeypatch, shape):
    import gaatool.nn.mlp as mlp

    torch.manual_seed(0)
    net = mlp.value_net(shape[-1], 8, hidden=16).double()
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 2.0)
        net[1].bias.normal_()
        x = torch.randn(*shape, dtype=torch.float64) * 3
        x[..., 0].flatten()[:1] = 0.0
        results = {}
        for channels_first in (False, True):
            monkeypatch.setattr(mlp, "STATS_CHANNELS_FIRST", channels_first)
            scaled, kernel = mlp.layer_norm_operands(x, net[0], net[1])
            results[channels_first] = scaled
            torch.testing.assert_close(mlp.linear_layer_norm(x, net[0], net[1]), net[1](net[0](x)), rtol=0, atol=1e-12)
    assert results[True].shape == results[False].shape == (*shape[:-1], shape[-1] + 1)
    torch.testing.assert_close(results[True], results[False], rtol=1e-13, atol=1e-13)


def test_layer_norm_statistics_rows_first_while_recording_gradients(monkeypatch):
    import gaatool.nn.mlp as mlp

    net = mlp.value_net(2, 8, hidden=16).double()
    x = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    calls = []
    original = torch.Tensor.t
    monkeypatch.setattr(torch.Tensor, "t", lambda self: calls.append(self.shape) or original(self))
    mlp.layer_norm_operands(x, net[0], net[1])
    assert (6, 2) not in calls  # (training steps measured slower channels first)
    with torch.no_grad():
        mlp.layer_norm_operands(x, net[0], net[1])
    assert (6, 2) in calls


def test_value_net_fuses_linear_and_layer_norm_from_fuse_min_rows_on(monkeypatch):
    import gaatool.nn.mlp as mlp

    torch.manual_seed(1)
    net = mlp.value_net(2, 8, hidden=16).double().eval()
    calls = []
    fused = mlp.linear_layer_norm
    monkeypatch.setattr(mlp, "linear_layer_norm", lambda *args: calls.append(args[0].shape) or fused(*args))
    for rows in (mlp.FUSE_MIN_ROWS - 1, mlp.FUSE_MIN_ROWS):
        x = torch.randn(rows, 2, dtype=torch.float64)
        plain = net[3](net[2](net[1](net[0](x))))  # torch's modules one by one
        torch.testing.assert_close(net(x), plain, rtol=0, atol=1e-12)
        torch.testing.assert_close(net.hidden(x), net[2](net[1](net[0](x))), rtol=0, atol=1e-12)
    assert [shape[0] for shape in calls] == [mlp.FUSE_MIN_ROWS] * 2  # only the big input went the fused way
    calls.clear()
    net.train()  # the rule above is inference's: training fuses at any size (cheaper double backward)
    net(torch.randn(3, 2, dtype=torch.float64))
    assert calls == [torch.Size([3, 2])]
