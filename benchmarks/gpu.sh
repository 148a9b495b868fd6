#!/usr/bin/env bash
# The CPU comparisons on CUDA with one command (meant to finish in under 5 minutes on one H100-class GPU):
#   bash benchmarks/gpu.sh [OUT_DIR]            (default OUT_DIR: benchmarks/results)
# 1. gaatool vs the reference library, all cases of benchmarks/run.py, on cuda;
# 2. gaatool identify scaling (10^4, 10^5, 10^6 particles) on cuda.
# Results are named after the GPU, e.g. benchmarks/results/cuda-nvidia-h100-80gb-hbm3.md, next to the CPU ones.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-benchmarks/results}"
python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'error: torch sees no CUDA device')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
start=$SECONDS
python3 -m benchmarks.run --device cuda --out "$out" --target-seconds 1
python3 -m benchmarks.bench_identify_scaling --device cuda --out "$out"
echo "gpu.sh: done in $((SECONDS - start)) s" >&2
