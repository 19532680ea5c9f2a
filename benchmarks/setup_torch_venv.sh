#!/usr/bin/env bash
# Create a separate virtual environment holding PyTorch 2.13.0 (CPU) and NumPy, used only by
# benchmarks/torch_peer.py to time the same LeNet-5 in PyTorch. PyTorch is never a dependency of
# the lenet5 package and is never installed into the project's own .venv.
#
# Usage: bash benchmarks/setup_torch_venv.sh [VENV_DIR]      (default: /tmp/torch-venv)
#
# torch is pinned exactly to the version the figures in benchmarks/README.md were measured with. On
# the machine that measured them a CPU wheel of 2.13.0 sits in pip's local index; elsewhere, set
# PIP_INDEX_URL=https://download.pytorch.org/whl/cpu to get the CPU build instead of the CUDA one.
set -euo pipefail

VENV_DIR="${1:-/tmp/torch-venv}"
PYTHON="${PYTHON:-python3}"
TORCH_PIN="torch==2.13.0"

case "$VENV_DIR" in
    "" | "/") echo "setup_torch_venv.sh: refusing venv path '$VENV_DIR'" >&2; exit 2 ;;
esac

start=$(date +%s)
if [ ! -x "$VENV_DIR/bin/python" ]; then
    "$PYTHON" -m venv "$VENV_DIR"
fi
"$VENV_DIR/bin/python" -m pip install --quiet "$TORCH_PIN" numpy

"$VENV_DIR/bin/python" - <<'EOF'
import numpy, torch
assert torch.__version__.startswith("2.13.0"), torch.__version__
print(f"torch {torch.__version__} (cuda build: {torch.version.cuda}), numpy {numpy.__version__}")
EOF

end=$(date +%s)
size=$(du -sh "$VENV_DIR" | cut -f1)
echo "venv ready: $VENV_DIR ($size, $((end - start)) s)"
