"""Sliding-window inference: Gaussian-weighted overlapping tiles, tile batching, mirroring TTA.

Arrays are (C, z, y, x). A 2D configuration runs slice by slice: the slice axis becomes a
tile axis of size 1, so several slices share one forward pass (`tile_batch`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from segkit.inference.acceleration import autocast_for, memory_format_for

# weights below this fraction of the peak are raised to it: every voxel keeps a positive
# weight and the final division stays well conditioned in float32
MIN_WEIGHT_FRACTION = 1e-4
# nnU-Net v2 scales its tile weights to this peak before its float16 accumulation
NNUNET_WEIGHT_PEAK = 10.0
ACCUMULATIONS = ("fp32", "fp16")
# accumulate on the GPU only while logits + weights stay below this many bytes
DEVICE_ACCUMULATION_LIMIT = 2 * 1024 ** 3


@dataclass(frozen=True)
class WindowSettings:
    """How to tile one configuration: patch (network axes), step, mirroring, batching, 2D slicing."""

    patch_size: tuple[int, ...]
    step: float = 0.5
    mirror_axes: tuple[int, ...] = ()
    tile_batch: int = 4
    slice_axis: int | None = None
    sigma_scale: float = 1.0 / 8
    precision: str = "fp32"
    channels_last: bool = False
    tile_weights: str = "gaussian"   # or "nnunet_gaussian" (imported nnU-Net models: identical tile weights)
    # "fp32", or "fp16": nnU-Net v2's half-precision sum of weighted tile logits (imported nnU-Net models)
    accumulation: str = "fp32"
    # a flip along swap_axis exchanges left and right: its logits come back with channels in swap_order
    swap_axis: int | None = None
    swap_order: tuple[int, ...] = ()

    @property
    def tile_shape(self) -> tuple[int, int, int]:
        """Tile extent in (z, y, x) of the (possibly slice-moved) volume."""
        shape = (1, *self.patch_size) if self.slice_axis is not None else tuple(self.patch_size)
        return cast("tuple[int, int, int]", shape)


def gaussian_importance_map(patch_size: Sequence[int], sigma_scale: float = 1.0 / 8) -> np.ndarray:
    """Separable Gaussian over a patch (sigma = patch * sigma_scale), peak 1, minimum clipped > 0."""
    weights = np.ones((), dtype=np.float64)
    for size in patch_size:
        sigma = max(size * sigma_scale, 1e-6)
        positions = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
        weights = np.multiply.outer(weights, np.exp(-0.5 * (positions / sigma) ** 2))
    weights /= weights.max()
    return np.maximum(weights, MIN_WEIGHT_FRACTION).astype(np.float32)


def nnunet_gaussian_map(patch_size: Sequence[int], sigma_scale: float = 1.0 / 8) -> np.ndarray:
    """nnU-Net v2's tile weights: a Gaussian-filtered delta at index size // 2 (truncated at 4 sigma), peak 1,
    zeros raised to the smallest positive weight. Used for imported nnU-Net models so tiles blend identically."""
    delta = np.zeros(tuple(patch_size), dtype=np.float64)
    delta[tuple(size // 2 for size in patch_size)] = 1.0
    weights = gaussian_filter(delta, [size * sigma_scale for size in patch_size], 0, mode="constant", cval=0)
    weights /= weights.max()
    weights[weights == 0] = weights[weights > 0].min()
    return weights.astype(np.float32)


def nnunet_fp16_weights(patch_size: Sequence[int], sigma_scale: float = 1.0 / 8) -> torch.Tensor:
    """nnU-Net v2's tile weights as its sliding window uses them (`compute_gaussian(..., value_scaling_factor=10)`):
    the filtered delta scaled to peak 10 in float64, then float16, zeros raised to the smallest float16 weight."""
    delta = np.zeros(tuple(patch_size), dtype=np.float64)
    delta[tuple(size // 2 for size in patch_size)] = 1.0
    weights = gaussian_filter(delta, [size * sigma_scale for size in patch_size], 0, mode="constant", cval=0)
    weights /= weights.max() / NNUNET_WEIGHT_PEAK
    half = torch.from_numpy(weights).to(torch.float16)
    zero = half == 0
    half[zero] = half[~zero].min()
    return half


def tile_weight_map(tile: Sequence[int], settings: WindowSettings) -> np.ndarray:
    """The tile weights a WindowSettings asks for."""
    if settings.tile_weights == "nnunet_gaussian":
        return nnunet_gaussian_map(tile, settings.sigma_scale)
    if settings.tile_weights != "gaussian":
        raise ValueError(f"unknown tile_weights {settings.tile_weights!r}; use 'gaussian' or 'nnunet_gaussian'")
    return gaussian_importance_map(tile, settings.sigma_scale)


def tile_starts_along(size: int, tile: int, step: float) -> list[int]:
    """Start offsets along one axis: evenly spread, at most step * tile apart, first 0 and last size - tile."""
    if tile >= size:
        return [0]
    if tile == 1:
        return list(range(size))
    target = max(1.0, tile * step)
    count = math.ceil((size - tile) / target) + 1
    spacing = (size - tile) / (count - 1)
    return [int(round(spacing * i)) for i in range(count)]


def tile_slices(shape: Sequence[int], tile: Sequence[int], step: float) -> list[tuple[slice, ...]]:
    """Every tile's spatial slices for a volume of shape (z, y, x) at least as large as the tile."""
    per_axis = [tile_starts_along(n, t, step) for n, t in zip(shape, tile)]
    return [tuple(slice(s, s + t) for s, t in zip(starts, tile)) for starts in itertools.product(*per_axis)]


