"""Data augmentation (batchgenerators, nnU-Net's recipe; batched torch transforms for CPU budgets) and the
training transform that chains it with the labels -> targets step (segkit.training.targets) and a cascade
stage's perturbed previous-stage input (segkit.training.cascade_perturbation).

Levels (`--augment`): "full" is nnU-Net's (batchgenerators' per-sample SpatialTransform, intensity,
mirroring); "fast" has the same kinds of spatial transform made cheap -- one torch `grid_sample`
for the batch's transformed samples, identity samples only cropped -- plus scanner-shift intensity
augmentation (smooth bias field, anisotropic low resolution as from thick slices) on top of the
intensity set; "light" is intensity + mirroring; "none" nothing. Every random draw comes from
numpy's global generator, which segkit.training.loader.make_batch seeds per batch, so a batch
is the same in a resumed run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from batchgenerators.transforms.abstract_transforms import AbstractTransform, Compose
from batchgenerators.transforms.color_transforms import (
    BrightnessMultiplicativeTransform,
    ContrastAugmentationTransform,
    GammaTransform,
)
from batchgenerators.transforms.noise_transforms import GaussianBlurTransform, GaussianNoiseTransform
from batchgenerators.transforms.resample_transforms import SimulateLowResolutionTransform
from batchgenerators.transforms.spatial_transforms import MirrorTransform, SpatialTransform

from segkit.training.cascade_perturbation import PreviousStageToData
from segkit.training.targets import DeepSupervisionTargets, SegToTarget

ROTATION_DEGREES = 30.0
SCALE_RANGE = (0.7, 1.4)
AUGMENT_LEVELS = ("full", "fast", "light", "none")
FAST_ROTATION_DEGREES = 15.0
FAST_SCALE_RANGE = (0.85, 1.25)


def _rotate(coords: np.ndarray, axis: int, angle: float) -> np.ndarray:
    """Rotate 3D points (N, 3) about one axis."""
    c, s = math.cos(angle), math.sin(angle)
    a, b = [i for i in range(3) if i != axis]
    out = coords.copy()
    out[:, a], out[:, b] = c * coords[:, a] - s * coords[:, b], s * coords[:, a] + c * coords[:, b]
    return out


def sample_size_for(patch_size: Sequence[int], augment: str) -> list[int]:
    """Size to crop before the spatial transform so rotation/scaling rarely sample outside the crop."""
    if augment not in ("full", "fast"):
        return list(patch_size)
    degrees, scale = (ROTATION_DEGREES, SCALE_RANGE) if augment == "full" else (FAST_ROTATION_DEGREES, FAST_SCALE_RANGE)
    half = np.asarray(patch_size, dtype=float) / 2
    if len(patch_size) == 2:
        half = np.array([0.0, *half])
    corners = np.array(np.meshgrid(*[[-h, h] for h in half], indexing="ij")).reshape(3, -1).T
    extent = np.abs(corners).max(0)
    angle = math.radians(degrees)
    for axis in ((0,) if len(patch_size) == 2 else (0, 1, 2)):
        extent = np.maximum(extent, np.abs(_rotate(corners, axis, angle)).max(0))
    if augment == "fast":   # the batched transform scales coordinates by up to scale[1] (zoom out)
        extent = extent[-len(patch_size):] * 2 * scale[1]
        # even margins keep the identity crop on whole voxels
        return [int(math.ceil(e)) + (int(math.ceil(e)) - p) % 2 for e, p in zip(extent, patch_size)]
    extent = extent[-len(patch_size):] * 2 / scale[0]
    return [int(math.ceil(e)) for e in extent]


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


def _rotation_matrix(angles: Sequence[float] | np.ndarray) -> np.ndarray:
    """Rotation about each axis in turn (one angle in 2D, three in 3D)."""
    if len(angles) == 1:
        c, s = math.cos(angles[0]), math.sin(angles[0])
        return np.array([[c, -s], [s, c]])
    matrix = np.eye(3)
    for axis, angle in enumerate(angles):
        matrix = matrix @ _rotate(np.eye(3), axis, angle).T
    return matrix


class BatchSpatialTransform(AbstractTransform):
    """Rotation, scaling and elastic deformation with one torch grid_sample over the batch, cropped to the patch.

    Each sample gets rotation / scaling / elastic deformation with its own probability; samples that
    draw none are centre-cropped (no interpolation). The others are resampled together: data
    trilinear (0 outside), labels nearest (-1 outside). The crop in the data dict must be at least
    sample_size_for(patch, "fast") with an even margin, so the identity lands on whole voxels.
    """

    def __init__(self, patch_size: Sequence[int], rotation_degrees: float = FAST_ROTATION_DEGREES,
                 scale: tuple[float, float] = FAST_SCALE_RANGE, p_rotation: float = 0.2, p_scale: float = 0.2,
                 p_elastic: float = 0.2, elastic_voxels: float = 2.0, elastic_grid: int = 4):
        self.patch = [int(p) for p in patch_size]
        self.angle = math.radians(rotation_degrees)
        self.scale, self.p_rotation, self.p_scale, self.p_elastic = scale, p_rotation, p_scale, p_elastic
        self.elastic_voxels, self.elastic_grid = elastic_voxels, elastic_grid

    def _draw(self, dims: int) -> tuple[np.ndarray, bool]:
        """One sample's linear map (output -> input offsets, voxels) and whether it is elastically deformed."""
        matrix = np.eye(dims)
        if np.random.uniform() < self.p_rotation:
            matrix = _rotation_matrix(np.random.uniform(-self.angle, self.angle, 1 if dims == 2 else 3))
        if np.random.uniform() < self.p_scale:
            matrix = matrix * np.random.uniform(*self.scale)
        return matrix, bool(np.random.uniform() < self.p_elastic)

    def __call__(self, **data_dict):
        data, seg = data_dict["data"], data_dict["seg"]
        size, dims = list(data.shape[2:]), data.ndim - 2
        lower = [(s - p) // 2 for s, p in zip(size, self.patch)]
        crop = (slice(None), slice(None)) + tuple(slice(lo, lo + p) for lo, p in zip(lower, self.patch))
        draws = [self._draw(dims) for _ in range(data.shape[0])]
        moved = [i for i, (m, elastic) in enumerate(draws) if elastic or not np.array_equal(m, np.eye(dims))]
        noise = {i: np.random.standard_normal((dims, *[self.elastic_grid] * dims)) for i, (_, e) in enumerate(draws) if e}
        out_data, out_seg = np.ascontiguousarray(data[crop]), np.ascontiguousarray(seg[crop])
        if moved:
            grid = self._grid([draws[i][0] for i in moved], [noise.get(i) for i in moved], size, lower)
            picked = torch.from_numpy(np.ascontiguousarray(data[moved]))
            out_data[moved] = F.grid_sample(picked, grid, mode="bilinear", padding_mode="zeros",
                                            align_corners=True).numpy()
            labels = torch.from_numpy(np.ascontiguousarray(seg[moved])) + 1     # outside -> 0 -> -1
            out_seg[moved] = F.grid_sample(labels, grid, mode="nearest", padding_mode="zeros",
                                           align_corners=True).numpy() - 1
        data_dict["data"], data_dict["seg"] = out_data, out_seg
        return data_dict

    def _grid(self, matrices: list[np.ndarray], noises: list, size: list[int], lower: list[int]) -> torch.Tensor:
        """grid_sample grid (n, *patch, dims) in normalised input coordinates (x first)."""
        dims = len(size)
        centre_out = (np.asarray(self.patch) - 1) / 2
        centre_in = np.asarray(lower) + centre_out
        axes = [torch.arange(p, dtype=torch.float32) - float(c) for p, c in zip(self.patch, centre_out)]
        offsets = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)                 # (*patch, dims)
        linear = torch.from_numpy(np.stack(matrices).astype(np.float32))               # (n, dims, dims)
        coords = torch.einsum("nij,...j->n...i", linear, offsets) + torch.from_numpy(centre_in.astype(np.float32))
        for k, noise in enumerate(noises):
            if noise is not None:
                field = F.interpolate(torch.from_numpy(noise.astype(np.float32))[None], size=self.patch,
                                      mode="trilinear" if dims == 3 else "bilinear", align_corners=True)[0]
                coords[k] += self.elastic_voxels * torch.movedim(field, 0, -1)
        scale = torch.tensor([(s - 1) / 2 for s in size], dtype=torch.float32)
        return (coords / scale - 1).flip(-1)


