"""Target spacing and normalisation choices from the fingerprint."""

from __future__ import annotations

import numpy as np

ANISOTROPY_THRESHOLD = 3.0
MASK_FOR_NORM_RELATIVE_SIZE = 0.75


def fullres_target_spacing(spacings: np.ndarray, shapes_after_crop: np.ndarray) -> list[float]:
    """Median spacing per axis; a clearly anisotropic coarse axis takes its 10th percentile instead.

    The coarse axis counts as clearly anisotropic when its median spacing is over
    ANISOTROPY_THRESHOLD times the coarsest other axis *and* it has over that many times
    fewer voxels than the smallest other axis: then the median would throw away the
    resolution of the better-sampled cases. Never resample that axis finer than the others.
    """
    target = np.percentile(spacings, 50, axis=0)
    median_shape = np.percentile(shapes_after_crop, 50, axis=0)
    coarse_axis = int(np.argmax(target))
    others = [axis for axis in range(len(target)) if axis != coarse_axis]
    other_spacing = max(target[axis] for axis in others)
    other_size = min(median_shape[axis] for axis in others)
    anisotropic_spacing = target[coarse_axis] > ANISOTROPY_THRESHOLD * other_spacing
    anisotropic_voxels = median_shape[coarse_axis] * ANISOTROPY_THRESHOLD < other_size
    if anisotropic_spacing and anisotropic_voxels:
        coarse = float(np.percentile(spacings[:, coarse_axis], 10))
        if coarse < other_spacing:
            coarse = max(other_spacing, coarse) + 1e-5
        target[coarse_axis] = coarse
    return [float(v) for v in target]


def normalization_for_channel(channel_name: str, statistics: dict, median_relative_size: float) -> dict:
    """Normalisation entry for one channel: CT by dataset statistics, else per-image z-score."""
    name = channel_name.strip().lower()
    if name == "ct":
        return {"scheme": "ct", "clip": [statistics["percentile_0.5"], statistics["percentile_99.5"]],
                "mean": statistics["mean"], "std": max(statistics["std"], 1e-8)}
    if name in ("nonorm", "none"):
        return {"scheme": "none"}
    if name in ("rescale_to_0_1", "rescale_0_1", "rgb_to_0_1"):
        return {"scheme": "rescale_0_1"}
    return {"scheme": "zscore", "use_nonzero_mask": bool(median_relative_size < MASK_FOR_NORM_RELATIVE_SIZE)}
