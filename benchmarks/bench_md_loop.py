"""Molecular-dynamics-like loop: one frame per call through ForceFieldPredictor, compiled against eager.

    python -m benchmarks.bench_md_loop            # pretrained ethanol model, float64, 200 steps per round

Both predictors (``compile="on"`` and ``"off"``, batch size 1) run in one process, alternating
rounds of single-frame calls on slightly perturbed positions, as an MD driver such as the ASE
calculator does. Prints the time to compile (first call) and ms per step of each round, and the
largest force difference between the two.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from gaatool.tasks.forces.predict import ForceFieldPredictor


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pretrained/forces-ethanol.safetensors")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    eager = ForceFieldPredictor.from_checkpoint(args.model, device="cpu", batch_size=1, compile="off", dtype="float64")
    compiled = ForceFieldPredictor.from_checkpoint(args.model, device="cpu", batch_size=1, compile="on",
                                                   dtype="float64")
    z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])  # ethanol's atoms, C2H6O
    rng = np.random.default_rng(0)
    positions = rng.normal(size=(9, 3)) * 1.2
    start = time.perf_counter()
    compiled.predict(positions[None], z)
    print(f"first compiled call (compiling): {time.perf_counter() - start:.1f} s")

    def loop(predictor: ForceFieldPredictor) -> float:
        start = time.perf_counter()
        for _ in range(args.steps):
            predictor.predict(positions[None] + rng.normal(size=(1, 9, 3)) * 0.01, z)
        return (time.perf_counter() - start) / args.steps * 1e3

    for _ in range(args.rounds):
        print(f"ms per step: eager {loop(eager):.2f}, compiled {loop(compiled):.2f}")
    _, f_eager = eager.predict(positions[None], z)
    _, f_compiled = compiled.predict(positions[None], z)
    print(f"largest force difference: {np.abs(f_compiled - f_eager).max():.2e} kcal/mol/A")


if __name__ == "__main__":
    main()
