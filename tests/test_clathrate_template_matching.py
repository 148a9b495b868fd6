"""docs/examples/clathrate_template_matching.py (quoted in docs/crystal.md) labels clean environments right."""
import numpy as np

from gaatool.data.neighbors import nearest_neighbors
from gaatool.tasks.crystal.dataset import perfect_crystal
from gaatool.tasks.crystal.prototypes import prototype_cell


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_template_matching_labels_rotated_slightly_noisy_clathrate_environments(docs_example):
    module = docs_example("clathrate_template_matching")
    names = ["cP46-Si", "cF136-Si"]
    templates = {name: module.site_templates(name) for name in names}
    assert {name: len(t) // 2 for name, t in templates.items()} == {"cP46-Si": 3, "cF136-Si": 3}  # Wyckoff sites
    rng = np.random.default_rng(0)
    sigma = 0.02
    for label, name in enumerate(names):
        supercell, _ = perfect_crystal(prototype_cell(name), 2048, 12)
        _, r_ij = nearest_neighbors(supercell.positions, supercell.lattice, 12)
        for index in rng.choice(len(r_ij), 3, replace=False):
            observed = r_ij[index] @ _random_rotation(rng).T + rng.normal(0, sigma, (12, 3))
            fits = {candidate: min(module.local_fits(observed, t, module.starting_rotations(observed, t)).min()
                                   for t, _ in templates[candidate]) for candidate in names}
            assert min(fits, key=fits.get) == name, fits
            assert fits[name] < 12 * 3 * (3 * sigma) ** 2  # the right site fits within the noise
