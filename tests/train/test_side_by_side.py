"""Training steps whose pieces run side by side on the CPU cores: same gradients, same step, when (not) used."""
import copy

import numpy as np
import pytest
import torch

from gaatool.models.forces import ForceField
from gaatool.nn.chunks import gradients_side_by_side
from gaatool.tasks.forces.train import MIN_PIECE_TUPLES, split_frames
from gaatool.train import training_step
from gaatool.train.engine import _core_pieces


def _force_field(dropout=0.0):
    with torch.random.fork_rng():
        torch.manual_seed(3)
        config = ForceField.Config(atomic_numbers=[1, 6, 8], n_dim=8, n_blocks=2, energy_scale=20.0,
                                   atom_energy_shift=[-300.0, -20000.0, -47000.0],
                                   attention={**ForceField.Config().attention, "dropout": dropout})
        return ForceField(config).double().train()


def _batch(frames=12, atoms=9, seed=0):
    rng = np.random.default_rng(seed)
    positions = torch.as_tensor(rng.normal(size=(frames, atoms, 3)) * 1.5)
    types = torch.as_tensor(rng.integers(0, 3, size=atoms)).expand(frames, -1).contiguous()
    return {"positions": positions, "types": types, "forces": torch.as_tensor(rng.normal(size=(frames, atoms, 3))),
            "energies": torch.as_tensor(rng.normal(size=frames))}


def _loss_fn(model):
    def loss(batch):  # the force task's loss: forces by autograd, differentiated again by the step
        with torch.enable_grad():
            energy, forces = model(batch["positions"], batch["types"], include_shift=False)
        error = forces - batch["forces"]
        return error.pow(2).mean() + 0.1 * (energy - batch["energies"]).pow(2).mean(), \
            {"mae": float(error.detach().abs().mean())}
    return loss


def test_gradients_of_pieces_equal_the_whole_batch(two_threads):
    model, batch = _force_field(), _batch(frames=7)
    loss_fn = _loss_fn(model)
    parameters = [p for p in model.parameters()]
    whole, metrics = loss_fn(batch)
    expected = torch.autograd.grad(whole, parameters, allow_unused=True)
    pieces = split_frames(batch, 2)
    assert [len(piece["positions"]) for piece, _ in pieces] == [4, 3]
    assert sum(weight for _, weight in pieces) == pytest.approx(1.0)
    total, piece_metrics, grads = gradients_side_by_side(loss_fn, pieces, parameters)
    assert float(total) == pytest.approx(float(whole.detach()), rel=1e-12)
    assert sum(w * m["mae"] for (_, w), m in zip(pieces, piece_metrics)) == pytest.approx(metrics["mae"], rel=1e-12)
    for got, want in zip(grads, expected):
        assert (got is None) == (want is None)
        if want is not None:
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # summed in piece order: the same bits every time, whichever thread finishes first
    again = gradients_side_by_side(loss_fn, pieces, parameters)[2]
    assert all(a is None and b is None or torch.equal(a, b) for a, b in zip(grads, again))
    # a piece that the loss does not reach leaves its gradient None (not zero)
    extra = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    assert gradients_side_by_side(loss_fn, pieces, parameters + [extra])[2][-1] is None


def test_training_step_side_by_side_equals_whole_batch(two_threads):
    serial_model, batch = _force_field(), _batch()
    parallel_model = copy.deepcopy(serial_model)
    results = []
    for model, split in ((serial_model, None), (parallel_model, split_frames)):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        assert (_core_pieces(model, batch, split) is not None) == (split is not None)
        results.append([training_step(model, optimizer, _loss_fn(model), batch, split) for _ in range(3)])
    for (serial_loss, serial_metrics), (parallel_loss, parallel_metrics) in zip(*results):
        assert parallel_loss == pytest.approx(serial_loss, rel=1e-10)
        assert parallel_metrics["mae"] == pytest.approx(serial_metrics["mae"], rel=1e-10)
    # Adam divides by the gradients' own size, so rounding in near-zero components moves a parameter
    # by up to ~1e-9 here (learning rate 1e-2); a different gradient would move it by ~1e-2
    for a, b in zip(serial_model.parameters(), parallel_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7)


def test_when_a_batch_stays_whole(two_threads):
    model, batch = _force_field(), _batch()
    assert _core_pieces(model, batch, split_frames) is not None
    assert _core_pieces(model, batch, None) is None  # the task cannot split
    # dropout masks come from per-piece random streams: side by side too; torch's own dropout keeps one order
    assert _core_pieces(_force_field(dropout=0.5), batch, split_frames) is not None
    assert _core_pieces(torch.nn.Sequential(torch.nn.Dropout(0.5)).train(), batch, split_frames) is None
    with_norm = torch.nn.Sequential(torch.nn.BatchNorm1d(3)).train()
    assert _core_pieces(with_norm, batch, split_frames) is None  # batch statistics would be per piece
    torch.set_num_threads(1)
    assert _core_pieces(model, batch, split_frames) is None  # one core
    # too small to pay: fewer tuples per piece than MIN_PIECE_TUPLES
    atoms = 9
    frames = 2 * MIN_PIECE_TUPLES // atoms ** 3
    assert split_frames(_batch(frames=frames, atoms=atoms), 2) is None
    assert len(split_frames(_batch(frames=frames + 2, atoms=atoms), 2)) == 2
    assert len(split_frames(_batch(frames=64, atoms=atoms), 8)) == 8


def test_training_step_with_dropout_side_by_side_repeats(two_threads):
    # each piece draws its masks from a stream seeded in piece order: the same step every time
    batch, runs = _batch(), []
    for _ in range(2):
        model = _force_field(dropout=0.5)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        torch.manual_seed(11)
        losses = [training_step(model, optimizer, _loss_fn(model), batch, split_frames)[0] for _ in range(2)]
        runs.append((losses, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    # and the masks are drawn: another seed, another step
    model = _force_field(dropout=0.5)
    torch.manual_seed(12)
    other = training_step(model, torch.optim.Adam(model.parameters(), lr=1e-2), _loss_fn(model), batch, split_frames)[0]
    assert other != runs[0][0][0]


def test_first_step_of_a_kind_runs_its_pieces_one_after_another(two_threads, monkeypatch):
    # kernels compiled on first use (swish's second derivative) compile while no other piece computes
    import gaatool.nn.chunks as chunks

    monkeypatch.setattr(chunks, "_STEPPED_KINDS", set())
    workers, run = [], chunks._run_side_by_side
    monkeypatch.setattr(chunks, "_run_side_by_side", lambda fn, items, n: workers.append(n) or run(fn, items, n))
    model, batch = _force_field(), _batch(frames=7)
    loss_fn, parameters, pieces = _loss_fn(model), list(model.parameters()), split_frames(batch, 2)
    first = gradients_side_by_side(loss_fn, pieces, parameters)[2]
    second = gradients_side_by_side(loss_fn, pieces, parameters)[2]
    assert workers == [1, 2]
    assert all(a is None and b is None or torch.equal(a, b) for a, b in zip(first, second))
