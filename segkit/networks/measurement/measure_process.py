"""Run `segkit.networks.measurement.measure` in a fresh Python process (CPU peaks need a process of their own).

Separate from measure.py so that a family's memory calibration (swinunetr) can start measurements
without importing build_network, which imports the family registry (an import cycle otherwise).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

# glibc malloc: every block >= 64 KiB from mmap, so freed tensors leave the resident set at once
CPU_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0", "MALLOC_ARENA_MAX": "2"}


def measure_in_subprocess(spec: dict, timeout: float = 900) -> dict:
    """Run measure_step in a fresh Python process with the malloc settings above (CPU) and parse its JSON."""
    env = dict(os.environ, **CPU_ENV)
    result = subprocess.run([sys.executable, "-m", "segkit.networks.measurement.measure", json.dumps(spec)], env=env,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"measurement failed: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
