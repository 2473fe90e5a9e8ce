"""Benchmark: spatial augmentation per batch, batchgenerators v1 SpatialTransform vs segkit's batched grid_sample.

Both rotate (+-15 degrees about every axis) and scale (0.85-1.25) every sample of a batch of
2 x 1 x 32^3 patches (cropped from 2 x 1 x sample_size_for(patch, "fast")), with and without
elastic deformation; batchgenerators as segkit's "full" level configures it (cubic data, linear
labels) and with linear data. Median of --repeats batches, one torch/numpy thread (a loader worker).

    python scripts/bench_augmentation.py [--repeats 30] [--patch 32]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from batchgenerators.transforms.spatial_transforms import SpatialTransform  # noqa: E402

from segkit.training.augmentation import FAST_ROTATION_DEGREES, FAST_SCALE_RANGE, BatchSpatialTransform, sample_size_for  # noqa: E402


def batchgenerators_transform(patch: list[int], elastic: bool, order: int) -> SpatialTransform:
    """v1 SpatialTransform rotating and scaling every sample (as segkit's full level, p = 1)."""
    angle = math.radians(FAST_ROTATION_DEGREES)
    return SpatialTransform(patch, patch_center_dist_from_border=None, do_elastic_deform=elastic, alpha=(0.0, 200.0),
                            sigma=(9.0, 13.0), do_rotation=True, angle_x=(-angle, angle), angle_y=(-angle, angle),
                            angle_z=(-angle, angle), p_rot_per_axis=1, do_scale=True, scale=FAST_SCALE_RANGE,
                            border_mode_data="constant", border_cval_data=0, order_data=order,
                            border_mode_seg="constant", border_cval_seg=-1, order_seg=1, random_crop=False,
                            p_el_per_sample=1.0, p_scale_per_sample=1.0, p_rot_per_sample=1.0)


def median_seconds(transform, batch: dict, repeats: int) -> float:
    """Median wall seconds of one call on a fresh copy of the batch."""
    times = []
    for i in range(repeats + 1):
        np.random.seed(i)
        data = {k: v.copy() for k, v in batch.items()}
        start = time.perf_counter()
        transform(**data)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    """Time each transform and print the table as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--patch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    patch = [args.patch] * 3
    size = sample_size_for(patch, "fast")
    rng = np.random.default_rng(0)
    batch = {"data": rng.standard_normal((2, 1, *size)).astype(np.float32),
             "seg": rng.integers(0, 4, (2, 1, *size)).astype(np.float32)}
    rows = {}
    for elastic in (False, True):
        ours = BatchSpatialTransform(patch, p_rotation=1.0, p_scale=1.0, p_elastic=1.0 if elastic else 0.0)
        key = "elastic" if elastic else "rotation+scale"
        rows[key] = {"segkit_grid_sample_s": median_seconds(ours, batch, args.repeats)}
        for order in (3, 1):
            bg = batchgenerators_transform(patch, elastic, order)
            rows[key][f"batchgenerators_order{order}_s"] = median_seconds(bg, batch, args.repeats)
        rows[key] |= {f"speedup_vs_order{o}": round(rows[key][f"batchgenerators_order{o}_s"] /
                                                    rows[key]["segkit_grid_sample_s"], 2) for o in (3, 1)}
    result = {"patch": patch, "crop": size, "batch": 2, "repeats": args.repeats, "threads": 1,
              "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
              "rows": {k: {n: round(v, 4) for n, v in r.items()} for k, r in rows.items()}}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