def pad_to_tile(data: torch.Tensor, tile: Sequence[int]) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Zero-pad (C, z, y, x) symmetrically up to the tile where smaller; return it and the slices undoing it."""
    shape = data.shape[1:]
    before = [max(0, t - n) // 2 for n, t in zip(shape, tile)]
    after = [max(0, t - n) - b for n, t, b in zip(shape, tile, before)]
    if not any(before) and not any(after):
        return data, tuple(slice(None) for _ in shape)
    pad = [v for axis in reversed(range(len(shape))) for v in (before[axis], after[axis])]
    padded = torch.nn.functional.pad(data, pad, mode="constant", value=0.0)
    return padded, tuple(slice(b, b + n) for b, n in zip(before, shape))


def mirror_combinations(mirror_axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of the mirror axes (the empty one first): the TTA flips."""
    axes = list(mirror_axes)
    return [combo for r in range(len(axes) + 1) for combo in itertools.combinations(axes, r)]


def forward_logits(network: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """The network's full-resolution logits (first output when it returns deep-supervision lists)."""
    out = network(batch)
    return out[0] if isinstance(out, (list, tuple)) else out


def forward_with_mirroring(network: torch.nn.Module, batch: torch.Tensor, mirror_axes: Sequence[int],
                           memory_format: torch.memory_format = torch.contiguous_format,
                           swap: tuple[int, Sequence[int]] | None = None) -> torch.Tensor:
    """Mean float32 logits over all flips of the network-space spatial axes (batch is (B, C, *spatial)).

    swap (axis, channel order): a flip along that axis shows the network the other side, so what it
    calls left there is right here; its logits are reordered before they are averaged.
    """
    combos = mirror_combinations(mirror_axes)
    total = forward_logits(network, batch.contiguous(memory_format=memory_format)).float()
    for combo in combos[1:]:
        dims = [2 + axis for axis in combo]
        flipped = torch.flip(batch, dims).contiguous(memory_format=memory_format)
        out = torch.flip(forward_logits(network, flipped).float(), dims)
        if swap is not None and swap[0] in combo:
            out = out[:, list(swap[1])]
        total += out
    if len(combos) > 1:
        total /= len(combos)
    return total


def _batches(items: list, size: int) -> Iterator[list]:
    """Consecutive chunks of at most size items."""
    for start in range(0, len(items), max(1, size)):
        yield items[start:start + size]


def accumulation_device(device: torch.device, num_outputs: int, shape: Sequence[int]) -> torch.device:
    """The compute device when logits fit DEVICE_ACCUMULATION_LIMIT there, else the CPU."""
    if device.type == "cpu":
        return device
    needed = (num_outputs + 1) * math.prod(shape) * 4
    return device if needed <= DEVICE_ACCUMULATION_LIMIT else torch.device("cpu")


def sliding_window_logits(network: torch.nn.Module, data: np.ndarray | torch.Tensor, num_outputs: int,
                          settings: WindowSettings, device: torch.device | str = "cpu") -> torch.Tensor:
    """Gaussian-weighted average of tile logits over a (C, z, y, x) volume; (K, z, y, x) float32 on the CPU."""
    device = torch.device(device)
    volume = torch.as_tensor(data, dtype=torch.float32)
    if settings.slice_axis is not None:
        volume = volume.movedim(1 + settings.slice_axis, 1)
    tile = settings.tile_shape
    volume, unpad = pad_to_tile(volume, tile)
    shape = tuple(volume.shape[1:])
    acc_device = accumulation_device(device, num_outputs, shape)
    source = volume.to(device) if acc_device == device else volume
    logits, weight_sum, weight = accumulators(num_outputs, shape, tile, settings, acc_device)
    weight = weight.to(device)
    weight_acc = weight.to(acc_device)
    memory_format = memory_format_for(len(settings.patch_size)) if settings.channels_last else torch.contiguous_format
    with torch.inference_mode(), autocast_for(settings.precision, device):
        for chunk in _batches(tile_slices(shape, tile, settings.step), settings.tile_batch):
            batch = torch.stack([source[(slice(None),) + region] for region in chunk]).to(device, non_blocking=True)
            if settings.slice_axis is not None:
                batch = batch[:, :, 0]
            swap = (settings.swap_axis, settings.swap_order) if settings.swap_axis is not None else None
            out = forward_with_mirroring(network, batch, settings.mirror_axes, memory_format, swap)
            if settings.slice_axis is not None:
                out = out[:, :, None]
            out = (out * weight).to(acc_device)   # float32 (a float16 weight is promoted, as in nnU-Net)
            for index, region in enumerate(chunk):
                logits[(slice(None),) + region] += out[index]   # rounded to the accumulator's precision
                weight_sum[region] += weight_acc
    logits /= weight_sum
    logits = logits[(slice(None),) + unpad]
    if settings.slice_axis is not None:
        logits = logits.movedim(1, 1 + settings.slice_axis)
    return logits.cpu().float().contiguous()


def accumulators(num_outputs: int, shape: Sequence[int], tile: Sequence[int], settings: WindowSettings,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zeroed logit and weight sums and the tile weights, in the precision settings.accumulation asks for.

    "fp16" reproduces nnU-Net v2's sliding window: its float16 sums (and float16 weights of peak
    10) decide which near-tied class wins, so an imported nnU-Net model needs them to give
    nnUNetv2_predict's labels voxel for voxel; the returned logits are float16 values in float32.
    """
    if settings.accumulation not in ACCUMULATIONS:
        raise ValueError(f"unknown accumulation {settings.accumulation!r}; use one of {ACCUMULATIONS}")
    if settings.accumulation == "fp16":
        if settings.tile_weights != "nnunet_gaussian":
            raise ValueError("fp16 accumulation is nnU-Net's and goes with tile_weights 'nnunet_gaussian'")
        dtype, weight = torch.float16, nnunet_fp16_weights(tile, settings.sigma_scale)
    else:
        dtype, weight = torch.float32, torch.from_numpy(tile_weight_map(tile, settings))
    logits = torch.zeros((num_outputs, *shape), dtype=dtype, device=device)
    return logits, torch.zeros(tuple(shape), dtype=dtype, device=device), weight


def logits_to_probabilities(logits: torch.Tensor, label_mode: str) -> torch.Tensor:
    """Softmax over outputs for 'softmax' plans, independent sigmoids for region ('sigmoid') plans."""
    if label_mode == "sigmoid":
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=0)
