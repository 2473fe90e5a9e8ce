#!/usr/bin/env bash
# Create ./.venv (once) and install segkit with its test extras into it.
# torch is not pinned by segkit: an importable torch is kept; otherwise SEGKIT_TORCH_SPEC is
# installed (default torch==2.13.0; e.g. set it to "torch --index-url <your CPU wheel index>").
set -euo pipefail
cd "$(dirname "$0")/.."
python_bin=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || \
  .venv/bin/python -m pip install -q --disable-pip-version-check "${SEGKIT_TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