class BiasFieldTransform(AbstractTransform):
    """Smooth multiplicative intensity non-uniformity (a scanner's coil profile), per sample with probability p."""

    def __init__(self, strength: float = 0.3, p_per_sample: float = 0.3, grid: int = 3):
        self.strength, self.p, self.grid = strength, p_per_sample, grid

    def __call__(self, **data_dict):
        data = data_dict["data"]
        dims = data.ndim - 2
        for b in range(data.shape[0]):
            if np.random.uniform() >= self.p:
                continue
            coarse = torch.from_numpy(np.random.standard_normal((1, 1, *[self.grid] * dims)).astype(np.float32))
            field = F.interpolate(coarse, size=data.shape[2:], mode="trilinear" if dims == 3 else "bilinear",
                                  align_corners=True)[0].numpy()
            field = np.exp(self.strength * field)
            low = data[b].min()
            data[b] = (data[b] - low) * field + low    # z-scored data: scale the intensities above the minimum
        return data_dict


class AnisotropicLowResolutionTransform(AbstractTransform):
    """Thick-slice acquisition: one random axis downsampled by 1.5-3x and interpolated back, per sample with p."""

    def __init__(self, factor: tuple[float, float] = (1.5, 3.0), p_per_sample: float = 0.2):
        self.factor, self.p = factor, p_per_sample

    def __call__(self, **data_dict):
        data = data_dict["data"]
        dims = data.ndim - 2
        mode = "trilinear" if dims == 3 else "bilinear"
        for b in range(data.shape[0]):
            if np.random.uniform() >= self.p:
                continue
            axis, factor = int(np.random.randint(dims)), np.random.uniform(*self.factor)
            shape = list(data.shape[2:])
            small = list(shape)
            small[axis] = max(1, int(round(shape[axis] / factor)))
            sample = torch.from_numpy(np.ascontiguousarray(data[b:b + 1]))
            low = F.interpolate(sample, size=small, mode="area")
            data[b] = F.interpolate(low, size=shape, mode=mode, align_corners=False)[0].numpy()
        return data_dict


