import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gaatool.errors import ConfigError
from gaatool.tasks.crystal.prototypes import prototype_cell
from gaatool.tasks.crystal.steinhardt import (
    DEFAULT_L_VALUES,
    DEFAULT_NEIGHBORS,
    steinhardt_feature_names,
    steinhardt_features,
    steinhardt_features_from_bonds,
)
from gaatool.testing import assert_rotation_invariant, assert_translation_invariant

# Literature values of q_4, q_6 for perfect lattices (Steinhardt et al. 1983; Mickel et al. 2013).
KNOWN = {
    "cF4-Cu": (12, 0.19094, 0.57452),
    "cI2-W": (8, 0.50918, 0.62854),
}


def crystal(name, counts=(4, 4, 4)):
    cell = prototype_cell(name).with_unit_nearest_neighbor().supercell(counts)
    return cell.positions, cell.lattice, cell.types


def column(names, wanted):
    return names.index(wanted)


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_answers_for_perfect_lattices(name):
    k, q4, q6 = KNOWN[name]
    positions, lattice, types = crystal(name)
    features = steinhardt_features(positions, lattice, types, neighbors=(k,), l_values=(4, 6))
    names = steinhardt_feature_names((k,), (4, 6))
    np.testing.assert_allclose(features[:, column(names, f"like_k{k}_q4")], q4, atol=1e-5)
    np.testing.assert_allclose(features[:, column(names, f"like_k{k}_q6")], q6, atol=1e-5)
    # One particle type: the unlike set is empty, hence 0.
    assert np.all(features[:, column(names, f"unlike_k{k}_q4")] == 0)


def test_cscl_like_and_unlike_sets():
    positions, lattice, types = crystal("cP2-CsCl")
    features = steinhardt_features(positions, lattice, types, neighbors=(8, 12), l_values=(4, 6))
    names = steinhardt_feature_names((8, 12), (4, 6))
    # The 8 nearest are all of the other type: unlike = bcc first shell, like empty.
    np.testing.assert_allclose(features[:, names.index("unlike_k8_q4")], KNOWN["cI2-W"][1], atol=1e-5)
    assert np.all(features[:, names.index("like_k8_q6")] == 0)
    # Of the 12 nearest, the 4 like ones are second-shell (octahedral) neighbours.
    assert np.all(features[:, names.index("like_k12_q4")] > 0)
    # Same geometry, one type: no unlike signal, and like = all 12 bonds.
    single = steinhardt_features(positions, lattice, np.zeros_like(types), neighbors=(8, 12), l_values=(4, 6))
    assert np.all(single[:, names.index("unlike_k12_q4")] == 0)
    assert not np.allclose(single, features)


def noisy_binary(seed, n_cells=(3, 3, 3), sigma=0.08):
    positions, lattice, types = crystal("cF8-ZnS", n_cells)
    rng = np.random.default_rng(seed)
    return positions + rng.normal(0, sigma, positions.shape), lattice, types


def test_numpy_matches_freud_reference():
    positions, lattice, types = noisy_binary(0)
    fast = steinhardt_features(positions, lattice, types)
    reference = steinhardt_features(positions, lattice, types, method="freud")
    assert fast.shape == reference.shape == (len(positions), 2 * len(DEFAULT_NEIGHBORS) * len(DEFAULT_L_VALUES))
    # freud works in float32; its worst cases differ by ~1e-4 at l = 12.
    np.testing.assert_allclose(fast, reference, atol=1e-3)
    assert np.median(np.abs(fast - reference)) < 1e-5


def test_numpy_matches_scipy_spherical_harmonics():
    special = pytest.importorskip("scipy.special")
    if not hasattr(special, "sph_harm_y"):
        pytest.skip("scipy too old for sph_harm_y")
    rng = np.random.default_rng(4)
    r_ij = rng.normal(size=(40, 6, 3))
    same = rng.uniform(size=(40, 6)) < 0.6
    ks, ls = (3, 6), (0, 1, 5, 12)
    features = steinhardt_features_from_bonds(r_ij, same, ks, ls)
    expected = []
    for wanted in (True, False):
        for k in ks:
            block = np.zeros((40, len(ls)))
            for i in range(40):
                bonds = r_ij[i, :k][same[i, :k] == wanted]
                if len(bonds) == 0:
                    continue
                u = bonds / np.linalg.norm(bonds, axis=1, keepdims=True)
                theta, phi = np.arccos(u[:, 2]), np.arctan2(u[:, 1], u[:, 0])
                for c, l in enumerate(ls):
                    qlm = np.array([special.sph_harm_y(l, m, theta, phi).mean() for m in range(-l, l + 1)])
                    block[i, c] = np.sqrt(4 * np.pi / (2 * l + 1) * np.sum(np.abs(qlm) ** 2))
            expected.append(block)
    np.testing.assert_allclose(features, np.concatenate(expected, axis=1), atol=2e-6)
    # q_0 is 1 for a non-empty set and 0 for an empty one.
    np.testing.assert_allclose(features[:, 0], same[:, :3].any(axis=1), atol=1e-6)


@given(seed=st.integers(0, 2**16), reflect=st.booleans())
def test_rotation_and_translation_invariant(seed, reflect):
    rng = np.random.default_rng(seed)
    positions = torch.from_numpy(rng.normal(size=(30, 3)) * 2)
    types = rng.integers(0, 2, 30)

    def features(p):
        return torch.from_numpy(steinhardt_features(p.numpy(), None, types).astype(np.float64))

    assert_rotation_invariant(features, positions, atol=2e-5, seed=seed, reflect=reflect)
    assert_translation_invariant(features, positions, atol=2e-5, seed=seed)


def test_rotation_invariant_in_a_rotated_periodic_box():
    positions, lattice, types = noisy_binary(1)
    rotation, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))
    original = steinhardt_features(positions, lattice, types)
    rotated = steinhardt_features(positions @ rotation.T, lattice @ rotation.T, types)
    np.testing.assert_allclose(rotated, original, atol=2e-5)


def test_permutation_equivariant_and_deterministic():
    positions, lattice, types = noisy_binary(3)
    order = np.random.default_rng(0).permutation(len(positions))
    original = steinhardt_features(positions, lattice, types)
    permuted = steinhardt_features(positions[order], lattice, types[order])
    np.testing.assert_allclose(permuted, original[order], atol=1e-6)
    np.testing.assert_array_equal(steinhardt_features(positions, lattice, types), original)
    assert original.dtype == np.float32


def test_names_and_errors():
    names = steinhardt_feature_names()
    assert len(names) == 110 and names[0] == "like_k4_q2" and names[-1] == "unlike_k12_q12"
    r_ij = np.random.default_rng(0).normal(size=(5, 6, 3))
    same = np.ones((5, 6), bool)
    with pytest.raises(ConfigError, match="exceeds the 6 neighbours"):
        steinhardt_features_from_bonds(r_ij, same, neighbors=(4, 8))
    with pytest.raises(ConfigError, match="unknown Steinhardt method"):
        steinhardt_features_from_bonds(r_ij, same, neighbors=(4,), method="magic")
    with pytest.raises(ConfigError, match="positive"):
        steinhardt_feature_names(neighbors=(0,))
    with pytest.raises(ValueError, match="must be"):
        steinhardt_features_from_bonds(r_ij, same[:, :3], neighbors=(2,))
