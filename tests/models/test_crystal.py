import torch
from hypothesis import given, strategies as st

from gaatool import testing
from gaatool.models.crystal import CrystalClassifier, SteinhardtMLP
from gaatool.models.registry import build_model, model_spec


def make(seed, **attention):
    torch.manual_seed(seed)
    config = CrystalClassifier.Config(n_classes=5, n_type_features=4, n_dim=8, attention={"dropout": 0.5, **attention})
    return CrystalClassifier(config).double().eval()


def environments(seed, k=12, batch=3):
    g = torch.Generator().manual_seed(seed)
    types = torch.randint(0, 2, (batch, k + 1), generator=g)
    onehot = torch.nn.functional.one_hot(types, 2).double()
    t_i, t_j = onehot[:, :1], onehot[:, 1:]
    return torch.randn(batch, k, 3, generator=g, dtype=torch.float64), torch.cat([t_i - t_j, t_i + t_j], -1)


@given(st.integers(0, 1000), st.integers(2, 12), st.sampled_from([1, 2, 3]), st.sampled_from(["single", "full"]),
       st.sampled_from(["mean", "concat"]))
def test_classifier_symmetries(seed, k, rank, mode, merge):
    model = make(seed, rank=rank, invariant_mode=mode, merge=merge, join=merge)
    r, v = environments(seed, k)
    # the logits must depend on the bond vectors, or every check below holds trivially
    bent = r + 0.3 * torch.randn(r.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=r.dtype)
    assert (model(bent, v) - model(r, v)).abs().max() > 1e-6, "logits do not depend on the geometry"
    testing.assert_rotation_invariant(lambda r: model(r, v), r, seed=seed)
    testing.assert_permutation_invariant(lambda r, v: model(r, v), r, v, seed=seed)
    testing.assert_padding_invariant(model, r, v, seed=seed, per_point_output=False)


def test_registry_round_trip_and_baseline():
    model = make(0)
    rebuilt = build_model(model_spec(model))
    assert isinstance(rebuilt, CrystalClassifier) and rebuilt.config == model.config
    baseline = SteinhardtMLP(SteinhardtMLP.Config(n_classes=3, n_features=7)).eval()
    assert baseline(torch.randn(4, 7)).shape == (4, 3)
