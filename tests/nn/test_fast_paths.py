"""The speed-ups of issue 6 compute exactly what the tuple-by-tuple model computes.

Each fast path (pairs i <= j for symmetric rank-2 invariants, per-point merge and
join terms, invariants shared through a Geometry, one thread for small inputs,
chunked force inference) is compared with the plain evaluation in float64.
"""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from gaatool.models.crystal import CrystalClassifier
from gaatool.models.forces import ForceField
from gaatool.nn import Geometry, LabeledVectorAttention, Vector2VectorAttention, VectorAttention
from gaatool.nn.attention import PairSum, TupleAttentionBase, TupleSum
from gaatool.nn.threads import serial_when_small

D = 5


def plain(monkeypatch):
    """Switch every layer to the tuple-by-tuple evaluation (no pair symmetry)."""
    monkeypatch.setattr(TupleAttentionBase, "uses_pair_symmetry", lambda self: False)


def clouds(seed, n, batch=2):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(batch, n, 3, generator=g, dtype=torch.float64)
    v = torch.randn(batch, n, D, generator=g, dtype=torch.float64)
    mask = torch.rand(batch, n, generator=g) > 0.3
    mask[:, 0] = True
    return r, v, mask


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 7), st.sampled_from(["mean", "concat"]), st.booleans(),
       st.booleans(), st.sampled_from([VectorAttention, Vector2VectorAttention]))
def test_pair_path_equals_tuple_path(seed, n, merge, reduce, normalized, cls):
    torch.manual_seed(seed)
    layer = cls(D, rank=2, merge=merge, join=merge, reduce=reduce, include_normalized_products=normalized).double()
    layer.eval()
    r, v, mask = clouds(seed, n)
    assert layer.uses_pair_symmetry()
    fast = layer(r, v, mask, return_attention=True)
    with pytest.MonkeyPatch.context() as mp:
        plain(mp)
        slow = layer(r, v, mask, return_attention=True)
    torch.testing.assert_close(fast.output, slow.output, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast.attention, slow.attention, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("merge", ["mean", "concat"])
def test_labeled_pair_path_equals_tuple_path(merge, monkeypatch):
    torch.manual_seed(3)
    layer = LabeledVectorAttention(D, rank=2, merge=merge, join=merge).double().eval()
    r, v, mask = clouds(3, 6)
    labels = torch.randn(2, 4, D, dtype=torch.float64)
    label_mask = torch.tensor([[True, True, False, True], [True, False, False, False]])
    fast = layer(labels, r, v, mask, label_mask)
    plain(monkeypatch)
    torch.testing.assert_close(fast, layer(labels, r, v, mask, label_mask), rtol=1e-12, atol=1e-12)


def test_symmetric_merge_keeps_everything_per_pair():
    r, v, _ = clouds(0, 5)
    mean = VectorAttention(D, merge="mean", join="mean").double().eval()
    concat = VectorAttention(D, merge="concat", join="concat").double().eval()
    assert isinstance(mean.tuple_values(Geometry(r), v), PairSum)
    assert isinstance(concat.tuple_values(Geometry(r), v), TupleSum)  # M(v_i, v_j) != M(v_j, v_i)


def test_no_pair_symmetry_while_training_with_dropout_in_v():
    layer = VectorAttention(D, dropout=0.5)
    assert not layer.train().uses_pair_symmetry()
    assert layer.eval().uses_pair_symmetry()
    assert not VectorAttention(D, rank=2, invariant_mode="partial").uses_pair_symmetry()  # |r_i| breaks i <-> j
    assert not VectorAttention(D, rank=3).uses_pair_symmetry()


def test_geometry_computes_invariants_once():
    r, v, mask = clouds(1, 6)
    geometry = Geometry(r, mask)
    calls = []
    original = geometry.cached

    def counting(key, compute):
        return original(key, lambda: calls.append(key) or compute())

    geometry.cached = counting
    layers = [VectorAttention(D).double().eval() for _ in range(3)]
    outputs = [layer(geometry, v, mask) for layer in layers]
    assert len(calls) == 1
    for layer, output in zip(layers, outputs):  # same as each layer on its own
        torch.testing.assert_close(output, layer(r, v, mask), rtol=1e-12, atol=1e-12)


def test_serial_when_small_restores_threads():
    before = torch.get_num_threads()
    with serial_when_small(10):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with serial_when_small(10):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with serial_when_small(10**9):
        assert torch.get_num_threads() == before


def test_chunked_force_inference_equals_one_pass(monkeypatch):
    torch.manual_seed(0)
    model = ForceField(ForceField.Config(n_dim=8, n_blocks=1, attention={
        "merge": "concat", "join": "concat", "score_activation": "swish", "hidden": 8})).double().eval()
    g = torch.Generator().manual_seed(0)
    positions = torch.randn(7, 5, 3, generator=g, dtype=torch.float64) * 1.5
    types = torch.randint(0, 3, (7, 5), generator=g)
    mask = torch.ones(7, 5, dtype=torch.bool)
    mask[3, 4] = False
    whole = model(positions, types, mask)
    monkeypatch.setattr("gaatool.models.forces.INFERENCE_CHUNK_TUPLES", 2 * 5 ** 3)  # chunks of 2 molecules
    chunked = model(positions, types, mask)
    torch.testing.assert_close(chunked[0], whole[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(chunked[1], whole[1], rtol=1e-12, atol=1e-12)


def test_crystal_model_fast_path_equals_plain(monkeypatch):
    torch.manual_seed(0)
    model = CrystalClassifier(CrystalClassifier.Config(n_dim=8, attention={"dropout": 0.5, "hidden": 8})).double()
    model.eval()
    g = torch.Generator().manual_seed(1)
    r = torch.randn(6, 12, 3, generator=g, dtype=torch.float64)
    t = torch.randn(6, 12, 4, generator=g, dtype=torch.float64)
    fast = model(r, t)
    plain(monkeypatch)
    torch.testing.assert_close(fast, model(r, t), rtol=1e-12, atol=1e-12)
