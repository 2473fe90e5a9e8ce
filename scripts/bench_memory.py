"""Measure training-step peak memory and time, and compare with segkit's memory model.

    python scripts/bench_memory.py measure --out bench_memory.jsonl [--only NAME ...]
    python scripts/bench_memory.py time --out bench_time.json [--reps 3]
    python scripts/bench_memory.py report bench_memory.jsonl [--budget-mb 300]
    python scripts/bench_memory.py cuda --out bench_cuda.jsonl        (needs a GPU; not run on CPU)

CPU peaks come from a fresh subprocess per configuration (segkit.networks.measurement.measure: VmHWM
after a reset via /proc/self/clear_refs, minus VmRSS after imports, model, batch and
targets exist; glibc told to mmap every block >= 64 KiB). CUDA peaks are
torch.cuda.max_memory_allocated minus the bytes allocated before the first step.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segkit.networks.measurement.measure import measure_in_subprocess, measure_step  # noqa: E402
from segkit.networks.registry import family_of  # noqa: E402
from segkit.planning.memory import estimate_peak_bytes  # noqa: E402

BATCH, IN_CHANNELS, NUM_OUTPUTS = 2, 1, 3
ISO4 = {"spatial_dims": 3, "kernel_sizes": [[3, 3, 3]] * 4, "strides": [[1, 1, 1]] + [[2, 2, 2]] * 3,
        "norm": "instance", "deep_supervision": True}
REV = {**ISO4, "family": "revmbconv", "features_per_stage": [16, 32, 64, 128], "blocks_per_stage": [3, 3, 3, 3],
       "decoder_blocks_per_stage": [3, 3, 3], "expansion_ratios": [2, 2, 4, 4], "reversible": True,
       "checkpointing": False}
PLAIN = {**REV, "reversible": False}


def _scaled(arch: dict, blocks: int | None = None, width: float | None = None) -> dict:
    """arch with every stage at `blocks` blocks and/or features times `width` (multiples of 8)."""
    arch = dict(arch)
    if blocks is not None:
        arch["blocks_per_stage"] = [blocks] * 4
        arch["decoder_blocks_per_stage"] = [blocks] * 3
    if width is not None:
        arch["features_per_stage"] = [int(f * width) // 8 * 8 for f in arch["features_per_stage"]]
    return arch


def configurations() -> dict[str, tuple[dict, list[int]]]:
    """Named (arch, patch) pairs: the budget comparison ladder plus plain U-Net / ResEnc points."""
    unet = {**ISO4, "family": "unet", "features_per_stage": [16, 32, 64, 128], "blocks_per_stage": [2] * 4,
            "decoder_blocks_per_stage": [2] * 3}
    resenc = {**unet, "family": "resenc", "blocks_per_stage": [1, 3, 4, 6], "decoder_blocks_per_stage": [1] * 3}
    aniso = {**REV, "kernel_sizes": [[1, 3, 3]] + [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]}
    return {
        "plain_b3_24": (PLAIN, [24, 24, 24]),
        "plain_b3_32": (PLAIN, [32, 32, 32]),
        "plain_b4_24": (_scaled(PLAIN, blocks=4), [24, 24, 24]),
        "plain_w1.5_24": (_scaled(PLAIN, width=1.5), [24, 24, 24]),
        "rev_b3_24": (REV, [24, 24, 24]),
        "rev_b3_40": (REV, [40, 40, 40]),
        "rev_b3_48": (REV, [48, 48, 48]),
        "rev_b6_24": (_scaled(REV, blocks=6), [24, 24, 24]),
        "rev_w2.5_24": (_scaled(REV, width=2.5), [24, 24, 24]),
        "ckpt_b3_32": ({**REV, "checkpointing": True}, [32, 32, 32]),
        "rev_aniso_16x48x48": (aniso, [16, 48, 48]),
        "unet_32": (unet, [32, 32, 32]),
        "unet_48": (unet, [48, 48, 48]),
        "unet_w2_32": (_scaled(unet, width=2), [32, 32, 32]),
        "resenc_32": (resenc, [32, 32, 32]),
        "resenc_48": (resenc, [48, 48, 48]),
        "plain_b3_24x24x32": (PLAIN, [24, 24, 32]),
        "rev_b3_40x48x48": (REV, [40, 48, 48]),
    }


def _spec(arch: dict, patch: list[int], device: str = "cpu", steps: int = 2) -> dict:
    """The measurement spec for one configuration."""
    return {"arch": arch, "patch_size": patch, "batch_size": BATCH, "in_channels": IN_CHANNELS,
            "num_outputs": NUM_OUTPUTS, "steps": steps, "device": device}


def _mode(arch: dict) -> str:
    """reversible / checkpoint / plain label of an entry (the family's name for single-mode families)."""
    family = family_of(arch)
    return family.execution_mode(arch) if len(family.execution_modes) > 1 else family.name


def run_measure(args: argparse.Namespace) -> None:
    """Measure every (selected) configuration in its own subprocess; append one JSON line each."""
    for name, (arch, patch) in configurations().items():
        if args.only and name not in args.only:
            continue
        result = measure_in_subprocess(_spec(arch, patch))
        line = {"name": name, "arch": arch, "patch_size": patch, **result}
        with open(args.out, "a") as handle:
            handle.write(json.dumps(line) + "\n")
        print(f"{name}: peak {result['peak_bytes'] / 2 ** 20:.1f} MiB, step {result['step_seconds']:.2f} s", flush=True)


def run_time(args: argparse.Namespace) -> None:
    """Step time of the three modes on one configuration, interleaved in one process (min of reps)."""
    import torch

    from segkit.networks import build_network, set_mode
    from segkit.networks.measurement.measure import _loss, output_shapes

    patch = args.patch
    torch.set_num_threads(args.threads)  # 1 thread: process CPU time is the work done, whatever else runs
    torch.manual_seed(0)
    net = build_network(REV, IN_CHANNELS, NUM_OUTPUTS)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.99, nesterov=True)
    x = torch.randn(BATCH, IN_CHANNELS, *patch)
    targets = [torch.randint(0, NUM_OUTPUTS, (BATCH, *s)) for s in output_shapes(REV, patch)]
    wall: dict[str, list[float]] = {"plain": [], "reversible": [], "checkpoint": []}
    cpu: dict[str, list[float]] = {mode: [] for mode in wall}
    for rep in range(args.reps + 1):
        for mode in wall:
            set_mode(net, mode)
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            optimizer.zero_grad(set_to_none=True)
            _loss(net(x), targets).backward()
            optimizer.step()
            if rep:  # the first round warms oneDNN's primitive cache
                wall[mode].append(time.perf_counter() - start_wall)
                cpu[mode].append(time.process_time() - start_cpu)
    result = {"patch_size": patch, "threads": torch.get_num_threads(),
              "wall_min": {m: min(v) for m, v in wall.items()}, "cpu_min": {m: min(v) for m, v in cpu.items()},
              "wall_all": wall, "cpu_all": cpu}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("wall_min", "cpu_min")}, indent=2))


