"""Data augmentation (batchgenerators, nnU-Net's recipe; batched torch transforms for CPU budgets) and labels -> targets.

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
from scipy import ndimage

from segkit.preprocessing.previous_stage import one_hot_previous
from segkit.training.losses import IGNORE_TARGET

ROTATION_DEGREES = 30.0
SCALE_RANGE = (0.7, 1.4)
AUGMENT_LEVELS = ("full", "fast", "light", "none")
FAST_ROTATION_DEGREES = 15.0
FAST_SCALE_RANGE = (0.85, 1.25)
# nnU-Net's cascade perturbations of the previous stage's one-hot channels
MORPHOLOGY_P_PER_SAMPLE = 0.4
MORPHOLOGY_RADIUS = (1.0, 8.0)
MORPHOLOGY_OPERATIONS = ("dilation", "erosion", "closing", "opening")
COMPONENT_REMOVAL_P_PER_SAMPLE = 0.2
COMPONENT_MAX_FRACTION = 0.15


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


def ball(radius: float, dims: int) -> np.ndarray:
    """Boolean ball (disc in 2D) of a possibly fractional radius: the offsets within `radius` of the centre."""
    reach = int(math.floor(radius))
    grid = np.meshgrid(*[np.arange(-reach, reach + 1)] * dims, indexing="ij")
    squared = np.zeros(grid[0].shape, dtype=np.float64)
    for axis in grid:
        squared += axis.astype(np.float64) ** 2
    return squared <= radius ** 2


def morphology(mask: np.ndarray, operation: str, radius: float) -> np.ndarray:
    """Binary dilation / erosion / closing / opening with a ball, computed in the mask's box plus a margin.

    Outside that margin every operation's result is 0 (the mask is empty there and erosion
    treats the border as background), so the box gives the whole-volume result at a fraction
    of the cost.
    """
    structure = ball(radius, mask.ndim)
    margin = structure.shape[0] // 2 + 1
    present = np.nonzero(mask)
    box = tuple(slice(max(int(p.min()) - margin, 0), min(int(p.max()) + margin + 1, n))
                for p, n in zip(present, mask.shape))
    part = mask[box]
    operate = {"dilation": ndimage.binary_dilation, "erosion": ndimage.binary_erosion,
               "closing": ndimage.binary_closing, "opening": ndimage.binary_opening}[operation]
    out = np.zeros_like(mask)
    out[box] = operate(part, structure=structure, border_value=0)
    if operation == "closing":   # scipy's closing erodes the padded border: keep every original voxel
        out[box] |= part
    return out


class PreviousStageToData(AbstractTransform):
    """seg channel 1 (the previous stage's labels, moved like the labels) -> one-hot channels appended to data.

    A cascade stage's input. With `perturb` (training), nnU-Net's cascade augmentation follows, so
    the refinement network does not trust its input blindly: per sample with p 0.4 each channel,
    in random order, gets a random binary dilation / erosion / closing / opening with a ball of
    radius 1-8 voxels (voxels a channel gains are taken from the others); per sample with p 0.2
    each channel loses one random connected component among those under 15 % of the patch.
    Every draw comes from numpy's global generator (seeded per batch by the loader).
    """

    def __init__(self, classes: Sequence[Sequence[int]], perturb: bool = True):
        self.classes, self.perturb = [list(c) for c in classes], perturb

    def __call__(self, **data_dict):
        seg = data_dict["seg"]
        previous = np.rint(seg[:, 1]).astype(np.int16)
        data_dict["seg"] = np.ascontiguousarray(seg[:, :1])
        one_hot = np.ascontiguousarray(np.moveaxis(one_hot_previous(previous, self.classes), 0, 1))
        if self.perturb:
            for sample in one_hot:
                self._change_shapes(sample)
                self._remove_components(sample)
        data = data_dict["data"]
        data_dict["data"] = np.concatenate([data, one_hot.astype(data.dtype, copy=False)], 1)
        return data_dict

    def _change_shapes(self, sample: np.ndarray) -> None:
        """Random morphology per channel (p per sample), keeping the channels exclusive where one grows."""
        if np.random.uniform() >= MORPHOLOGY_P_PER_SAMPLE:
            return
        channels = list(np.random.permutation(len(sample)))
        for channel in channels:
            operation = MORPHOLOGY_OPERATIONS[int(np.random.randint(len(MORPHOLOGY_OPERATIONS)))]
            radius = float(np.random.uniform(*MORPHOLOGY_RADIUS))
            mask = sample[channel] > 0
            if not mask.any():
                continue
            changed = morphology(mask, operation, radius)
            sample[channel] = changed
            gained = changed & ~mask
            for other in channels:
                if other != channel:
                    sample[other][gained] = 0

    def _remove_components(self, sample: np.ndarray) -> None:
        """Drop one random small connected component per channel (p per sample)."""
        if np.random.uniform() >= COMPONENT_REMOVAL_P_PER_SAMPLE:
            return
        limit = COMPONENT_MAX_FRACTION * sample[0].size
        for channel in range(len(sample)):
            mask = sample[channel] > 0
            if not mask.any():
                continue
            labelled, count = ndimage.label(mask)
            sizes = np.bincount(labelled.ravel())[1:]
            small = [index + 1 for index in range(count) if sizes[index] < limit]
            if small:
                sample[channel][labelled == small[int(np.random.randint(len(small)))]] = 0


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
