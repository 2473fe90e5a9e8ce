"""Benchmark: Swin UNETR's calibrated memory fit vs measured CPU peaks over a grid (acceptance: within +-15 %).

Per feature size: the fit is measured (two calibration steps, `segkit.networks.families.swinunetr.memory_fit`,
into a fresh cache folder so nothing cached is reused), then one training step per grid point is
measured in a fresh process and compared with the memory model's prediction (total minus the
weights, as bench-memory compares). Needs MONAI (`pip install segkit-revmb[swin]`).

    python scripts/bench_swinunetr_memory.py [--threads 1] [--feature-sizes 12 24] [--out /tmp/swin_memory.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch

from segkit.networks.measurement.measure import measure_in_subprocess
from segkit.planning.architecture import architecture_for_patch
from segkit.planning.memory import estimate_peak_bytes

# none of them is a calibration point (32x32x64 and 64^3 at batch 1): the batch-2 points test the batch scaling
GRID = [([64, 64, 96], 1), ([32, 64, 64], 2), ([64, 64, 64], 2), ([64, 96, 96], 1), ([96, 96, 96], 1)]


def main() -> None:
    """Fit, measure the grid, print a markdown table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--feature-sizes", type=int, nargs="+", default=[12, 24])
    parser.add_argument("--grid-points", type=int, nargs="+", default=[len(GRID)],
                        help="first N grid points per feature size (one N, or one per feature size)")
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--num-outputs", type=int, default=3)
    parser.add_argument("--out", default="/tmp/swin_memory.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["SEGKIT_CACHE"] = tempfile.mkdtemp(prefix="segkit-swin-fit-")
    rows = []
    print("| feature size | patch | batch | predicted MiB | measured MiB | predicted / measured | step s |")
    print("|---|---|---|---|---|---|---|")
    for index, size in enumerate(args.feature_sizes):
        points = args.grid_points[min(index, len(args.grid_points) - 1)]
        arch = architecture_for_patch("swinunetr", [64, 64, 64])
        arch["features_per_stage"] = [size * f for f in (1, 1, 2, 4, 8, 16)]
        start = time.monotonic()
        estimate_peak_bytes(arch, [64, 64, 64], 1, args.in_channels, args.num_outputs)   # measures the fit
        fit_seconds = time.monotonic() - start
        for patch, batch in GRID[:points]:
            predicted = estimate_peak_bytes(arch, patch, batch, args.in_channels, args.num_outputs)
            step = predicted["total"] - predicted["parameters"]
            measured = measure_in_subprocess({"arch": arch, "patch_size": patch, "batch_size": batch,
                                              "in_channels": args.in_channels, "num_outputs": args.num_outputs,
                                              "steps": 2, "threads": args.threads})
            ratio = step / measured["peak_bytes"]
            rows.append({"feature_size": size, "patch_size": patch, "batch_size": batch, "predicted_step_bytes": step,
                         "measured_step_bytes": measured["peak_bytes"], "ratio": ratio,
                         "step_seconds": measured["step_seconds"], "fit_seconds": fit_seconds})
            print(f"| {size} | {'x'.join(map(str, patch))} | {batch} | {step / 2 ** 20:.0f} | "
                  f"{measured['peak_bytes'] / 2 ** 20:.0f} | {ratio:.3f} | {measured['step_seconds']:.1f} |", flush=True)
    worst = max(abs(r["ratio"] - 1) for r in rows)
    print(f"worst deviation {worst:.1%} over {len(rows)} points (acceptance: <= 15 %)")
    with open(args.out, "w") as handle:
        json.dump({"rows": rows, "worst_deviation": worst, "threads": args.threads}, handle, indent=1)


if __name__ == "__main__":
    main()
