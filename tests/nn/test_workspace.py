"""Reused inference buffers (gaatool.nn.workspace) change no result, and are used only where they may be."""
from __future__ import annotations

import threading

import pytest
import torch

import gaatool.nn.attention as attention
import gaatool.nn.workspace as workspace
from gaatool.models.backmap import Backmapper
from gaatool.models.crystal import CrystalClassifier
from gaatool.nn import Vector2VectorAttention, VectorAttention


@pytest.fixture
def small_buffers(monkeypatch):
    """Buffers for every product, however small, nets in blocks of a few rows (not dividing the row counts
    evenly), and no buffers left from other tests."""
    monkeypatch.setattr(workspace, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(attention, "BLOCK_ROWS", 7)
    workspace.release()
    yield
    workspace.release()


def _slots() -> set[str]:
    slots = getattr(workspace._local, "slots", None)
    return set() if slots is None else {slot for slot, _ in slots.buffers}


def _both_ways(call, monkeypatch):
    """call() with the buffers off, then on twice (the second call reuses what the first made).

    Results are not copied: a result that were a view of a buffer would change under the later calls.
    """
    monkeypatch.setattr(workspace, "ENABLED", False)
    reference = call()
    assert _slots() == set()
    monkeypatch.setattr(workspace, "ENABLED", True)
    first, second = call(), call()
    call(scale=0.5)  # other inputs through the same buffers
    return reference, first, second


def _crystal(dtype):
    torch.manual_seed(0)
    return CrystalClassifier(CrystalClassifier.Config(attention={"dropout": 0.0})).to(dtype).eval()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_crystal_classifier_gives_the_same_logits(small_buffers, monkeypatch, dtype, mode):
    model = _crystal(dtype)
    g = torch.Generator().manual_seed(1)
    r = torch.randn(7, 12, 3, generator=g, dtype=dtype)
    types = torch.randn(7, 12, 4, generator=g, dtype=dtype)
    mask = torch.ones(7, 12, dtype=torch.bool)
    mask[2, 9:] = False  # padding takes the same path

    def call(scale=1.0):
        with mode():
            return model(scale * r, types, mask)

    reference, first, second = _both_ways(call, monkeypatch)
    assert _slots() == {"hidden", "core", "pair_weights"}  # the nets' products and the pair weights went there
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(first, reference, rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(second, reference, rtol=tolerance, atol=tolerance)


def test_crystal_classifier_in_pieces_reuses_one_buffer_per_slot(small_buffers, monkeypatch):
    import gaatool.models.crystal as crystal_module

    model = _crystal(torch.float64)
    r = torch.randn(40, 12, 3, dtype=torch.float64)
    types = torch.randn(40, 12, 4, dtype=torch.float64)
    with torch.no_grad():
        whole = model(r, types)
        sizes = {slot: tensor.numel() for slot, tensor in workspace._local.slots.buffers.items()}
        monkeypatch.setattr(crystal_module, "CPU_CHUNK_TUPLES", 144 * 3)  # pieces of 3 environments
        pieces = model(r, types)
    torch.testing.assert_close(pieces, whole, rtol=1e-12, atol=1e-12)
    assert {slot: tensor.numel() for slot, tensor in workspace._local.slots.buffers.items()} == sizes  # no growth


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
@pytest.mark.parametrize("merge", ["mean", "concat"])
def test_backmapper_gives_the_same_vectors(small_buffers, monkeypatch, merge, mode, small_backmap_batch):
    torch.manual_seed(2)
    config = Backmapper.Config(n_dim=6, attention={"merge": merge, "join": merge, "hidden": 8})
    model = Backmapper(config).double().eval()
    r, *rest = small_backmap_batch(torch.float64)

    def call(scale=1.0):
        with mode():
            return model(scale * r, *rest)

    reference, first, second = _both_ways(call, monkeypatch)
    # concat: the refinements' tuple values too (expanded pair cores, terms added in place)
    # mean: the bead blocks' pair weights too
    assert _slots() == ({"hidden", "core", "pair_weights"} if merge == "mean" else {"hidden", "core", "tuple_values"})
    torch.testing.assert_close(first, reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(second, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layer_class", [VectorAttention, Vector2VectorAttention])
@pytest.mark.parametrize("settings", [{}, {"merge": "concat", "join": "concat"},
                                      {"merge": "concat", "invariant_mode": "partial"}, {"rank": 3}])
def test_attention_layers_give_the_same_outputs(small_buffers, monkeypatch, layer_class, settings):
    torch.manual_seed(4)
    layer = layer_class(8, **settings).double().eval()
    positions = torch.randn(2, 5, 3, dtype=torch.float64)
    values = torch.randn(2, 5, 8, dtype=torch.float64)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])

    def call(scale=1.0):
        with torch.no_grad():
            return layer(scale * positions, values, mask)

    reference, first, second = _both_ways(call, monkeypatch)
    torch.testing.assert_close(first, reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(second, reference, rtol=1e-12, atol=1e-12)


def test_not_used_while_gradients_are_recorded(small_buffers):
    layer = VectorAttention(8).double()
    positions = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    out = layer(positions, torch.randn(2, 5, 8, dtype=torch.float64))
    out.sum().backward()  # a reused buffer would have broken the graph (in-place writes of saved tensors)
    assert _slots() == set() and positions.grad is not None


def test_results_are_views_of_the_slot_until_its_next_use(small_buffers):
    x = torch.randn(4, 3, dtype=torch.float64)
    weight = torch.randn(5, 3, dtype=torch.float64)
    with torch.no_grad():
        first = workspace.linear(x, weight, None, "test")
        torch.testing.assert_close(first, x @ weight.t())
        second = workspace.linear(2 * x, weight, None, "test")
    assert first.data_ptr() == second.data_ptr()  # the same memory: callers must not keep results
    torch.testing.assert_close(second, 2 * x @ weight.t())


def test_threads_have_their_own_buffers_and_release_drops_them(small_buffers):
    x = torch.randn(4, 3, dtype=torch.float64)
    weight = torch.randn(5, 3, dtype=torch.float64)
    pointers = []

    def work():
        with torch.no_grad():
            pointers.append(workspace.linear(x, weight, None, "test").data_ptr())

    with torch.no_grad():
        pointers.append(workspace.linear(x, weight, None, "test").data_ptr())
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert len(set(pointers)) == 2
    workspace.release()
    assert _slots() == set()


def test_public_functions_return_fresh_tensors(small_buffers):
    """linear_layer_norm and a value net called on their own never hand out a buffer."""
    from gaatool.nn.mlp import linear_layer_norm, value_net

    torch.manual_seed(5)
    net = value_net(2, 8).double().eval()
    x = torch.randn(6, 2, dtype=torch.float64)
    with torch.no_grad():
        normed = linear_layer_norm(x, net[0], net[1])
        hidden = net[:-1](x)  # a slice without its last Linear
        out = net(x)
        expected = (normed.clone(), hidden.clone(), out.clone())
        linear_layer_norm(2 * x, net[0], net[1]), net[:-1](2 * x), net(2 * x)
    for got, want in zip((normed, hidden, out), expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_value_net_row_statistics_once_or_per_block_agree(small_buffers, monkeypatch, dtype):
    """The fused Linear + LayerNorm's row statistics computed once for a piece (ValueMLP.hidden_rows) or per
    block of 7 rows give the plain path's logits."""
    import gaatool.nn.mlp as mlp

    monkeypatch.setattr(mlp, "FUSE_MIN_ROWS", 0)  # fused at any size, as for big inference pieces
    model = _crystal(dtype)
    g = torch.Generator().manual_seed(4)
    r = torch.randn(9, 12, 3, generator=g, dtype=dtype)
    types = torch.randn(9, 12, 4, generator=g, dtype=dtype)
    mask = torch.ones(9, 12, dtype=torch.bool)
    mask[4, 7:] = False
    calls = []
    original = mlp.layer_norm_operands
    monkeypatch.setattr(mlp, "layer_norm_operands", lambda x, *a: calls.append(x.shape[0]) or original(x, *a))
    with torch.no_grad():
        once = model(r, types, mask)
        assert calls and min(calls) > attention.BLOCK_ROWS  # statistics of whole pieces, not of blocks
        monkeypatch.setattr(mlp, "ROW_STATS_ONCE", False)
        per_block = model(r, types, mask)
        monkeypatch.setattr(workspace, "ENABLED", False)
        plain = model(r, types, mask)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(once, plain, rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(per_block, plain, rtol=tolerance, atol=tolerance)
