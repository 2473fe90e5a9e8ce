"""Out-of-memory helpers shared by training and prediction: recognise CUDA OOM, read peaks, shrink a patch.

The patch rule is the planner's (segkit/planning/planner.py `_shrink_axis`): take one divisor
(the network's total stride on that axis) off the axis with the largest physical extent
(voxels x spacing), keeping every axis a positive multiple of its divisor.
"""

from __future__ import annotations

import gc
import math

import torch

PATCH_STEP = 0.8          # a shrunk patch has at most this share of the previous one's voxels


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA's OutOfMemoryError and the older 'out of memory' RuntimeError."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def device_peaks(device: torch.device) -> dict:
    """The CUDA allocator's peaks since the last reset (max_memory_allocated / _reserved); {} elsewhere."""
    if device.type != "cuda":
        return {}
    return {"max_memory_allocated": int(torch.cuda.max_memory_allocated(device)),
            "max_memory_reserved": int(torch.cuda.max_memory_reserved(device))}


def release(device: torch.device) -> None:
    """Give cached blocks back and reset the peaks before the next attempt."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def shrink_patch(patch: list[int], spacing: list[float], divisor: list[int], step: float = PATCH_STEP) -> list[int] | None:
    """A patch with at most `step` of the voxels by the planner's rule, or None when no axis can shrink."""
    patch = list(patch)
    original = list(patch)
    target = math.prod(patch) * step
    while math.prod(patch) > target:
        shrinkable = [axis for axis in range(len(patch)) if patch[axis] - divisor[axis] >= divisor[axis]]
        if not shrinkable:
            break
        axis = max(shrinkable, key=lambda a: patch[a] * spacing[a])
        patch[axis] -= divisor[axis]
    return None if patch == original else patch
