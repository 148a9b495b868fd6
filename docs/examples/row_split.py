"""Rewrite a crystal dataset with its splits drawn as random rows of the pooled replicas (a leaky split).

gaatool's train, validation and test splits are independently generated noisy replicas, as issue 3
asks. A split drawn as random rows of the same replicas instead puts a test particle's neighbours,
the very noisy positions its environment is made of, into the training set. This script makes such a
file from a gaatool dataset (same rows, same split sizes, rows reassigned at random), so the two
protocols can be trained and evaluated with the same commands and compared (docs/crystal.md):

    gaatool data crystals -o clathrates.npz --prototypes cP46-Si,cF136-Si --noise 0.1 --no-steinhardt --seed 0
    python docs/examples/row_split.py clathrates.npz clathrates-rows.npz --seed 0
    gaatool train crystal clathrates.npz -o run_replicas --max-time 1500 --seed 0 --dropout 0 --batch-size 64 --lr 3e-4
    gaatool train crystal clathrates-rows.npz -o run_rows --max-time 1500 --seed 0 --dropout 0 --batch-size 64 --lr 3e-4
    gaatool evaluate crystal run_replicas/best.safetensors clathrates.npz
    gaatool evaluate crystal run_rows/best.safetensors clathrates-rows.npz

The output keeps the dataset's recipe, which no longer rebuilds its splits: ``evaluate --smooth``
checks that and refuses the file. ``train --fresh-noise`` still works on it but trains on fresh
replicas of the recipe, not on the leaky rows, so it is not the comparison above.
"""
from __future__ import annotations

import argparse

import numpy as np

from gaatool.data.store import load_dataset, save_dataset
from gaatool.errors import GaatoolError

SPLITS = ("train", "val", "test")


def row_split(arrays: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """The rows of all splits pooled and dealt out again at random, each split keeping its size."""
    missing = [s for s in SPLITS if f"{s}/labels" not in arrays]
    if missing:
        raise ValueError(f"the dataset has no {', '.join(missing)} split")
    fields = sorted({name.split("/", 1)[1] for name in arrays if name.split("/", 1)[0] in SPLITS})
    pooled = {name: np.concatenate([arrays[f"{s}/{name}"] for s in SPLITS]) for name in fields}
    order = np.random.default_rng(seed).permutation(len(pooled["labels"]))
    ends = np.cumsum([len(arrays[f"{s}/labels"]) for s in SPLITS])[:-1]
    return {f"{split}/{name}": pooled[name][rows]
            for split, rows in zip(SPLITS, np.split(order, ends)) for name in fields}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="gaatool crystal dataset (.npz)")
    parser.add_argument("output", help="dataset to write (.npz)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        arrays, metadata = load_dataset(args.dataset, expected_task="crystal")  # its errors name the file
    except GaatoolError as err:
        raise SystemExit(f"row_split: {err}") from None
    try:
        split = row_split(arrays, args.seed)
    except ValueError as err:
        raise SystemExit(f"row_split: {args.dataset}: {err}") from None
    metadata = dict(metadata)  # the recipe stays: it no longer rebuilds the splits, which its users check
    metadata["split"] = f"rows of the pooled replicas dealt out at random (docs/examples/row_split.py, seed {args.seed})"
    save_dataset(args.output, split, metadata)
    print(f"{args.output}: " + ", ".join(f"{s} {len(split[f'{s}/labels'])} rows" for s in SPLITS))


if __name__ == "__main__":
    main()
