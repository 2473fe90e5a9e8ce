#!/usr/bin/env bash
# Create ./.venv (once) and install segkit with its test extras into it.
# torch is not pinned by segkit: an importable torch is kept; otherwise SEGKIT_TORCH_SPEC is
# installed (default torch==2.13.0; e.g. set it to "torch --index-url <your CPU wheel index>").
# A second run with an unchanged pyproject.toml does nothing (scripts/test.sh runs this every time,
# and .ci/run runs it before ruff and mypy): pip's resolve of the test extra costs ~10 s of CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
python_bin=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
stamp=.venv/.segkit-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('torch') and u.find_spec('segkit')))"; then
  exit 0
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || \
  .venv/bin/python -m pip install -q --disable-pip-version-check "${SEGKIT_TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
echo "$want" > "$stamp"
