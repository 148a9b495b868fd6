"""Symmetry tests of the backmapping models (float64, 1e-9)."""
from __future__ import annotations

import torch
from hypothesis import given, settings, strategies as st

from gaatool import testing
from gaatool.models.backmap import Backmapper, BackmapTransformer, pair_differences, pair_label_values
from gaatool.models.registry import build_model, model_spec


def make_gaa(seed, rank=2, translation_rank=None, refine_rank=None, merge="concat"):
    torch.manual_seed(seed)
    config = Backmapper.Config(n_dim=6, attention={"merge": merge, "join": merge, "rank": rank, "hidden": 8},
                               translation_rank=translation_rank, refine_rank=refine_rank)
    return Backmapper(config).double().eval()


def make_transformer(seed):
    torch.manual_seed(seed)
    return BackmapTransformer(BackmapTransformer.Config(n_dim=8, n_heads=2)).double().eval()


def inputs(seed, batch=2, k=6, atoms=5):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(batch, k, 3, generator=g, dtype=torch.float64) * 6.0
    types = torch.randint(0, 20, (batch, k), generator=g)
    center = torch.randint(0, 20, (batch,), generator=g)
    labels = torch.randint(0, 187, (batch, atoms), generator=g)
    return r, types, center, labels


@settings(max_examples=8)
@given(st.integers(0, 10_000), st.sampled_from([1, 2]), st.sampled_from([None, 1]), st.sampled_from(["mean", "concat"]))
def test_gaa_rotation_covariance_and_permutations(seed, rank, refine_rank, merge):
    model = make_gaa(seed, rank, refine_rank=refine_rank, merge=merge)
    r, types, center, labels = inputs(seed)
    out = model(r, types, center, labels)
    assert out.shape == (2, 5, 3) and out.abs().max() > 1e-8  # not identically zero
    testing.assert_rotation_covariant(lambda r: model(r, types, center, labels), r, seed=seed)
    # neighbour beads are a set: their order never matters
    testing.assert_permutation_invariant(lambda r, t: model(r, t[..., 0].long(), center, labels),
                                         r, types.unsqueeze(-1).double(), seed=seed)
    # atom labels are a set too: outputs follow their order
    testing.assert_permutation_equivariant(lambda l: model(r, types, center, l[..., 0].long()),
                                           labels.unsqueeze(-1).double(), seed=seed)


@settings(max_examples=6)
@given(st.integers(0, 10_000))
def test_gaa_reflection_and_neighbour_padding(seed):
    model = make_gaa(seed, 2)
    r, types, center, labels = inputs(seed)
    # the covariant vectors include the dual of r_i ^ r_j (a cross product), so a mirror image is not
    # mapped to the mirrored atoms: the model can tell L- from D-amino acids, as it must
    try:
        testing.assert_rotation_covariant(lambda r: model(r, types, center, labels), r, seed=seed, reflect=True)
    except AssertionError:
        pass
    else:
        raise AssertionError("a rank-2 backmapper should be chiral (not covariant under reflections)")
    testing.assert_padding_invariant(
        lambda r, t, mask: model(r, t[..., 0].long(), center, labels, neighbor_mask=mask),
        r, types.unsqueeze(-1).double(), seed=seed, per_point_output=False)


def pad_atoms(labels, n_pad, seed):
    g = torch.Generator().manual_seed(seed)
    garbage = torch.randint(0, 187, (*labels.shape[:-1], n_pad), generator=g)
    mask = torch.cat([torch.ones_like(labels, dtype=torch.bool), torch.zeros_like(garbage, dtype=torch.bool)], -1)
    return torch.cat([labels, garbage], -1), mask


@settings(max_examples=6)
@given(st.integers(0, 10_000))
def test_atom_padding_changes_nothing(seed):
    r, types, center, labels = inputs(seed)
    padded, mask = pad_atoms(labels, 4, seed)
    for model in (make_gaa(seed), make_transformer(seed)):
        plain = model(r, types, center, labels)
        out = model(r, types, center, padded, atom_mask=mask)
        testing.assert_close(out[:, :5], plain, 1e-9, "atom padding")
        assert bool((out[:, 5:] == 0).all())


