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
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# pip >= 21.3 installs a pyproject.toml project editable (PEP 660); a newer pip is only fetched when this one is older
.venv/bin/python -c "import sys, pip; sys.exit(tuple(map(int, pip.__version__.split('.')[:2])) < (21, 3))" \
  || "${pip[@]}" --upgrade pip
# --no-compile: pip would byte-compile every module of every package (torch alone is ~750 MB of them); Python
# compiles the modules the commands and tests import, once, on first import.
# torch only when none is importable: the default pin in the same resolve as segkit and its test extra (one pip run);
# a SEGKIT_TORCH_SPEC on its own run, split into words so that e.g. its --index-url applies to torch alone.
torch_spec=()
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if [ -n "${SEGKIT_TORCH_SPEC:-}" ]; then
    read -r -a custom <<< "$SEGKIT_TORCH_SPEC"
    "${pip[@]}" --no-compile "${custom[@]}"
  else
    torch_spec=(torch==2.13.0)
  fi
fi
"${pip[@]}" --no-compile "${torch_spec[@]}" -e ".[test]"
echo "$want" > "$stamp"
