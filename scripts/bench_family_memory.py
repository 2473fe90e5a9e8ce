"""Measured CPU training-step peaks of the UNet++ and STU-Net families vs segkit's memory model.

    OMP_NUM_THREADS=1 python scripts/bench_family_memory.py --out family_memory.jsonl [--families unetpp stunet-s stunet-b]
        [--patches 32 48 64] [--batches 1 2]

One fresh subprocess per point (segkit.networks.measurement.measure.measure_in_subprocess, the same
measurement as `segkit bench-memory` on CPU: VmHWM after a reset minus VmRSS once model, batch
and targets exist; glibc told to mmap every block >= 64 KiB). Isotropic cubic patches, 4 stages
of 3x3x3 kernels (stride 2 after the first), 1 input channel, 3 outputs, SGD with momentum.
The weights exist before the baseline, so the model's comparable number is `total - parameters`
(as in scripts/bench_memory.py). Prints a markdown table (docs/benchmarks/unet-and-stu-net.md) with predicted /
measured per point.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segkit.networks.measurement.measure import measure_in_subprocess  # noqa: E402
from segkit.networks.registry import get_family  # noqa: E402
from segkit.planning.memory import estimate_peak_bytes  # noqa: E402

IN_CHANNELS, NUM_OUTPUTS, STAGES = 1, 3, 4
TOPOLOGY = {"spatial_dims": 3, "kernel_sizes": [[3, 3, 3]] * STAGES, "strides": [[1, 1, 1]] + [[2, 2, 2]] * 3,
            "norm": "instance", "deep_supervision": True}
MIB = 2 ** 20


def family_arch(name: str) -> dict:
    """The family's planner defaults on the 4-stage topology (widths 16..128 unless the family sets its own)."""
    arch = {**TOPOLOGY, "family": name, "features_per_stage": [16, 32, 64, 128]}
    arch.update(get_family(name).stage_defaults(STAGES, 1))
    return arch


def main() -> int:
    """Measure every (family, patch, batch) point; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["unetpp", "stunet-s", "stunet-b"])
    parser.add_argument("--patches", nargs="+", type=int, default=[32, 48, 64])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--out", help="JSON lines of every point")
    args = parser.parse_args()
    rows = []
    for name in args.families:
        arch = family_arch(name)
        for edge in args.patches:
            for batch in args.batches:
                patch = [edge] * 3
                spec = {"arch": arch, "patch_size": patch, "batch_size": batch, "in_channels": IN_CHANNELS,
                        "num_outputs": NUM_OUTPUTS, "steps": 2}
                measured = measure_in_subprocess(spec)
                predicted = estimate_peak_bytes(arch, patch, batch, IN_CHANNELS, NUM_OUTPUTS)
                # the weights exist before the measurement's baseline: compare total - parameters
                step_bytes = predicted["total"] - predicted["parameters"]
                row = {"family": name, "patch": patch, "batch": batch, "parameters": measured["parameters"],
                       "predicted_bytes": step_bytes, "measured_bytes": measured["peak_bytes"],
                       "ratio": step_bytes / measured["peak_bytes"], "step_seconds": measured["step_seconds"],
                       "breakdown": {k: v for k, v in predicted.items() if k != "total"}}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                if args.out:
                    with open(args.out, "a") as handle:
                        handle.write(json.dumps(row) + "\n")
    print("| family | params | patch | batch | predicted MiB | measured MiB | predicted / measured | step s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['family']} | {r['parameters'] / 1e6:.2f}M | {r['patch'][0]}^3 | {r['batch']} | "
              f"{r['predicted_bytes'] / MIB:.0f} | {r['measured_bytes'] / MIB:.0f} | {r['ratio']:.3f} | "
              f"{r['step_seconds']:.2f} |")
    worst = max(abs(r["ratio"] - 1) for r in rows)
    print(f"\nworst |predicted / measured - 1| = {worst:.3f} over {len(rows)} points")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