@settings(max_examples=6)
@given(st.integers(0, 10_000))
def test_transformer_is_permutation_symmetric_but_not_rotation_covariant(seed):
    model = make_transformer(seed)
    r, types, center, labels = inputs(seed)
    testing.assert_permutation_invariant(lambda r, t: model(r, t[..., 0].long(), center, labels),
                                         r, types.unsqueeze(-1).double(), seed=seed)
    testing.assert_permutation_equivariant(lambda l: model(r, types, center, l[..., 0].long()),
                                           labels.unsqueeze(-1).double(), seed=seed)
    testing.assert_padding_invariant(
        lambda r, t, mask: model(r, t[..., 0].long(), center, labels, neighbor_mask=mask),
        r, types.unsqueeze(-1).double(), seed=seed, per_point_output=False)
    try:
        testing.assert_rotation_covariant(lambda r: model(r, types, center, labels), r, seed=seed)
    except AssertionError:
        pass
    else:
        raise AssertionError("the transformer baseline should not be rotation-covariant by construction")


def test_pair_helpers():
    v = torch.tensor([[0.0, 0, 0], [1.0, 2, 3]])
    assert pair_differences(v)[0, 1].tolist() == [1.0, 2.0, 3.0]
    assert pair_differences(v)[1, 0].tolist() == [-1.0, -2.0, -3.0]
    c = torch.tensor([[1.0], [5.0]])
    assert pair_label_values(c)[0, 1].tolist() == [4.0, 6.0]


def test_registry_round_trip_and_ranks():
    model = make_gaa(0, 2, translation_rank=1, refine_rank=1)
    assert model.translate.rank == 1 and model.refine[0].rank == 1 and model.blocks[0].attention.rank == 2
    rebuilt = build_model(model_spec(model))
    assert isinstance(rebuilt, Backmapper) and rebuilt.config == model.config
    baseline = build_model(model_spec(make_transformer(0)))
    assert isinstance(baseline, BackmapTransformer)


def offsets_for(seed, batch=2, k=6):
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randint(-4, 5, (batch, k), generator=g)  # includes 0 (not a sequence neighbour) and |o| > 3


@settings(max_examples=6)
@given(st.integers(0, 10_000))
def test_sequence_offsets_keep_every_symmetry_and_matter(seed):
    torch.manual_seed(seed)
    model = Backmapper(Backmapper.Config(n_dim=6, attention={"merge": "concat", "join": "concat", "hidden": 8},
                                         translation_rank=1, refine_rank=1, sequence_offsets=3)).double().eval()
    r, types, center, labels = inputs(seed)
    offsets = offsets_for(seed)
    out = model(r, types, center, labels, neighbor_offsets=offsets)
    testing.assert_rotation_covariant(lambda r: model(r, types, center, labels, neighbor_offsets=offsets), r, seed=seed)
    # a neighbour's offset travels with it
    features = torch.stack([types, offsets], -1).double()
    testing.assert_permutation_invariant(
        lambda r, f: model(r, f[..., 0].long(), center, labels, neighbor_offsets=f[..., 1].long()), r, features,
        seed=seed)
    testing.assert_padding_invariant(
        lambda r, f, mask: model(r, f[..., 0].long(), center, labels, neighbor_mask=mask,
                                 neighbor_offsets=f[..., 1].long()),
        r, features, seed=seed, per_point_output=False)
    # offsets beyond M and 0 share one embedding; within M they change the prediction
    far = torch.where(offsets.abs() > 3, torch.zeros_like(offsets), offsets)
    testing.assert_close(model(r, types, center, labels, neighbor_offsets=far), out, 1e-12, "far offsets")
    flipped = model(r, types, center, labels, neighbor_offsets=-offsets)
    assert (flipped - out).abs().max() > 1e-6 or not bool(((offsets != 0) & (offsets.abs() <= 3)).any())


def test_sequence_offsets_are_required_when_embedded():
    model = Backmapper(Backmapper.Config(n_dim=6, sequence_offsets=2)).double()
    r, types, center, labels = inputs(0)
    try:
        model(r, types, center, labels)
    except ValueError as err:
        assert "neighbor_offsets" in str(err)
    else:
        raise AssertionError("a model with sequence offsets must refuse inputs without them")
    plain = make_gaa(0)
    testing.assert_close(plain(r, types, center, labels, neighbor_offsets=offsets_for(0)),
                         plain(r, types, center, labels), 0.0, "the paper's model ignores offsets")
    assert build_model(model_spec(model)).config.sequence_offsets == 2
