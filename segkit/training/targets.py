"""Labels -> training targets: the label map (or region masks) and its deep-supervision scales.

nnU-Net's conventions: -1 marks voxels outside the mask (background for the loss), the ignore label
becomes segkit.training.losses.IGNORE_TARGET, and a coarser scale keeps the first annotated voxel
of each block so sparse annotations survive downsampling.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from batchgenerators.transforms.abstract_transforms import AbstractTransform

from segkit.training.losses import IGNORE_TARGET


class SegToTarget(AbstractTransform):
    """seg (B, 1, ...) -> target: label map with -1 (outside mask) as background, or region masks.

    With an ignore label, its voxels become IGNORE_TARGET in a label-map target, and region targets
    get the annotated mask as an extra last channel (segkit.training.losses).
    """

    def __init__(self, label_mode: str, regions: Sequence[Sequence[int]] | None = None,
                 ignore_label: int | None = None):
        self.label_mode, self.regions, self.ignore_label = label_mode, regions, ignore_label

    def __call__(self, **data_dict):
        seg = np.rint(data_dict.pop("seg")).astype(np.int16)
        ignored = seg == self.ignore_label if self.ignore_label is not None else None
        seg[seg < 0] = 0
        if self.label_mode == "sigmoid":
            masks = [np.isin(seg, list(r)) for r in self.regions] + ([~ignored] if ignored is not None else [])
            target = np.concatenate(masks, 1).astype(np.float32)
        else:
            target = seg.astype(np.float32)
            if ignored is not None:
                target[ignored] = IGNORE_TARGET
        data_dict["target"] = target
        return data_dict


def _first_annotated_in_blocks(target: np.ndarray, scale: Sequence[int], out_shape: Sequence[int]) -> np.ndarray:
    """Per coarse voxel, the label of the first annotated fine voxel of its block (IGNORE_TARGET if none)."""
    b, c, *shape = target.shape
    pads = [(0, 0), (0, 0)] + [(0, (-n) % s) for n, s in zip(shape, scale)]
    padded = np.pad(target, pads, constant_values=IGNORE_TARGET)
    view_shape = [b, c]
    for n, s in zip(padded.shape[2:], scale):
        view_shape += [n // s, s]
    dims = len(scale)
    order = [0, 1] + [2 + 2 * i for i in range(dims)] + [3 + 2 * i for i in range(dims)]
    coarse = [n // s for n, s in zip(padded.shape[2:], scale)]
    blocks = padded.reshape(view_shape).transpose(order).reshape(b, c, *coarse, -1)
    first = (blocks != IGNORE_TARGET).argmax(-1)[..., None]
    picked = np.take_along_axis(blocks, first, -1)[..., 0]
    return picked[(slice(None), slice(None)) + tuple(slice(0, n) for n in out_shape)]


def downsample_target(target: np.ndarray, scale: Sequence[int], label_mode: str) -> np.ndarray:
    """Target at a coarser output: nearest sample for label maps, max-pool for region masks.

    Unannotated voxels: a coarse voxel is ignored only if every fine voxel of its block is. A label
    map takes the first annotated label of the block where its nearest sample is unannotated; the
    region targets' annotated-mask channel is max-pooled like the regions, which is the same rule.
    """
    if all(s == 1 for s in scale):
        return target
    if label_mode == "softmax":
        index = (slice(None), slice(None)) + tuple(slice((s - 1) // 2, None, s) for s in scale)
        nearest = np.ascontiguousarray(target[index])
        ignored = nearest == IGNORE_TARGET
        if ignored.any():
            nearest = np.where(ignored, _first_annotated_in_blocks(target, scale, nearest.shape[2:]), nearest)
        return nearest
    b, c, *shape = target.shape
    view_shape = [b, c]
    for n, s in zip(shape, scale):
        view_shape += [n // s, s]
    trimmed = target[(slice(None), slice(None)) + tuple(slice(0, (n // s) * s) for n, s in zip(shape, scale))]
    return trimmed.reshape(view_shape).max(axis=tuple(range(3, len(view_shape), 2)))


class DeepSupervisionTargets(AbstractTransform):
    """target -> list of targets, one per network output (highest resolution first)."""

    def __init__(self, scales: Sequence[Sequence[int]], label_mode: str):
        self.scales, self.label_mode = [list(s) for s in scales], label_mode

    def __call__(self, **data_dict):
        target = data_dict["target"]
        data_dict["target"] = [downsample_target(target, s, self.label_mode) for s in self.scales]
        return data_dict
