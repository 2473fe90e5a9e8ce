"""segkit's per-user cache folder (unpacked model packages, converted nnU-Net models, measured memory fits)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$SEGKIT_CACHE, else $XDG_CACHE_HOME/segkit, else ~/.cache/segkit."""
    if os.environ.get("SEGKIT_CACHE"):
        return Path(os.environ["SEGKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "segkit"
