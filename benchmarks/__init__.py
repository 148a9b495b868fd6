"""Benchmarks: gaatool against the reference library, and ``identify`` at scale.

Run from the repository root::

    python -m benchmarks.run [--quick] [--device cpu|cuda] [--out benchmarks/results]
    python -m benchmarks.bench_identify_scaling [--quick] [--device cpu|cuda] [--model PATH]
    bash benchmarks/gpu.sh

See benchmarks/README.md. Not part of the installed package.
"""
