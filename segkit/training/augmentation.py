"""Data augmentation (batchgenerators, nnU-Net's recipe) and the conversion of labels to loss targets."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from batchgenerators.transforms.abstract_transforms import AbstractTransform, Compose
from batchgenerators.transforms.color_transforms import (
    BrightnessMultiplicativeTransform,
    ContrastAugmentationTransform,
    GammaTransform,
)
from batchgenerators.transforms.noise_transforms import GaussianBlurTransform, GaussianNoiseTransform
from batchgenerators.transforms.resample_transforms import SimulateLowResolutionTransform
from batchgenerators.transforms.spatial_transforms import MirrorTransform, SpatialTransform

from segkit.training.losses import IGNORE_TARGET

ROTATION_DEGREES = 30.0
SCALE_RANGE = (0.7, 1.4)
AUGMENT_LEVELS = ("full", "light", "none")


def _rotate(coords: np.ndarray, axis: int, angle: float) -> np.ndarray:
    """Rotate 3D points (N, 3) about one axis."""
    c, s = math.cos(angle), math.sin(angle)
    a, b = [i for i in range(3) if i != axis]
    out = coords.copy()
    out[:, a], out[:, b] = c * coords[:, a] - s * coords[:, b], s * coords[:, a] + c * coords[:, b]
    return out


def sample_size_for(patch_size: Sequence[int], augment: str) -> list[int]:
    """Size to crop before the spatial transform so rotation/scaling rarely sample outside the crop."""
    if augment != "full":
        return list(patch_size)
    half = np.asarray(patch_size, dtype=float) / 2
    if len(patch_size) == 2:
        half = np.array([0.0, *half])
    corners = np.array(np.meshgrid(*[[-h, h] for h in half], indexing="ij")).reshape(3, -1).T
    extent = np.abs(corners).max(0)
    angle = math.radians(ROTATION_DEGREES)
    for axis in ((0,) if len(patch_size) == 2 else (0, 1, 2)):
        extent = np.maximum(extent, np.abs(_rotate(corners, axis, angle)).max(0))
    extent = extent[-len(patch_size):] * 2 / SCALE_RANGE[0]
    return [int(math.ceil(e)) for e in extent]


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


def _intensity_transforms() -> list[AbstractTransform]:
    """nnU-Net's intensity augmentations (noise, blur, brightness, contrast, low resolution, gamma)."""
    return [
        GaussianNoiseTransform(p_per_sample=0.1),
        GaussianBlurTransform((0.5, 1.0), different_sigma_per_channel=True, p_per_sample=0.2, p_per_channel=0.5),
        BrightnessMultiplicativeTransform(multiplier_range=(0.75, 1.25), p_per_sample=0.15),
        ContrastAugmentationTransform(p_per_sample=0.15),
        SimulateLowResolutionTransform(zoom_range=(0.5, 1), per_channel=True, p_per_channel=0.5,
                                       order_downsample=0, order_upsample=3, p_per_sample=0.25),
        GammaTransform((0.7, 1.5), invert_image=True, per_channel=True, retain_stats=True, p_per_sample=0.1),
        GammaTransform((0.7, 1.5), invert_image=False, per_channel=True, retain_stats=True, p_per_sample=0.3),
    ]


def _spatial_transform(patch_size: Sequence[int], elastic: bool, order_seg: int = 1) -> SpatialTransform:
    """Rotation (+-30 degrees), scaling (0.7-1.4) and optional elastic deformation, centre crop to the patch."""
    angle = math.radians(ROTATION_DEGREES)
    return SpatialTransform(
        list(patch_size), patch_center_dist_from_border=None, do_elastic_deform=elastic, alpha=(0.0, 200.0),
        sigma=(9.0, 13.0), do_rotation=True, angle_x=(-angle, angle), angle_y=(-angle, angle),
        angle_z=(-angle, angle), p_rot_per_axis=1, do_scale=True, scale=SCALE_RANGE, border_mode_data="constant",
        border_cval_data=0, order_data=3, border_mode_seg="constant", border_cval_seg=-1, order_seg=order_seg,
        random_crop=False, p_el_per_sample=0.2, p_scale_per_sample=0.2, p_rot_per_sample=0.2)


def build_transform(patch_size: Sequence[int], mirror_axes: Sequence[int] | None, ds_scales: Sequence[Sequence[int]],
                    label_mode: str, regions: Sequence[Sequence[int]] | None = None, augment: str = "full",
                    elastic: bool = False, ignore_label: int | None = None) -> Compose:
    """The training transform: augmentation per level, then labels -> (deep-supervision) targets."""
    if augment not in AUGMENT_LEVELS:
        raise ValueError(f"unknown augmentation level {augment!r}")
    transforms: list[AbstractTransform] = []
    if augment == "full":
        # with an ignore label, nearest-neighbour labels: batchgenerators' linear label interpolation
        # turns voxels where no label reaches 0.5 (thin annotated slices, scribbles) into background
        transforms.append(_spatial_transform(patch_size, elastic, 1 if ignore_label is None else 0))
    if augment in ("full", "light"):
        transforms += _intensity_transforms()
        if mirror_axes:
            transforms.append(MirrorTransform(tuple(mirror_axes)))
    transforms += [SegToTarget(label_mode, regions, ignore_label), DeepSupervisionTargets(ds_scales, label_mode)]
    return Compose(transforms)


def validation_transform(ds_scales: Sequence[Sequence[int]], label_mode: str,
                         regions: Sequence[Sequence[int]] | None = None, ignore_label: int | None = None) -> Compose:
    """No augmentation: only labels -> targets."""
    return Compose([SegToTarget(label_mode, regions, ignore_label), DeepSupervisionTargets(ds_scales, label_mode)])
