"""Per-piece random streams: dropout in pieces side by side draws the same masks as one by one, every time."""
import pytest
import torch

from gaatool.models.backmap import Backmapper
from gaatool.models.crystal import CrystalClassifier
from gaatool.nn.chunks import draws_unstreamed_random_numbers, map_chunks
from gaatool.nn.mlp import FastDropout, random_bytes
from gaatool.nn.streams import current_generator, in_piece_streams, piece_seeds, piece_stream


def test_piece_stream_is_per_thread_and_restored():
    assert current_generator() is None
    with piece_stream(5):
        first = random_bytes(torch.Size([64]))
        with piece_stream(6):
            inner = random_bytes(torch.Size([64]))
        after = random_bytes(torch.Size([64]))
    assert current_generator() is None
    with piece_stream(5):
        again = random_bytes(torch.Size([128]))
    # the inner stream did not consume the outer one's numbers
    assert torch.equal(torch.cat([first, after]), again)
    assert not torch.equal(first, inner)


def test_piece_seeds_come_from_the_global_generator_or_the_enclosing_stream():
    torch.manual_seed(0)
    a = piece_seeds(3)
    torch.manual_seed(0)
    assert piece_seeds(3) == a and len(set(a)) == 3
    state = torch.get_rng_state()
    with piece_stream(1):
        nested = piece_seeds(2)
    assert torch.equal(torch.get_rng_state(), state)  # nested seeds leave the global generator alone
    with piece_stream(1):
        assert piece_seeds(2) == nested


def test_in_piece_streams_pairs_each_piece_with_its_seed():
    torch.manual_seed(4)
    fn, pieces = in_piece_streams(lambda x: x + random_bytes(x.shape).double(), [(torch.zeros(3),), (torch.zeros(2),)])
    assert [len(p) for p in pieces] == [2, 2] and isinstance(pieces[0][0], int)
    outs = [fn(*p) for p in pieces]
    with piece_stream(pieces[1][0]):
        assert torch.equal(outs[1], random_bytes(torch.Size([2])).double())


@pytest.mark.parametrize("grad", [False, True])
def test_dropout_pieces_side_by_side_equal_one_by_one(two_threads, grad):
    dropout = FastDropout(0.5).train()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(9, 40, generator=g, dtype=torch.float64)
    w = torch.randn(40, 40, generator=g, dtype=torch.float64, requires_grad=grad)

    def fn(x):
        return dropout(torch.tanh(x @ w))

    results = []
    for parallel in (True, False, True):
        torch.manual_seed(7)
        with torch.set_grad_enabled(grad):
            out = map_chunks(fn, (x,), 2, parallel=parallel, parameters=[w] if grad else [], random_streams=True)
        results.append((out, torch.get_rng_state()))
        if grad:
            results[-1] += torch.autograd.grad(out.square().sum(), w)
    for other in results[1:]:
        assert torch.equal(results[0][0], other[0]) and torch.equal(results[0][1], other[1])
        if grad:  # summed piece by piece side by side: equal up to rounding
            torch.testing.assert_close(results[0][2], other[2], rtol=1e-12, atol=1e-12)
    out = results[0][0]
    assert 0.3 < float((out == 0).double().mean()) < 0.7  # masks drawn: about half the values dropped
    # the pieces' masks differ from each other (independent streams, not one stream restarted)
    assert not torch.equal(out[:2] == 0, out[2:4] == 0)
    torch.manual_seed(8)
    with torch.set_grad_enabled(grad):
        assert not torch.equal(map_chunks(fn, (x,), 2, parallel=True, random_streams=True), out)


def _training_case(name):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    if name == "crystal":
        model = CrystalClassifier(CrystalClassifier.Config(n_dim=8, attention={"dropout": 0.5, "hidden": 8}))
        mask = torch.ones(7, 12, dtype=torch.bool)
        mask[2, 10:] = False
        inputs = (torch.randn(7, 12, 3, generator=g, dtype=torch.float64),
                  torch.randn(7, 12, 4, generator=g, dtype=torch.float64), mask)
        return model.double().train(), inputs, 12 ** 2
    model = Backmapper(Backmapper.Config(n_dim=8, n_labels=10, attention={
        "merge": "concat", "join": "concat", "hidden": 8, "dropout": 0.5}))
    neighbor_mask = torch.ones(7, 6, dtype=torch.bool)
    neighbor_mask[1, 4:] = False
    atom_mask = torch.ones(7, 4, dtype=torch.bool)
    inputs = (torch.randn(7, 6, 3, generator=g, dtype=torch.float64) * 4, torch.randint(0, 20, (7, 6), generator=g),
              torch.randint(0, 20, (7,), generator=g), torch.randint(0, 10, (7, 4), generator=g), neighbor_mask,
              atom_mask)
    return model.double().train(), inputs, model.tuples_per_residue(6, 4)


@pytest.mark.parametrize("name", ["crystal", "backmap"])
def test_models_training_with_dropout_run_pieces_side_by_side(two_threads, monkeypatch, name):
    model, inputs, tuples_per_item = _training_case(name)
    assert not draws_unstreamed_random_numbers(model)
    module = f"gaatool.models.{name}"

    def step():
        model.zero_grad()
        torch.manual_seed(21)
        out = model(*inputs)
        out.square().sum().backward()
        return out, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    # side by side: 7 items in pieces of 4 and 3, one per core
    monkeypatch.setattr("gaatool.nn.chunks.MIN_PARALLEL_TUPLES", tuples_per_item)
    monkeypatch.setattr("gaatool.nn.chunks.CPU_CHUNK_TUPLES", 10**9)
    monkeypatch.setattr(f"{module}.CPU_CHUNK_TUPLES", 10**9, raising=False)
    monkeypatch.setattr("gaatool.models.backmap.TRAIN_CPU_CHUNK_TUPLES", 10**9)
    side, side_grads = step()
    assert type(side.grad_fn).__name__ == "_SideBySideBackward"
    again, again_grads = step()
    assert torch.equal(side, again) and all(torch.equal(a, b) for a, b in zip(side_grads, again_grads))
    # one after another in the same pieces (4 and 3): the same masks, the same outputs and gradients
    monkeypatch.setattr("gaatool.nn.chunks.draws_unstreamed_random_numbers", lambda model: True)
    monkeypatch.setattr("gaatool.nn.chunks.CPU_CHUNK_TUPLES", 4 * tuples_per_item)
    monkeypatch.setattr("gaatool.models.backmap.TRAIN_CPU_CHUNK_TUPLES", 4 * tuples_per_item)
    serial, serial_grads = step()
    assert type(serial.grad_fn).__name__ != "_SideBySideBackward"
    torch.testing.assert_close(serial, side, rtol=1e-12, atol=1e-12)
    assert len(serial_grads) == len(side_grads) > 0
    for a, b in zip(serial_grads, side_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
