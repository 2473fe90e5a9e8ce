#!/usr/bin/env bash
# Set up ./.venv (scripts/setup.sh) and run the test suite. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed" >&2; exit 1; }
# the DICOM node's tests (tests/pacs/) need a real Orthanc: install it where we can, else say why they skip
if ! command -v Orthanc >/dev/null && [ ! -x /usr/sbin/Orthanc ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    { apt-get update && apt-get install -y orthanc orthanc-dicomweb dicom3tools; } >/dev/null 2>&1 \
      || echo "could not install orthanc orthanc-dicomweb: the Orthanc tests in tests/pacs/ will be skipped" >&2
  else
    echo "Orthanc is not installed and this is not root: the Orthanc tests in tests/pacs/ will be skipped" \
         "(apt-get install -y orthanc orthanc-dicomweb)" >&2
  fi
fi
# the report.html browser test drives Debian's headless Chromium; install it where we can
if ! command -v chromium >/dev/null 2>&1 && [ -z "${SEGKIT_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    echo "note: no chromium (not root or apt-get failed): the report.html browser tests will be skipped;" \
         "install it with 'sudo apt-get install chromium' or point SEGKIT_CHROMIUM at a Chrome binary" >&2
  fi
fi
# Two pytest-xdist workers (the `test` extra; CI has 2 cores), whole test files per worker so a file's module-scoped
# trained models are built once; one torch/OpenMP thread per worker (tiny tensors: more threads only spin).
# SEGKIT_TEST_WORKERS=0 runs in one process (e.g. to debug with -x --pdb).
workers=${SEGKIT_TEST_WORKERS:-2}
parallel=()
if [ "$workers" != 0 ] && .venv/bin/python -c "import xdist" 2>/dev/null; then
  parallel=(-n "$workers" --dist loadfile --no-loadscope-reorder)   # slow files first: tests/conftest.py
fi
# UTF-8 mode: torch.compile reads its templates with the locale encoding, which is ASCII on some CI machines
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PYTHONUTF8=1 .venv/bin/python -m pytest -q -p no:cacheprovider "${parallel[@]}" "$@"
status=$?
# pytest: 0 all passed, 1 failures, 2 interrupted, 3 internal error, 4 usage error, 5 no tests collected.
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit "$status"
