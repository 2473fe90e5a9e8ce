"""Benchmark segkit's metrics against MONAI and DeepMind's surface-distance on BraTS-like regions.

Run in the benchmark environment (it has monai; surface-distance is optional):
    .bench-venv/bin/python scripts/bench_evaluation.py --cases 4 --shape 96 192 192

For each synthetic case (nested WT/TC/ET-like regions, a perturbed prediction with a distant
false positive, anisotropic spacing) it times, on arrays already in memory and one process:
segkit's mask_metrics (Dice, IoU, HD95, NSD per region), MONAI's compute_dice +
compute_hausdorff_distance(percentile=95) + compute_surface_dice, and surface-distance's
equivalents; then the end-to-end `segkit evaluate` on the same cases written as NIfTI.
It prints a Markdown table and the largest differences between the implementations.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np
from scipy import ndimage

REGIONS = {"WT": [1, 2, 3], "TC": [1, 3], "ET": [3]}


def synthetic_case(seed: int, shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Reference and prediction label maps (0..3) with nested ellipsoidal lesions."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij"))
    extent = np.asarray(shape) * np.asarray(spacing)
    centre = extent * rng.uniform(0.4, 0.6, 3)
    radius = extent.min() * rng.uniform(0.15, 0.25)
    wobble = ndimage.zoom(rng.standard_normal([max(2, n // 8) for n in shape]), 8, order=1)[: shape[0], : shape[1], : shape[2]]
    dist = np.sqrt((((grid - centre[:, None, None, None]) / radius) ** 2).sum(0)) + 0.05 * wobble
    ref = np.zeros(shape, dtype=np.uint8)
    ref[dist < 1.0] = 2
    ref[dist < 0.6] = 3
    ref[dist < 0.35] = 1
    pred = ref.copy()
    pred[(dist < 1.08) & (ref == 0)] = 2  # slightly too large edema
    pred[(dist > 0.55) & (dist < 0.6)] = 2  # thin enhancing rim missed
    # distant false positive, small enough (about 1 % of the surface) that HD95 does not sit on the
    # jump between near and far distances, where implementations counting surface differently part ways
    corner = tuple(slice(int(n * 0.05), int(n * 0.05) + 2) for n in shape)
    pred[corner] = 3
    return ref, pred


def time_segkit(ref: np.ndarray, pred: np.ndarray, spacing) -> tuple[float, dict]:
    """segkit's four metrics for every region."""
    from segkit.evaluation.metrics import mask_metrics

    start = time.perf_counter()
    out = {name: mask_metrics(np.isin(pred, v), np.isin(ref, v), spacing, 1.0) for name, v in REGIONS.items()}
    return time.perf_counter() - start, out


def time_monai(ref: np.ndarray, pred: np.ndarray, spacing) -> tuple[float, dict]:
    """MONAI's Dice, HD95 (max of directed 95th percentiles) and surface Dice for every region."""
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice

    start = time.perf_counter()
    y_pred = torch.from_numpy(np.stack([np.isin(pred, v) for v in REGIONS.values()])[None].astype(np.float32))
    y = torch.from_numpy(np.stack([np.isin(ref, v) for v in REGIONS.values()])[None].astype(np.float32))
    dice = compute_dice(y_pred, y, include_background=True)[0]
    hd = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=list(spacing))[0]
    nsd = compute_surface_dice(y_pred, y, class_thresholds=[1.0] * len(REGIONS), include_background=True,
                               spacing=list(spacing))[0]
    elapsed = time.perf_counter() - start
    return elapsed, {name: {"dice": float(dice[i]), "hd95": float(hd[i]), "nsd": float(nsd[i])}
                     for i, name in enumerate(REGIONS)}


def time_surface_distance(ref: np.ndarray, pred: np.ndarray, spacing) -> tuple[float, dict] | None:
    """DeepMind surface-distance's Dice, robust Hausdorff 95 and surface Dice, if installed."""
    try:
        import surface_distance as sd
    except ImportError:
        return None
    start = time.perf_counter()
    out = {}
    for name, values in REGIONS.items():
        gt, pr = np.isin(ref, values), np.isin(pred, values)
        distances = sd.compute_surface_distances(gt, pr, spacing)
        out[name] = {"dice": sd.compute_dice_coefficient(gt, pr), "hd95": sd.compute_robust_hausdorff(distances, 95),
                     "nsd": sd.compute_surface_dice_at_tolerance(distances, 1.0)}
    return time.perf_counter() - start, out


def time_cli(cases: list[tuple[np.ndarray, np.ndarray]], spacing, workers: int) -> float:
    """End-to-end `segkit evaluate` (NIfTI reading included) over the cases."""
    from segkit.evaluation.evaluate import evaluate_folders
    from segkit.io.image import Geometry, write_image

    with tempfile.TemporaryDirectory() as tmp:
        geometry = Geometry(tuple(reversed(spacing)), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1),
                            tuple(reversed(cases[0][0].shape)))
        for index, (ref, pred) in enumerate(cases):
            write_image(ref, geometry, Path(tmp) / "ref" / f"c{index}.nii.gz")
            write_image(pred, geometry, Path(tmp) / "pred" / f"c{index}.nii.gz")
        start = time.perf_counter()
        evaluate_folders(Path(tmp) / "pred", Path(tmp) / "ref", REGIONS, num_workers=workers)
        return time.perf_counter() - start


def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--shape", type=int, nargs=3, default=[96, 192, 192])
    parser.add_argument("--spacing", type=float, nargs=3, default=[1.5, 1.0, 1.0])
    parser.add_argument("-j", "--workers", type=int, default=1)
    args = parser.parse_args()
    spacing = tuple(args.spacing)
    cases = [synthetic_case(seed, tuple(args.shape), spacing) for seed in range(args.cases)]
    totals = {"segkit": 0.0, "monai": 0.0, "surface-distance": 0.0}
    worst = {"monai": [0.0, 0.0, 0.0], "surface-distance": [0.0, 0.0, 0.0]}
    diagonal = float(np.linalg.norm(spacing))
    for ref, pred in cases:
        t_seg, ours = time_segkit(ref, pred, spacing)
        totals["segkit"] += t_seg
        for name, result in (("monai", time_monai(ref, pred, spacing)),
                             ("surface-distance", time_surface_distance(ref, pred, spacing))):
            if result is None:
                totals[name] = float("nan")
                continue
            totals[name] += result[0]
            for region in REGIONS:
                for k, metric in enumerate(("dice", "hd95", "nsd")):
                    worst[name][k] = max(worst[name][k], abs(ours[region][metric] - result[1][region][metric]))
    cli = time_cli(cases, spacing, args.workers)
    print(f"{args.cases} cases {tuple(args.shape)} at spacing {spacing} mm, 3 regions (WT/TC/ET), 1 process\n")
    print("| implementation | metric time per case (s) | ratio to segkit |")
    print("| --- | --- | --- |")
    for name, total in totals.items():
        print(f"| {name} | {total / args.cases:.3f} | {total / totals['segkit']:.2f} |")
    print(f"\n`segkit evaluate` end to end (NIfTI reading included, -j {args.workers}): {cli / args.cases:.3f} s per case")
    for name, (d, h, n) in worst.items():
        print(f"max |segkit - {name}|: Dice {d:.2e}, HD95 {h:.3f} mm ({h / diagonal:.2f} voxel diagonals), NSD {n:.4f}")


if __name__ == "__main__":
    main()
