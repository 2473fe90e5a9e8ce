"""Metrics against DeepMind's surface-distance package and a brute-force implementation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import surface_distance  # hard import: the [test] extra installs it, a missing install must fail
from scipy import ndimage
from scipy.spatial import cKDTree

from segkit.evaluation.metrics import BRATS_HD_PENALTY_MM, mask_metrics, surface_voxels

# surface-distance 0.1 calls scipy.ndimage.morphology/filters, deprecated namespaces
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:surface_distance")

SPACINGS = [(3.0, 1.2, 0.9), (1.0, 1.0, 1.0), (0.7, 2.5, 1.1)]


def random_blob(rng: np.random.Generator, shape: tuple[int, ...], fraction: float, sigma: float) -> np.ndarray:
    """A smooth random mask holding about `fraction` of the voxels."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field > np.quantile(field, 1 - fraction)


def mask_pairs(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Prediction/reference pairs: unrelated blobs, a noisy copy, a shifted copy, sparse speckle."""
    rng = np.random.default_rng(seed)
    shape = (14, 22, 26)
    ref = random_blob(rng, shape, rng.uniform(0.05, 0.3), rng.uniform(1.0, 2.5))
    return [(random_blob(rng, shape, 0.15, 2.0), ref),
            (ref ^ (rng.random(shape) < 0.03), ref),
            (np.roll(ref, (1, -2, 3), axis=(0, 1, 2)), ref),
            (rng.random(shape) < 0.01, ref)]


def brute_force_surface(mask: np.ndarray) -> np.ndarray:
    """Foreground voxels with a 26-neighbour outside the mask or the image (explicit shifts)."""
    padded = np.pad(mask, 1)
    surface = np.zeros_like(mask)
    for offset in itertools.product((-1, 0, 1), repeat=mask.ndim):
        window = tuple(slice(1 + o, 1 + o + n) for o, n in zip(offset, mask.shape))
        surface |= mask & ~padded[window]
    return surface


def brute_force_distances(pred: np.ndarray, ref: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances by nearest-neighbour search over physical point sets."""
    points = [np.argwhere(brute_force_surface(m)) * np.asarray(spacing) for m in (pred, ref)]
    return cKDTree(points[1]).query(points[0])[0], cKDTree(points[0]).query(points[1])[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_surface_distance_package(seed: int) -> None:
    """Dice to 1e-6; HD95 within one voxel diagonal; NSD between the reference's at tolerance -/+ diagonal."""
    spacing = SPACINGS[seed % len(SPACINGS)]
    diagonal = float(np.linalg.norm(spacing))
    tolerance = 2.0
    for pred, ref in mask_pairs(seed):
        ours = mask_metrics(pred, ref, spacing, nsd_tolerance_mm=tolerance)
        distances = surface_distance.compute_surface_distances(ref, pred, spacing)
        assert ours["dice"] == pytest.approx(surface_distance.compute_dice_coefficient(ref, pred), abs=1e-6)
        assert abs(ours["hd95"] - surface_distance.compute_robust_hausdorff(distances, 95)) <= diagonal
        low = surface_distance.compute_surface_dice_at_tolerance(distances, max(tolerance - diagonal, 0.0))
        high = surface_distance.compute_surface_dice_at_tolerance(distances, tolerance + diagonal)
        assert low - 1e-9 <= ours["nsd"] <= high + 1e-9
        assert ours["iou"] == pytest.approx(ours["dice"] / (2 - ours["dice"]), abs=1e-9)


@pytest.mark.parametrize("seed", [3, 4])
def test_matches_brute_force_definition_exactly(seed: int) -> None:
    """Same definition computed by k-d tree search instead of distance transforms: exact agreement."""
    spacing = SPACINGS[seed % len(SPACINGS)]
    for pred, ref in mask_pairs(seed):
        assert np.array_equal(surface_voxels(pred), brute_force_surface(pred))
        to_ref, to_pred = brute_force_distances(pred, ref, spacing)
        hd95 = max(np.percentile(to_ref, 95), np.percentile(to_pred, 95))
        nsd = (np.sum(to_ref <= 1.55) + np.sum(to_pred <= 1.55)) / (to_ref.size + to_pred.size)
        ours = mask_metrics(pred, ref, spacing, nsd_tolerance_mm=1.55)
        assert ours["hd95"] == pytest.approx(hd95, abs=1e-6)
        assert ours["nsd"] == pytest.approx(nsd, abs=1e-9)
        tp = np.sum(pred & ref)
        assert ours["iou"] == pytest.approx(tp / np.sum(pred | ref), abs=1e-12)
        assert (ours["n_pred"], ours["n_ref"], ours["tp"]) == (pred.sum(), ref.sum(), tp)


def test_empty_case_rules() -> None:
    """Both empty: perfect scores; exactly one empty: zero overlap and the HD penalty (default and custom)."""
    empty = np.zeros((6, 7, 8), dtype=bool)
    full = empty.copy()
    full[2:4, 3:5, 3:6] = True
    spacing = (3.0, 1.0, 0.5)
    both = mask_metrics(empty, empty, spacing)
    assert (both["dice"], both["iou"], both["hd95"], both["nsd"]) == (1.0, 1.0, 0.0, 1.0)
    for pred, ref in ((empty, full), (full, empty)):
        one = mask_metrics(pred, ref, spacing)
        assert (one["dice"], one["iou"], one["hd95"], one["nsd"]) == (0.0, 0.0, BRATS_HD_PENALTY_MM, 0.0)
        assert mask_metrics(pred, ref, spacing, hd_empty_penalty_mm=99.5)["hd95"] == 99.5
    same = mask_metrics(full, full, spacing)
    assert (same["dice"], same["iou"], same["hd95"], same["nsd"]) == (1.0, 1.0, 0.0, 1.0)


def test_anisotropic_spacing_sets_physical_distances() -> None:
    """Single voxels 2 apart along z at 3 mm are 6 mm apart; along x at 0.5 mm, 1 mm; NSD follows the tolerance."""
    spacing = (3.0, 1.0, 0.5)
    a = np.zeros((8, 8, 8), dtype=bool)
    a[2, 4, 4] = True
    along_z, along_x = np.zeros_like(a), np.zeros_like(a)
    along_z[4, 4, 4] = True
    along_x[2, 4, 6] = True
    assert mask_metrics(a, along_z, spacing)["hd95"] == pytest.approx(6.0)
    assert mask_metrics(a, along_x, spacing)["hd95"] == pytest.approx(1.0)
    assert mask_metrics(a, along_z, spacing, nsd_tolerance_mm=5.9)["nsd"] == 0.0
    assert mask_metrics(a, along_z, spacing, nsd_tolerance_mm=6.0)["nsd"] == 1.0
    assert mask_metrics(a, along_x, spacing, nsd_tolerance_mm=1.0)["nsd"] == 1.0


def test_mask_touching_the_image_border() -> None:
    """A mask filling the image has its border voxels as surface, so two full masks have HD95 0."""
    full = np.ones((5, 6, 7), dtype=bool)
    assert surface_voxels(full).sum() == full.size - 3 * 4 * 5
    half = full.copy()
    half[:2] = False
    metrics = mask_metrics(half, full, (2.0, 1.0, 1.0))
    distances = surface_distance.compute_surface_distances(full, half, (2.0, 1.0, 1.0))
    assert abs(metrics["hd95"] - surface_distance.compute_robust_hausdorff(distances, 95)) <= np.linalg.norm((2, 1, 1))
    assert metrics["dice"] == pytest.approx(2 * half.sum() / (half.sum() + full.sum()))
