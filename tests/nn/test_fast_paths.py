"""The speed-ups of issue 6 compute exactly what the tuple-by-tuple model computes.

Each fast path (pairs i <= j for symmetric rank-2 invariants, per-point merge and
join terms, invariants shared through a Geometry, one thread for small inputs,
chunked force inference) is compared with the plain evaluation in float64.
"""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from gaatool.models.crystal import CrystalClassifier
from gaatool.models.backmap import Backmapper
from gaatool.models.forces import ForceField
from gaatool.nn import Geometry, LabeledVectorAttention, Vector2VectorAttention, VectorAttention
from gaatool.nn.attention import PairSum, TupleAttentionBase, TupleSum
from gaatool.nn.chunks import chunk_items, draws_random_numbers, map_chunks
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


def _chunk_case(name: str):
    """A small float64 model of each kind and a batch of 7 items (one with padding)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    if name == "forces":
        model = ForceField(ForceField.Config(n_dim=8, n_blocks=1, attention={
            "merge": "concat", "join": "concat", "score_activation": "swish", "hidden": 8})).double()
        mask = torch.ones(7, 5, dtype=torch.bool)
        mask[3, 4] = False
        inputs = (torch.randn(7, 5, 3, generator=g, dtype=torch.float64) * 1.5, torch.randint(0, 3, (7, 5), generator=g), mask)
        return model, inputs, 5 ** 3
    if name == "crystal":
        model = CrystalClassifier(CrystalClassifier.Config(n_dim=8, attention={"dropout": 0.0, "hidden": 8})).double()
        mask = torch.ones(7, 12, dtype=torch.bool)
        mask[2, 10:] = False
        inputs = (torch.randn(7, 12, 3, generator=g, dtype=torch.float64), torch.randn(7, 12, 4, generator=g, dtype=torch.float64), mask)
        return model, inputs, 12 ** 2
    model = Backmapper(Backmapper.Config(n_dim=8, n_labels=10, attention={"merge": "concat", "join": "concat", "hidden": 8})).double()
    neighbor_mask = torch.ones(7, 6, dtype=torch.bool)
    neighbor_mask[1, 4:] = False
    atom_mask = torch.ones(7, 4, dtype=torch.bool)
    atom_mask[5, 3] = False
    inputs = (torch.randn(7, 6, 3, generator=g, dtype=torch.float64) * 4, torch.randint(0, 20, (7, 6), generator=g),
              torch.randint(0, 20, (7,), generator=g), torch.randint(0, 10, (7, 4), generator=g), neighbor_mask, atom_mask)
    return model, inputs, model.tuples_per_residue(6, 4)


@pytest.mark.parametrize("name", ["forces", "crystal", "backmap"])
def test_models_in_pieces_equal_one_pass(monkeypatch, name):
    # big batches run in cache-sized pieces (nn/chunks.py); results must not depend on it, gradients included
    model, inputs, tuples_per_item = _chunk_case(name)
    model.eval()

    def outputs_and_gradients():
        model.zero_grad()
        out = model(*inputs)
        if name == "forces":  # outputs are energies and their gradients (forces); training runs in one piece
            return out, [out[1]]
        out.square().sum().backward()
        return out, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    whole, whole_grads = outputs_and_gradients()
    monkeypatch.setattr("gaatool.nn.chunks.CPU_CHUNK_TUPLES", 2 * tuples_per_item)  # pieces of 2 items
    monkeypatch.setattr("gaatool.models.backmap.CPU_CHUNK_TUPLES", 2 * tuples_per_item)  # its own budget
    assert chunk_items(tuples_per_item, "cpu") == 2
    method = "_energy_forces" if name == "forces" else "_forward"
    inner, calls = getattr(model, method), []
    monkeypatch.setattr(model, method, lambda *args: calls.append(len(args[0])) or inner(*args))
    pieces, piece_grads = outputs_and_gradients()
    assert sorted(calls) == [1, 2, 2, 2]
    # inference on a multi-core CPU: pieces side by side, one per core
    monkeypatch.setattr("gaatool.nn.chunks.CPU_CHUNK_TUPLES", 10**9)
    monkeypatch.setattr("gaatool.models.backmap.CPU_CHUNK_TUPLES", 10**9)
    monkeypatch.setattr("gaatool.nn.chunks.MIN_PARALLEL_TUPLES", tuples_per_item)
    threads, calls[:] = torch.get_num_threads(), []
    torch.set_num_threads(2)
    try:
        side_by_side, side_grads = outputs_and_gradients()
    finally:
        torch.set_num_threads(threads)
    assert sorted(calls) == [3, 4]
    if name != "forces":  # parameter gradients come from the pieces' own backward passes, side by side
        assert type(side_by_side.grad_fn).__name__ == "_SideBySideBackward"
    for a, b in zip(whole if isinstance(whole, tuple) else (whole,),
                    side_by_side if isinstance(side_by_side, tuple) else (side_by_side,)):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    assert len(side_grads) == len(whole_grads)
    for a, b in zip(whole_grads, side_grads):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
    for a, b in zip(whole if isinstance(whole, tuple) else (whole,), pieces if isinstance(pieces, tuple) else (pieces,)):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    assert len(piece_grads) == len(whole_grads) > 0
    for a, b in zip(whole_grads, piece_grads):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("grad", [False, True])
def test_pieces_side_by_side_equal_one_by_one(grad):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        g = torch.Generator().manual_seed(3)
        x, w = torch.randn(9, 5, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
        w.requires_grad_(True)
        seen = []

        def fn(x):
            seen.append((torch.is_grad_enabled(), torch.get_num_threads()))
            return torch.tanh(x @ w), x.sum(-1)

        with torch.set_grad_enabled(grad):
            side = map_chunks(fn, (x,), 2, parallel=True)
            one = map_chunks(fn, (x,), 2, parallel=False)
        assert torch.get_num_threads() == 2  # restored
        assert {s for s in seen[:5]} == {(grad, 1)} and {s for s in seen[5:]} == {(grad, 2)}
        for a, b in zip(side, one):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        if grad:  # the graph recorded in the workers differentiates as usual
            (ga,) = torch.autograd.grad(side[0].sum(), w)
            (gb,) = torch.autograd.grad(one[0].sum(), w)
            torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-12)

        def broken(x):
            raise ValueError("piece failed")
        with pytest.raises(ValueError, match="piece failed"):
            map_chunks(broken, (x,), 2, parallel=True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_map_chunks_shapes():
    calls = []

    def fn(x, y, none):
        calls.append(len(x))
        assert none is None
        return x * 2, None, y
    x, y = torch.arange(10.0), torch.arange(10.0).reshape(10, 1)
    doubled, nothing, same = map_chunks(fn, (x, y, None), 4)
    assert calls == [4, 4, 2] and nothing is None
    torch.testing.assert_close(doubled, 2 * x)
    torch.testing.assert_close(same, y)
    assert map_chunks(lambda x: x + 1, (x,), 10).tolist() == (x + 1).tolist()
    assert chunk_items(10**9, "cpu") == 1


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


def test_draws_random_numbers():
    crystal = CrystalClassifier(CrystalClassifier.Config(n_dim=8, attention={"dropout": 0.5, "hidden": 8}))
    assert draws_random_numbers(crystal.train()) and not draws_random_numbers(crystal.eval())
    plain = CrystalClassifier(CrystalClassifier.Config(n_dim=8, attention={"dropout": 0.0, "hidden": 8}))
    assert not draws_random_numbers(plain.train())
    assert draws_random_numbers(torch.nn.Sequential(torch.nn.Dropout(0.1)).train())



def test_side_by_side_backward_twice():
    w = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(8, 5, dtype=torch.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = map_chunks(lambda x: torch.tanh(x @ w), (x,), 2, parallel=True, parameters=[w])
    finally:
        torch.set_num_threads(threads)
    assert type(out.grad_fn).__name__ == "_SideBySideBackward"
    (first,) = torch.autograd.grad(out.sum(), w, retain_graph=True)
    (second,) = torch.autograd.grad(out.sum(), w)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.testing.assert_close(first, torch.autograd.grad(torch.tanh(x @ w).sum(), w)[0], rtol=1e-12, atol=1e-12)


def test_chunk_budget_can_be_set_per_model():
    assert chunk_items(144, "cpu", cpu_budget=144 * 10) == 10
    assert chunk_items(144, "cuda", cpu_budget=144 * 10) > 10  # a CPU budget only
    from gaatool.models import backmap
    import gaatool.nn.chunks as chunks
    assert backmap.CPU_CHUNK_TUPLES > chunks.CPU_CHUNK_TUPLES


@pytest.mark.parametrize("n", [1, 5, 12])
def test_pair_path_equals_tuple_path_without_mask(n, monkeypatch):
    # no mask: the short-set softmax and the in-place pair sum
    torch.manual_seed(n)
    layer = VectorAttention(D, rank=2).double().eval()
    r, v, _ = clouds(n, n, batch=3)
    fast = layer(r, v, return_attention=True)
    plain(monkeypatch)
    slow = layer(r, v, return_attention=True)
    torch.testing.assert_close(fast.output, slow.output, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast.attention, slow.attention, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("core_batch, term_batch", [((3,), (3,)), ((1,), (3,)), ((2, 3), (2, 3))])
def test_pair_values_are_core_plus_both_point_terms(core_batch, term_batch):
    from gaatool.nn.attention import PairLayout

    layout = PairLayout.get(5, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    core = torch.randn(*core_batch, layout.pairs, D, dtype=torch.float64, generator=g, requires_grad=True)
    term = torch.randn(*term_batch, 5, D, dtype=torch.float64, generator=g, requires_grad=True)
    expected = core + term[..., layout.first, :] + term[..., layout.second, :]
    values = PairSum(core * 1.0, term, layout).materialize()  # core * 1.0: the object's own tensor
    torch.testing.assert_close(values, expected, rtol=0, atol=1e-14)
    weights = torch.randn(expected.shape, dtype=torch.float64, generator=g)
    grads = torch.autograd.grad((values * weights).sum(), (core, term))
    torch.testing.assert_close(grads, torch.autograd.grad((expected * weights).sum(), (core, term)))


@pytest.mark.parametrize("shape", [(4, 3, 12), (2, 5), (3, 1)])
def test_short_set_softmax_equals_torch_softmax(shape):
    from gaatool.nn.masking import SHORT_SET, masked_softmax

    assert shape[-1] < SHORT_SET
    scores = (torch.randn(*shape, dtype=torch.float64) * 30).requires_grad_(True)
    weights = masked_softmax(scores, None, 1)
    torch.testing.assert_close(weights, torch.softmax(scores, -1), rtol=1e-14, atol=1e-15)
    probe = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad((weights * probe).sum(), scores)[0],
                               torch.autograd.grad((torch.softmax(scores, -1) * probe).sum(), scores)[0])
    with torch.no_grad():  # the in-place version
        torch.testing.assert_close(masked_softmax(scores, None, 1), torch.softmax(scores, -1), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("model_name", ["crystal", "backmap"])
def test_relu_bias_moved_into_the_last_layer_changes_no_result(monkeypatch, model_name, small_backmap_batch):
    import gaatool.nn.attention as attention
    import gaatool.nn.mlp as mlp

    # the value nets in blocks of rows with their fused layer norm, as for big pieces
    monkeypatch.setattr(attention, "BLOCK_ROWS", 40)
    monkeypatch.setattr(mlp, "FUSE_MIN_ROWS", 1)
    moved = []
    original = mlp.ValueMLP.hidden_rows_bias_moved

    def recording(self, x):
        result = original(self, x)
        moved.append(result[1] is not None)
        return result

    monkeypatch.setattr(mlp.ValueMLP, "hidden_rows_bias_moved", recording)
    torch.manual_seed(0)
    if model_name == "crystal":
        model = CrystalClassifier(CrystalClassifier.Config(attention={"dropout": 0.5})).double().eval()
        g = torch.Generator().manual_seed(1)
        mask = torch.ones(6, 12, dtype=torch.bool)
        mask[1, 8:] = False
        inputs = (torch.randn(6, 12, 3, generator=g, dtype=torch.float64),
                  torch.randn(6, 12, 4, generator=g, dtype=torch.float64), mask)
    else:
        model = Backmapper(Backmapper.Config(n_dim=8, attention={"hidden": 16, "dropout": 0.5})).double().eval()
        inputs = small_backmap_batch(torch.float64)
    with torch.no_grad():
        for module in model.modules():  # layer norms start with zero bias: make the moved bias matter
            if isinstance(module, torch.nn.LayerNorm):
                module.bias.normal_()
        monkeypatch.setattr(attention, "FOLD_RELU_BIAS", False)
        reference = model(*inputs)
        monkeypatch.setattr(attention, "FOLD_RELU_BIAS", True)
        result = model(*inputs)
    folded = [m for m in model.modules() if "relu_bias_fold" in m.__dict__.get("_derived_while_frozen", {})]
    assert folded  # the score nets (eval-mode dropout between ReLU and the last layer) took that path
    assert any(moved)  # and value nets
    torch.testing.assert_close(result, reference, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # the moved biases are kept between calls: a changed bias must be seen
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.bias.normal_()
        monkeypatch.setattr(attention, "FOLD_RELU_BIAS", False)
        reference = model(*inputs)
        monkeypatch.setattr(attention, "FOLD_RELU_BIAS", True)
        torch.testing.assert_close(model(*inputs), reference, rtol=1e-12, atol=1e-12)
    with torch.enable_grad():  # recording a graph: the modules as they are
        model.zero_grad()
        model(*inputs).sum().backward()


@pytest.mark.parametrize("per_worker, sizes", [(False, [256] * 4), (True, [512, 512])])
def test_pieces_side_by_side_share_the_budget_unless_each_gets_it(monkeypatch, per_worker, sizes):
    """1024 clouds of 144 tuples on 2 cores with a budget of 131072 tuples: shared, 2 pieces in flight of ~455
    clouds, evened out to 4 of 256; per worker, 2 of 512 (the crystal model's inference)."""
    from gaatool.nn import chunks

    seen = []

    def fn(x):
        seen.append(len(x))
        return x * 2

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.zeros(1024, 12, 3)
        with torch.no_grad():
            out = chunks.run_in_pieces(fn, (x,), 144, parallel=True, cpu_budget=131072, budget_per_worker=per_worker)
    finally:
        torch.set_num_threads(before)
    assert sorted(seen) == sorted(sizes) and out.shape == x.shape