def run_cuda(args: argparse.Namespace) -> None:
    """CUDA: three modes at 128^3 and at the largest patch the model predicts for the card."""
    import torch

    from segkit.planning.memory_search import largest_patch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: the CUDA benchmark was not run")
    budget = torch.cuda.get_device_properties(0).total_memory * 0.9
    base = {**REV, "features_per_stage": [32, 64, 128, 256], "expansion_ratios": [1, 2, 4, 4]}
    ctx = {"batch_size": BATCH, "in_channels": IN_CHANNELS, "num_outputs": NUM_OUTPUTS}
    plan_patch = largest_patch(int(budget), base, [128, 128, 128], ctx)
    for patch in ([128, 128, 128], plan_patch):
        for mode in ("reversible", "plain", "checkpoint"):
            arch = {**base, "reversible": mode != "plain", "checkpointing": mode == "checkpoint"}
            try:
                result = measure_step(_spec(arch, patch, device="cuda", steps=3))
            except torch.OutOfMemoryError:
                result = {"peak_bytes": None, "error": "out of memory"}
            torch.cuda.empty_cache()
            line = {"name": f"cuda_{mode}_{'x'.join(map(str, patch))}", "arch": arch, "patch_size": patch, **result}
            with open(args.out, "a") as handle:
                handle.write(json.dumps(line) + "\n")
            print(line["name"], result.get("peak_bytes"), result.get("step_seconds"), flush=True)


def run_report(args: argparse.Namespace) -> None:
    """Markdown tables: model vs measured per configuration, and the fixed-budget comparison."""
    rows = [json.loads(line) for line in Path(args.results).read_text().splitlines() if line.strip()]
    print("| configuration | mode | patch | params | measured peak MiB | predicted MiB | pred/meas | step s |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    errors = []
    for row in rows:
        if row.get("peak_bytes") is None:
            continue
        pred = estimate_peak_bytes(row["arch"], row["patch_size"], BATCH, IN_CHANNELS, NUM_OUTPUTS)
        comparable = pred["total"] - pred["parameters"]  # weights exist before the baseline is taken
        ratio = comparable / row["peak_bytes"]
        errors.append(abs(ratio - 1))
        print(f"| {row['name']} | {_mode(row['arch'])} | {'x'.join(map(str, row['patch_size']))} | "
              f"{row['parameters']:,} | {row['peak_bytes'] / 2 ** 20:.1f} | {comparable / 2 ** 20:.1f} | "
              f"{ratio:.3f} | {row['step_seconds']:.2f} |")
    print(f"\nmax |pred/meas - 1| = {max(errors):.3f} over {len(errors)} configurations")
    budget = args.budget_mb * 2 ** 20
    print(f"\nbudget {args.budget_mb} MiB (measured step peak + parameter bytes):")
    for row in rows:
        if row.get("peak_bytes") is None:
            continue
        total = row["peak_bytes"] + 4 * row["parameters"]
        fits = "fits" if total <= budget else "exceeds"
        print(f"- {row['name']}: {total / 2 ** 20:.1f} MiB {fits} "
              f"({math.prod(row['patch_size']):,} voxels, blocks {row['arch']['blocks_per_stage'][0]}, "
              f"features {row['arch']['features_per_stage']})")


def main() -> None:
    """Parse the subcommand and run it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    measure = sub.add_parser("measure")
    measure.add_argument("--out", default="bench_memory.jsonl")
    measure.add_argument("--only", nargs="*")
    timing = sub.add_parser("time")
    timing.add_argument("--out", default="bench_time.json")
    timing.add_argument("--reps", type=int, default=3)
    timing.add_argument("--patch", type=int, nargs=3, default=[24, 24, 24])
    timing.add_argument("--threads", type=int, default=1)
    cuda = sub.add_parser("cuda")
    cuda.add_argument("--out", default="bench_cuda.jsonl")
    report = sub.add_parser("report")
    report.add_argument("results")
    report.add_argument("--budget-mb", type=float, default=300)
    args = parser.parse_args()
    {"measure": run_measure, "time": run_time, "cuda": run_cuda, "report": run_report}[args.command](args)


if __name__ == "__main__":
    main()
