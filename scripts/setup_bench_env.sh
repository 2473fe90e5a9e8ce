#!/usr/bin/env bash
# Create ./.bench-venv: the peers (nnU-Net v2, MONAI, surface-distance) for the comparison
# benchmarks in scripts/. segkit itself never imports them; they live only here.
set -euo pipefail
cd "$(dirname "$0")/.."
python_bin=${PYTHON:-python3}
[ -x .bench-venv/bin/python ] || "$python_bin" -m venv .bench-venv
.bench-venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.bench-venv/bin/python -c "import torch" 2>/dev/null || \
  .bench-venv/bin/python -m pip install -q --disable-pip-version-check "${SEGKIT_TORCH_SPEC:-torch==2.13.0}"
.bench-venv/bin/python -m pip install -q --disable-pip-version-check nnunetv2 monai surface-distance
