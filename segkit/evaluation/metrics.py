"""Overlap and surface metrics of one binary mask pair, in physical units (mm).

Definitions (documented in docs/cli/evaluate.md):

- Dice = 2|P∩R| / (|P| + |R|), IoU = |P∩R| / |P∪R|.
- Surface voxels of a mask: the mask minus its erosion by the full-connectivity structuring
  element (3×3×3 in 3D); voxels on the image border count as surface (zero outside).
- Directed surface distances P→R: for every surface voxel of P, the Euclidean distance (mm,
  anisotropic spacing) from its centre to the nearest surface-voxel centre of R, via
  ``scipy.ndimage.distance_transform_edt(sampling=spacing)``.
- HD95 = max(95th percentile of P→R, 95th percentile of R→P), percentiles with linear
  interpolation: the BraTS / MONAI ``compute_hausdorff_distance(percentile=95)`` / DeepMind
  surface-distance ``compute_robust_hausdorff(…, 95)`` definition (not the percentile of the
  pooled distances).
- NSD at tolerance τ = (#{P→R ≤ τ} + #{R→P ≤ τ}) / (#surface(P) + #surface(R)), MONAI's
  ``compute_surface_dice`` (voxel-counted, not surfel-area weighted); ≤ τ allows 1e-6 mm of
  floating-point round-off so that a distance equal to τ counts.
- Empty masks: both empty -> Dice 1, IoU 1, HD95 0, NSD 1; exactly one empty -> Dice 0,
  IoU 0, HD95 = the penalty (BraTS: 373.13 mm), NSD 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

BRATS_HD_PENALTY_MM = 373.13
DEFAULT_NSD_TOLERANCE_MM = 1.0
METRIC_NAMES = ("dice", "iou", "hd95", "nsd")
DISTANCE_ROUNDOFF_MM = 1e-6


def _union_box(a: np.ndarray, b: np.ndarray) -> tuple[slice, ...]:
    """Bounding box (slices) of the union of two non-empty-in-union masks."""
    union = a | b
    box = []
    for axis in range(union.ndim):
        other = tuple(i for i in range(union.ndim) if i != axis)
        hits = np.flatnonzero(union.any(axis=other))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """Mask XOR its full-connectivity erosion; the image border counts as outside (border_value 0)."""
    mask = np.asarray(mask, dtype=bool)
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def directed_surface_distances(pred: np.ndarray, ref: np.ndarray,
                               spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from pred's surface voxels to ref's surface, and from ref's to pred's.

    Both masks must be non-empty. Work is done on the union's bounding box padded by one
    zero voxel, which gives exactly the full-image result (outside the box both masks are
    empty, and the image border is treated as empty too).
    """
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    box = _union_box(pred, ref)
    pred_crop = np.pad(pred[box], 1)
    ref_crop = np.pad(ref[box], 1)
    pred_surface = surface_voxels(pred_crop)
    ref_surface = surface_voxels(ref_crop)
    sampling = [float(s) for s in spacing]
    to_ref = ndimage.distance_transform_edt(~ref_surface, sampling=sampling)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=sampling)
    return to_ref[pred_surface], to_pred[ref_surface]


def hd95_from_distances(pred_to_ref: np.ndarray, ref_to_pred: np.ndarray, percentile: float = 95.0) -> float:
    """Max of the two directed percentiles (linear interpolation)."""
    return float(max(np.percentile(pred_to_ref, percentile), np.percentile(ref_to_pred, percentile)))


def nsd_from_distances(pred_to_ref: np.ndarray, ref_to_pred: np.ndarray, tolerance_mm: float) -> float:
    """Fraction of both surfaces lying within tolerance_mm of the other surface."""
    # a distance equal to the tolerance counts as within it, whatever the last bit of sqrt rounding says
    limit = tolerance_mm + DISTANCE_ROUNDOFF_MM
    within = np.count_nonzero(pred_to_ref <= limit) + np.count_nonzero(ref_to_pred <= limit)
    return float(within / (pred_to_ref.size + ref_to_pred.size))


def mask_metrics(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float],
                 nsd_tolerance_mm: float = DEFAULT_NSD_TOLERANCE_MM,
                 hd_empty_penalty_mm: float = BRATS_HD_PENALTY_MM) -> dict[str, float | int]:
    """Dice, IoU, HD95 (mm), NSD and voxel counts of a predicted vs reference binary mask."""
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {ref.shape}")
    if len(spacing) != pred.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not match a {pred.ndim}-D mask")
    n_pred = int(np.count_nonzero(pred))
    n_ref = int(np.count_nonzero(ref))
    tp = int(np.count_nonzero(pred & ref))
    counts = {"n_pred": n_pred, "n_ref": n_ref, "tp": tp}
    if n_pred == 0 and n_ref == 0:
        return {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0, **counts}
    if n_pred == 0 or n_ref == 0:
        return {"dice": 0.0, "iou": 0.0, "hd95": float(hd_empty_penalty_mm), "nsd": 0.0, **counts}
    pred_to_ref, ref_to_pred = directed_surface_distances(pred, ref, spacing)
    return {"dice": 2.0 * tp / (n_pred + n_ref), "iou": tp / (n_pred + n_ref - tp),
            "hd95": hd95_from_distances(pred_to_ref, ref_to_pred),
            "nsd": nsd_from_distances(pred_to_ref, ref_to_pred, nsd_tolerance_mm), **counts}


def dice_only(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice with the empty-case rule (both empty -> 1); cheap, for model selection."""
    n_pred = int(np.count_nonzero(pred))
    n_ref = int(np.count_nonzero(ref))
    if n_pred + n_ref == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(np.logical_and(pred, ref))) / (n_pred + n_ref)
