"""Weights folded once while frozen (nn/frozen.py): kept while nothing changes, computed again when anything does."""
import torch
from torch import nn

from gaatool.models.forces import ForceField
from gaatool.nn import frozen
from gaatool.nn.frozen import derived_while_frozen, frozen_parameters


def test_kept_while_frozen_and_recomputed_after_a_change():
    layer = nn.Linear(3, 2)
    calls = []

    def fold():
        calls.append(1)
        return layer.weight * 2

    with frozen_parameters(layer):
        first = derived_while_frozen(layer, "w2", list(layer.parameters()), fold)
        assert derived_while_frozen(layer, "w2", list(layer.parameters()), fold) is first and len(calls) == 1
    # trainable and recording a graph: never kept (the graph must reach the parameters)
    derived_while_frozen(layer, "w2", list(layer.parameters()), fold)
    assert len(calls) == 2
    with torch.no_grad():
        layer.weight.add_(1.0)  # an optimiser step: a new version
        kept = derived_while_frozen(layer, "w2", list(layer.parameters()), fold)
        torch.testing.assert_close(kept, layer.weight * 2)
        assert derived_while_frozen(layer, "w2", list(layer.parameters()), fold) is kept and len(calls) == 3
    layer.double()  # new storage and dtype
    with torch.no_grad():
        assert derived_while_frozen(layer, "w2", list(layer.parameters()), fold).dtype == torch.float64


def test_force_predictions_follow_weight_changes():
    """Frozen force inference (the folded weights kept between calls) after an in-place weight update gives what a
    model built with the updated weights gives, and the same as with keeping switched off."""
    torch.manual_seed(0)
    model = ForceField(ForceField.Config(n_dim=8, n_blocks=2)).double().eval()
    positions = torch.randn(2, 5, 3, dtype=torch.float64) * 1.5
    types = torch.tensor([[0, 1, 2, 0, 0]] * 2)
    model(positions, types)  # folds and keeps
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1.1)
    energy, forces = model(positions, types)
    fresh = ForceField(model.config).double().eval()
    fresh.load_state_dict(model.state_dict())
    expected_energy, expected_forces = fresh(positions, types)
    torch.testing.assert_close(energy, expected_energy)
    torch.testing.assert_close(forces, expected_forces)
    frozen.KEEP_DERIVED = False
    try:
        torch.testing.assert_close(model(positions, types)[1], forces)
    finally:
        frozen.KEEP_DERIVED = True
