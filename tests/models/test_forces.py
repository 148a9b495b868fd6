import pytest
import torch
from hypothesis import given, strategies as st

from gaatool import testing
from gaatool.models.forces import ForceField


def make(seed, n_blocks=2):
    torch.manual_seed(seed)
    model = ForceField(ForceField.Config(atomic_numbers=[1, 6, 8], n_dim=8, n_blocks=n_blocks,
                                         atom_energy_shift=[-0.5, -38.0, -75.0]))
    return model.double().eval()


def molecule(seed, n=7):
    g = torch.Generator().manual_seed(seed)
    positions = torch.randn(2, n, 3, generator=g, dtype=torch.float64) * 1.5
    types = torch.randint(0, 3, (n,), generator=g).expand(2, n).clone()
    return positions, types


@given(st.integers(0, 1000), st.integers(2, 7))
def test_energy_invariances_and_force_covariance(seed, n):
    model = make(seed)
    positions, types = molecule(seed, n)
    energy = lambda r: model(r, types)[0]
    forces = lambda r: model(r, types)[1]
    testing.assert_rotation_invariant(energy, positions, seed=seed)
    testing.assert_translation_invariant(energy, positions, seed=seed)
    testing.assert_rotation_covariant(forces, positions, seed=seed)
    testing.assert_translation_invariant(forces, positions, seed=seed)
    # permuting atoms (with their types) leaves E unchanged and permutes F
    testing.assert_permutation_invariant(lambda r, t: model(r, t[..., 0])[0], positions, types.unsqueeze(-1), seed=seed)
    testing.assert_permutation_equivariant(lambda r, t: model(r, t[..., 0])[1], positions, types.unsqueeze(-1), seed=seed)


def test_forces_are_minus_finite_difference_gradient():
    model = make(3)
    positions, types = molecule(3, 5)
    energy, forces = model(positions, types)
    h = 1e-6
    numeric = torch.zeros_like(positions)
    for atom in range(5):
        for axis in range(3):
            plus, minus = positions.clone(), positions.clone()
            plus[:, atom, axis] += h
            minus[:, atom, axis] -= h
            numeric[:, atom, axis] = -(model.energy(plus, types) - model.energy(minus, types)) / (2 * h)
    testing.assert_close(forces, numeric, 1e-6, "forces vs -dE/dr")
    # and the net force vanishes (translation invariance)
    assert float(forces.sum(1).abs().max()) < 1e-9


def test_padding_atoms_change_nothing():
    model = make(5)
    positions, types = molecule(5, 6)
    energy, forces = model(positions, types)
    g = torch.Generator().manual_seed(5)
    garbage_r = torch.randn(2, 2, 3, generator=g, dtype=torch.float64) * 1e2
    garbage_t = torch.randint(0, 3, (2, 2), generator=g)
    order = torch.tensor([6, 0, 1, 7, 2, 3, 4, 5])  # padding first and in the middle, not only at the end
    pad_r = torch.cat([positions, garbage_r], 1)[:, order]
    pad_t = torch.cat([types, garbage_t], 1)[:, order]
    real = order < 6
    mask = real.expand(2, 8)
    energy_p, forces_p = model(pad_r, pad_t, mask)
    testing.assert_close(energy_p, energy, 1e-9, "padded energy")
    testing.assert_close(forces_p[:, real], forces, 1e-9, "padded forces")
    assert torch.all(forces_p[:, ~real] == 0)
    # non-finite positions and invalid types in the padding change nothing either
    pad_r[:, ~real] = float("nan")
    pad_t[:, ~real] = -1
    energy_n, forces_n = model(pad_r, pad_t, mask)
    testing.assert_close(energy_n, energy, 1e-9, "NaN-padded energy")
    testing.assert_close(forces_n[:, real], forces, 1e-9, "NaN-padded forces")
    assert torch.all(forces_n[:, ~real] == 0)


def test_training_mode_differentiates_twice():
    model = make(1).train()
    positions, types = molecule(1, 5)
    energy, forces = model(positions, types)
    forces.pow(2).sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_force_inference_leaves_parameters_out_of_autograd_and_restores_them():
    model = make(5)
    positions, types = molecule(5, 6)
    seen, energy_of = [], model.energy

    def recording_energy(*args, **kwargs):
        seen.append([p.requires_grad for p in model.parameters()])
        return energy_of(*args, **kwargs)
    model.energy = recording_energy
    energy, forces = model(positions, types)
    del model.energy
    assert seen and not any(seen[0])  # frozen while forces are computed
    assert all(p.requires_grad for p in model.parameters())  # and restored
    # the same forces as autograd with the parameters in the graph
    r = positions.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model.energy(r, types).sum(), r)
    torch.testing.assert_close(forces, -gradient, rtol=0, atol=1e-12)
    # energies alone still reach the parameters (energy training)
    energy, none = model(positions, types, compute_forces=False)
    assert none is None and energy.requires_grad
    # an error inside restores the flags too (raised where the parameters are frozen, not before)
    seen.clear()

    def failing_energy(*args, **kwargs):
        seen.append([p.requires_grad for p in model.parameters()])
        raise RuntimeError("energy failed")
    model.energy = failing_energy
    with pytest.raises(RuntimeError, match="^energy failed$"):
        model(positions, types)
    del model.energy
    assert seen and not any(seen[0])
    assert all(p.requires_grad for p in model.parameters())
