"""How well can anything tell the two clathrates apart at noise 0.1? A classifier that is not a network.

The pretrained crystal model's remaining errors are mostly cP46-Si against cF136-Si at noise 0.1
(docs/crystal.md). This script classifies the same noisy 12-neighbour environments by template
matching: each environment is aligned (rotation and translation, Kabsch, alternating with an optimal
assignment of its 12 neighbours to the ideal site's 20 nearest, from 24 starting rotations) to every
site of both ideal clathrate cells and their mirror images, and labelled with the class of the best
Gaussian likelihood (sum of squared deviations over 2 sigma^2, plus the log frequency of the site).
The likelihood is taken at the best fit, or summed over the distinct local best fits (a crude
stand-in for integrating over orientations and assignments). It needs no training and uses what the
network sees (the 12 bond vectors; both clathrates are one-type cells), so its accuracy is a reference for the network's: if it did much better, the network
would be far from what the data allow.

    gaatool data crystals -o clathrates.npz --prototypes cP46-Si,cF136-Si --noise 0.1 --no-steinhardt --seed 0
    python docs/examples/clathrate_template_matching.py clathrates.npz --limit 1000

Prints the accuracy per class on the dataset's test split (the first --limit environments of each
class). One core: ~0.1 s per environment.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

from gaatool.data.neighbors import nearest_neighbor_distance, nearest_neighbors
from gaatool.data.store import load_dataset
from gaatool.errors import GaatoolError
from gaatool.tasks.crystal.dataset import add_noise, perfect_crystal
from gaatool.tasks.crystal.prototypes import prototype_cell

TEMPLATE_NEIGHBOURS = 20  # the noisy 12 nearest may come from beyond the ideal 12th neighbour


def site_templates(name: str) -> list[tuple[np.ndarray, float]]:
    """(ideal neighbour vectors (20, 3), frequency of the site) for every distinct site, and its mirror image."""
    supercell, _ = perfect_crystal(prototype_cell(name), 2048, TEMPLATE_NEIGHBOURS)
    _, r_ij = nearest_neighbors(supercell.positions, supercell.lattice, TEMPLATE_NEIGHBOURS)
    profiles = np.round(np.linalg.norm(r_ij, axis=-1), 3)
    _, first, counts = np.unique(profiles, axis=0, return_index=True, return_counts=True)
    templates = []
    for index, count in zip(first, counts):
        frequency = count / len(r_ij)
        templates += [(r_ij[index], frequency / 2), (-r_ij[index], frequency / 2)]  # inversion = mirror x rotation
    return templates


def kabsch(observed: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and translation t minimising |observed R^T + t - target|^2."""
    mean_o, mean_t = observed.mean(0), target.mean(0)
    u, _, vt = np.linalg.svd((observed - mean_o).T @ (target - mean_t))
    d = np.sign(np.linalg.det(u @ vt))
    rotation = (u @ np.diag([1.0, 1.0, d]) @ vt).T
    return rotation, mean_t - mean_o @ rotation.T


def local_fits(observed: np.ndarray, template: np.ndarray, starts: list[np.ndarray]) -> np.ndarray:
    """Sums of squared deviations of ``observed`` (12, 3) from a subset of ``template`` at the distinct
    local minima over rotations, translations and assignments reached from the starting rotations."""
    found = set()
    for rotation in starts:
        translation = np.zeros(3)
        previous = None
        for _ in range(6):
            moved = observed @ rotation.T + translation
            cost = ((moved[:, None, :] - template[None, :, :]) ** 2).sum(-1)
            rows, cols = linear_sum_assignment(cost)
            ssd = float(cost[rows, cols].sum())
            if previous is not None and np.array_equal(cols, previous):
                break
            previous = cols
            rotation, translation = kabsch(observed[rows], template[cols])
        found.add(round(ssd, 6))
    return np.array(sorted(found))


def starting_rotations(observed: np.ndarray, template: np.ndarray) -> list[np.ndarray]:
    """Rotations aligning the 4 nearest observed bonds to the template's 4 nearest, in all 24 orders."""
    from itertools import permutations

    near_o = observed[np.argsort(np.linalg.norm(observed, axis=-1))[:4]]
    near_t = template[:4]
    return [kabsch(near_o, near_t[list(order)])[0] for order in permutations(range(4))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--limit", type=int, default=1000, help="environments per class")
    parser.add_argument("--sigma", type=float, default=0.1, help="noise per coordinate (lattice units)")
    args = parser.parse_args()
    try:
        data, metadata = load_dataset(args.dataset, expected_task="crystal")
    except GaatoolError as err:
        raise SystemExit(f"clathrate_template_matching: {err}") from None
    names = ["cP46-Si", "cF136-Si"]
    if metadata.get("class_names") != names:
        raise SystemExit(f"clathrate_template_matching: {args.dataset} must hold exactly the classes {names} "
                         f"(it has {metadata.get('class_names')}); make it with the command in this script's help")
    r_ij, labels = data["test/r_ij"].astype(np.float64), data["test/labels"]
    templates = {name: site_templates(name) for name in names}
    # the dataset's unit is each noisy copy's median nearest-neighbour distance: back to lattice units
    rng = np.random.default_rng(1)
    factors = []
    for name in names:
        supercell, _ = perfect_crystal(prototype_cell(name), 2048, 12, args.sigma)
        factors.append(nearest_neighbor_distance(add_noise(supercell.positions, args.sigma, rng), supercell.lattice))
    unit = float(np.mean(factors))
    print(f"noisy median nearest-neighbour distance: {factors} lattice units; sites: "
          f"{ {name: len(t) // 2 for name, t in templates.items()} }")
    start = time.perf_counter()
    for label, name in enumerate(names):
        chosen = np.flatnonzero(labels == label)[:args.limit]
        right = np.zeros(2, dtype=int)
        for index in chosen:
            observed = r_ij[index] * unit
            best, summed = [], []
            for candidate in names:
                terms = np.concatenate([-local_fits(observed, t, starting_rotations(observed, t)) / (2 * args.sigma ** 2)
                                        + np.log(w) for t, w in templates[candidate]])
                best.append(terms.max())
                summed.append(terms.max() + np.log(np.exp(terms - terms.max()).sum()))
            right += np.array([np.argmax(best) == label, np.argmax(summed) == label])
        print(f"{name}: best fit {right[0] / len(chosen):.4f}, summed over fits {right[1] / len(chosen):.4f} "
              f"of {len(chosen)} right ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
