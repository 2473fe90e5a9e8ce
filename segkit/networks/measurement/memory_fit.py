"""Measured memory fits: peak = a + b x (batch x voxels), measured once per machine and cached.

For a family whose memory is not a conv tally (swinunetr: windowed attention, MONAI's layers),
the memory model is calibrated by measurement instead of counted: one training step at two patch
sizes (`segkit.networks.measurement.measure.measure_in_subprocess`, CPU process peak above the weights), a
straight line through the two points, cached per user in `<segkit cache>/memory_fits.json`
($SEGKIT_CACHE, else $XDG_CACHE_HOME/segkit, else ~/.cache/segkit), keyed by everything the
peak depends on (the entry's layers, channels, torch and MONAI versions, the machine). This module
owns that file: its format, writer and reader.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Callable, Sequence
from pathlib import Path

from segkit.cachedir import cache_root
from segkit.errors import UserError
from segkit.jsonio import read_json, write_json

FORMAT = "segkit-memory-fits-1"
FILE_NAME = "memory_fits.json"


def fits_path() -> Path:
    """Where the measured fits are cached: <segkit cache>/memory_fits.json."""
    return cache_root() / FILE_NAME


def read_fits(path: Path | None = None) -> dict:
    """The cached fits {key: record}; empty when the file does not exist yet."""
    path = path or fits_path()
    if not path.is_file():
        return {}
    data = read_json(path, "memory fit cache")
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("fits"), dict):
        raise UserError(f"not a segkit memory fit cache (expected format {FORMAT!r}); delete it to re-measure", path)
    return data["fits"]


def write_fit(key: str, record: dict, path: Path | None = None) -> None:
    """Add (or replace) one fit in the cache, atomically."""
    path = path or fits_path()
    fits = read_fits(path)
    fits[key] = record
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"format": FORMAT, "fits": fits})


def fit_key(description: dict) -> str:
    """A stable key for what a peak depends on (plus this machine's architecture and processor)."""
    text = json.dumps({**description, "machine": platform.machine(), "processor": platform.processor()},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (a, b) of bytes = a + b x voxels through (voxels, bytes) points (b >= 0)."""
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        raise ValueError("a memory fit needs two different patch volumes")
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    b = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    b = max(0.0, b)
    return mean_y - b * mean_x, b


def cached_fit(description: dict, measure: Callable[[list[int], int], int], patches: Sequence[Sequence[int]],
               batch_size: int = 1, path: Path | None = None) -> dict:
    """The cached fit for description, else measure(patch, batch) -> peak bytes at each patch, fit and cache it."""
    key = fit_key(description)
    cached = read_fits(path).get(key)
    if cached is not None:
        return cached
    points = [(float(batch_size * math.prod(p)), float(measure(list(p), batch_size))) for p in patches]
    a, b = fit_line(points)
    record = {"constant_bytes": a, "bytes_per_voxel": b, "points": [[x, y] for x, y in points],
              "batch_size": batch_size, "description": description}
    write_fit(key, record, path)
    return record