class PairSwapMirrorTransform(AbstractTransform):
    """batchgenerators' MirrorTransform (per sample, each axis flipped with p 0.5, same random draws) whose
    flip along `swap_axis` also exchanges the left/right label pairs in seg (`table`: value -> value).

    A mirrored left hippocampus is a right one: without the swap the flip would teach the network
    to call it left.
    """

    def __init__(self, axes: Sequence[int], swap_axis: int, table: np.ndarray):
        self.axes, self.swap_axis, self.table = tuple(axes), swap_axis, np.asarray(table)

    def _swap(self, seg: np.ndarray) -> np.ndarray:
        """seg with every pair's values exchanged (values outside the table untouched)."""
        values = np.rint(seg).astype(np.int64)
        inside = (values >= 0) & (values < len(self.table))
        swapped = np.where(inside, self.table[np.clip(values, 0, len(self.table) - 1)], values)
        return np.where(inside, swapped.astype(seg.dtype), seg)

    def __call__(self, **data_dict):
        data, seg = data_dict["data"], data_dict.get("seg")
        for b in range(len(data)):
            np.random.uniform()   # MirrorTransform's p_per_sample draw (p 1): keeps the random stream alike
            for axis in range(3):
                if axis not in self.axes or (axis == 2 and data[b].ndim != 4) or np.random.uniform() >= 0.5:
                    continue
                data[b] = np.flip(data[b], axis + 1)
                if seg is not None:
                    seg[b] = np.flip(seg[b], axis + 1)
                    if axis == self.swap_axis:
                        seg[b] = self._swap(seg[b])
        return data_dict


def mirror_transform(mirror_axes: Sequence[int], swap: tuple[int, np.ndarray] | None) -> AbstractTransform:
    """The mirroring step: batchgenerators' own, or the pair-swapping one when a flip exchanges left and right."""
    if swap is None or swap[0] not in mirror_axes:
        return MirrorTransform(tuple(mirror_axes))
    return PairSwapMirrorTransform(mirror_axes, swap[0], swap[1])


def build_transform(patch_size: Sequence[int], mirror_axes: Sequence[int] | None, ds_scales: Sequence[Sequence[int]],
                    label_mode: str, regions: Sequence[Sequence[int]] | None = None, augment: str = "full",
                    elastic: bool = False, ignore_label: int | None = None,
                    previous_classes: Sequence[Sequence[int]] | None = None,
                    mirror_swap: tuple[int, np.ndarray] | None = None) -> Compose:
    """The training transform: augmentation per level, then labels -> (deep-supervision) targets.

    previous_classes (a cascade stage): seg carries the previous stage's labels as channel 1; they
    are moved by the spatial transforms like the labels, then become one-hot data channels
    (perturbed unless augment is "none"). mirror_swap (axis, value table): a flip along that axis
    exchanges the left/right label pairs.
    """
    if augment not in AUGMENT_LEVELS:
        raise ValueError(f"unknown augmentation level {augment!r}")
    transforms: list[AbstractTransform] = []
    if augment == "full":
        # with an ignore label, nearest-neighbour labels: batchgenerators' linear label interpolation
        # turns voxels where no label reaches 0.5 (thin annotated slices, scribbles) into background
        transforms.append(_spatial_transform(patch_size, elastic, 1 if ignore_label is None else 0))
    if augment == "fast":
        # labels are resampled nearest-neighbour already, so the ignore label survives as it is
        transforms += [BatchSpatialTransform(patch_size, p_elastic=0.2 if elastic else 0.0), BiasFieldTransform(),
                       AnisotropicLowResolutionTransform()]
    if augment in ("full", "fast", "light"):
        transforms += _intensity_transforms()
        if mirror_axes:
            transforms.append(mirror_transform(mirror_axes, mirror_swap))
    if previous_classes is not None:
        transforms.append(PreviousStageToData(previous_classes, perturb=augment != "none"))
    transforms += [SegToTarget(label_mode, regions, ignore_label), DeepSupervisionTargets(ds_scales, label_mode)]
    return Compose(transforms)


def validation_transform(ds_scales: Sequence[Sequence[int]], label_mode: str,
                         regions: Sequence[Sequence[int]] | None = None, ignore_label: int | None = None) -> Compose:
    """No augmentation: only labels -> targets."""
    return Compose([SegToTarget(label_mode, regions, ignore_label), DeepSupervisionTargets(ds_scales, label_mode)])
