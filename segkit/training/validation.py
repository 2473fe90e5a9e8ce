"""Per-epoch validation on whole validation cases, with the same sliding window as `segkit predict`.

Tiles overlap by half a patch and are Gaussian-weighted (segkit.inference.sliding_window), without
mirroring: the Dice is what prediction without TTA gives. Non-overlapping, unweighted tiles were
cheaper but put tile borders through the structures and under-reported the held-out Dice
badly (0.18-0.76 against 0.86-0.94 from `segkit predict` on the same weights, docs/benchmarks.md).
Dice is computed per output class/region over all validation cases together (summed
TP/FP/FN), in the preprocessed space; -1 counts as background. With an ignore label only the
annotated voxels are counted. The validation loss is the training loss (without deep
supervision) on the stitched logits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from segkit.inference.sliding_window import WindowSettings, sliding_window_logits, tile_slices
from segkit.training.loader import Case
from segkit.training.losses import annotated_mask, predicted_masks, target_masks

VALIDATION_STEP = 0.5
STITCH_FACTOR = 1.25        # a pass costs its tiles' forward passes plus Gaussian stitching and the loss
SAMPLED_REGION_PATCHES = 1.5   # a sampled region spans 1.5 patches per axis (2 tiles per axis at step 0.5)


def validation_window(patch: Sequence[int], spatial_dims: int, precision: str) -> WindowSettings:
    """Sliding-window settings of the per-epoch validation (2D cases arrive with the slice axis first)."""
    return WindowSettings(tuple(patch), VALIDATION_STEP, mirror_axes=(), tile_batch=2,
                          slice_axis=0 if spatial_dims == 2 else None, precision=precision)


@torch.no_grad()
def validate(model: torch.nn.Module, cases: list, patch: Sequence[int], spatial_dims: int, num_outputs: int,
             label_mode: str, to_target: Callable[[np.ndarray], np.ndarray], loss_fn: Callable,
             device: torch.device, precision: str = "fp32") -> dict:
    """Summed TP/FP/FN per class and the summed loss over cases: {"tp", "fp", "fn", "loss", "cases"}."""
    was_training = model.training
    model.eval()
    settings = validation_window(patch, spatial_dims, precision)
    num_classes = num_outputs - 1 if label_mode == "softmax" else num_outputs
    tp, fp, fn = (torch.zeros(num_classes, dtype=torch.float64) for _ in range(3))
    loss_sum = 0.0
    for case in cases:
        logits = sliding_window_logits(model, case.network_input(), num_outputs, settings, device)[None]
        target = torch.from_numpy(to_target(np.asarray(case.seg)[None, None]))
        loss_sum += float(loss_fn(logits, target))
        pred, truth = predicted_masks(logits, label_mode), target_masks(target, label_mode, num_outputs)
        annotated = annotated_mask(target, label_mode, num_outputs)
        if annotated is not None:   # sparse annotation: unannotated voxels are neither right nor wrong
            pred, truth = pred & annotated, truth & annotated
        dims = [0] + list(range(2, pred.ndim))
        tp += (pred & truth).sum(dims).double()
        fp += (pred & ~truth).sum(dims).double()
        fn += (~pred & truth).sum(dims).double()
    model.train(was_training)
    return {"tp": tp, "fp": fp, "fn": fn, "loss": loss_sum, "cases": len(cases)}


def validation_tiles(cases: list, patch: Sequence[int], spatial_dims: int) -> int:
    """Number of sliding-window tiles one whole validation pass runs."""
    total = 0
    for case in cases:
        shape = case.seg.shape[1:] if spatial_dims == 2 else case.seg.shape
        count = len(tile_slices([max(n, p) for n, p in zip(shape, patch)], patch, VALIDATION_STEP))
        total += count * (case.seg.shape[0] if spatial_dims == 2 else 1)
    return total


@torch.no_grad()
def estimate_validation_seconds(model: torch.nn.Module, cases: list, patch: Sequence[int], spatial_dims: int,
                                in_channels: int, device: torch.device, autocast) -> float:
    """Seconds of one whole validation pass: one timed tile batch (after a warm-up) x the pass's tile batches."""
    was_training = model.training
    model.eval()
    batch = torch.zeros((2, in_channels, *patch), device=device)
    timings = []
    for _ in range(2):
        start = time.monotonic()
        with autocast():
            model(batch)
        timings.append(time.monotonic() - start)
    model.train(was_training)
    return timings[-1] * ((validation_tiles(cases, patch, spatial_dims) + 1) // 2) * STITCH_FACTOR


def sampled_cases(cases: list, patch: Sequence[int], fraction: float, seed: int) -> list:
    """Regions (1.5 patches per axis) of each case covering about `fraction` of its validation tiles.

    Centres cycle through the case's classes (a seeded voxel of each), so every structure is
    scored however small; the same regions every time (same seed), so passes are comparable.
    At least one region per case. 3D cases only; 2D cases are returned whole.
    """
    if fraction >= 1:
        return list(cases)
    rng = np.random.default_rng(seed)
    out = []
    for case in cases:
        if case.seg.ndim != len(patch):
            out.append(case)
            continue
        shape = case.seg.shape
        size = [min(n, int(round(p * SAMPLED_REGION_PATCHES))) for n, p in zip(shape, patch)]
        per_region = len(tile_slices([max(s, p) for s, p in zip(size, patch)], patch, VALIDATION_STEP))
        whole = len(tile_slices([max(n, p) for n, p in zip(shape, patch)], patch, VALIDATION_STEP))
        count = max(1, int(round(fraction * whole / per_region)))
        locations = case.foreground_locations or [np.array([[n // 2 for n in shape]])]
        for index in range(count):
            voxels = locations[index % len(locations)]
            centre = voxels[int(rng.integers(len(voxels)))]
            lower = [int(np.clip(c - s // 2, 0, n - s)) for c, s, n in zip(centre, size, shape)]
            region = tuple(slice(lo, lo + s) for lo, s in zip(lower, size))
            previous = np.array(case.previous[region]) if case.previous is not None else None
            out.append(Case(f"{case.case_id}@{index}", np.array(case.data[(slice(None),) + region]),
                            np.array(case.seg[region]), {}, previous, case.previous_classes))
    return out


def dice_from_counts(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> list[float | None]:
    """Dice per class; None where a class is absent from both prediction and truth."""
    denominator = 2 * tp + fp + fn
    return [None if d == 0 else float(2 * t / d) for t, d in zip(tp, denominator)]
