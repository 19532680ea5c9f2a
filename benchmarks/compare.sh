#!/usr/bin/env bash
# Side-by-side speed of this project's NumPy LeNet-5 and the same network in PyTorch, on this machine.
# Usage: bash benchmarks/compare.sh [TORCH_VENV] [REPEAT]     (run on an otherwise idle machine)
# Prints one JSON line per configuration: ours (lenet5 bench) and PyTorch's (benchmarks/torch_peer.py).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VENV="${1:-/tmp/torch-venv}"
REPEAT="${2:-3}"
[ -x "$TORCH_VENV/bin/python" ] || bash benchmarks/setup_torch_venv.sh "$TORCH_VENV"
THREADS=$(nproc)
for bs in 256 32; do
    python -m lenet5 bench --batch-size "$bs" --threads "$THREADS" --repeat "$REPEAT"
    "$TORCH_VENV/bin/python" benchmarks/torch_peer.py --batch-size "$bs" --threads "$THREADS" --repeat "$REPEAT"
done
