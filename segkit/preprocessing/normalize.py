"""Per-channel intensity normalisation as declared in plans.json `normalization`.

Schemes: "zscore" (optionally within the nonzero mask, 0 outside), "ct" (clip to the dataset's
[lo, hi], then subtract the dataset mean and divide by its std), "rescale_0_1" (per image
min-max), "rgb_0_1" (8-bit values divided by 255, nnU-Net's RGBTo0_1Normalization) and "none".
"""

from __future__ import annotations

import numpy as np

from segkit.errors import UserError

SCHEMES = ("zscore", "ct", "rescale_0_1", "rgb_0_1", "none")
EPSILON = 1e-8


def zscore(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Z-score an image; with a mask the statistics come from inside it and outside becomes 0."""
    values = image[mask] if mask is not None else image
    if values.size == 0:
        return np.zeros_like(image, dtype=np.float32)
    mean = float(values.mean(dtype=np.float64))
    std = float(values.std(dtype=np.float64))
    out = np.subtract(image, mean, dtype=np.float32)
    out *= np.float32(1.0 / max(std, EPSILON))
    if mask is not None:
        out[~mask] = 0
    return out


def ct_normalize(image: np.ndarray, clip: list[float], mean: float, std: float) -> np.ndarray:
    """Clip to the dataset's foreground percentiles, then standardise with the dataset's statistics."""
    out = np.clip(image, clip[0], clip[1]).astype(np.float32, copy=False)
    out -= np.float32(mean)
    out *= np.float32(1.0 / max(float(std), EPSILON))
    return out


def rescale_0_1(image: np.ndarray) -> np.ndarray:
    """Rescale an image's own range to [0, 1] (a constant image becomes 0)."""
    low, high = float(image.min()), float(image.max())
    out = np.subtract(image, low, dtype=np.float32)
    if high > low:
        out *= np.float32(1.0 / (high - low))
    return out


def check_normalization(entries: object, num_channels: int, where: str = "plans.json") -> list[dict]:
    """Validate the plans' normalization list; raise UserError on a malformed entry."""
    if not isinstance(entries, list) or len(entries) != num_channels:
        raise UserError(f"'normalization' must list one entry per channel ({num_channels})", where)
    for index, entry in enumerate(entries):
        scheme = entry.get("scheme") if isinstance(entry, dict) else None
        if scheme not in SCHEMES:
            raise UserError(f"normalization[{index}]: unknown scheme {scheme!r}; use one of {SCHEMES}", where)
        if scheme == "ct" and not all(key in entry for key in ("clip", "mean", "std")):
            raise UserError(f"normalization[{index}]: 'ct' needs 'clip', 'mean' and 'std'", where)
    return entries


def normalize_channels(images: np.ndarray, seg: np.ndarray, entries: list[dict]) -> np.ndarray:
    """Normalise each channel of cropped (C, z, y, x) images; seg >= 0 marks the nonzero mask."""
    out = np.empty(images.shape, dtype=np.float32)
    mask = seg >= 0
    for channel, entry in enumerate(entries):
        scheme = entry["scheme"]
        if scheme == "zscore":
            out[channel] = zscore(images[channel], mask if entry.get("use_nonzero_mask") else None)
        elif scheme == "ct":
            out[channel] = ct_normalize(images[channel], entry["clip"], entry["mean"], entry["std"])
        elif scheme == "rescale_0_1":
            out[channel] = rescale_0_1(images[channel])
        elif scheme == "rgb_0_1":
            out[channel] = np.asarray(images[channel], dtype=np.float32) / np.float32(255.0)
        else:
            out[channel] = images[channel]
    return out
