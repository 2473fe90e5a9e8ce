"""Benchmark: the brain-structures 8-minute budget run with sparse labels vs dense labels, side by side.

For each data seed: generate the three segkit.phantom_structures volumes (as
scripts/bench_train_budget.py), then for each mode train fold 0 (brain_001 + brain_002, validate on
brain_003) within the same `segkit train --time-budget`:

- dense:     the full labels;
- slices:    `segkit sparsify --slices N --axes A B` (every N-th slice along two orthogonal axes);
- scribbles: `segkit sparsify --scribbles --scribble-slices K` (skeleton scribbles per structure).

Every mode is scored the same way: `segkit predict` on brain_003, `segkit evaluate` against its
*dense* label. Runs are sequential (one training at a time); /proc/loadavg is recorded before
each training, since the machine may be shared. Results append to OUT/results.jsonl.

On a heavily shared machine a wall-clock budget measures the other users' load, not the labels:
`--steps EPOCHS ITERATIONS` trains every mode for the same number of steps instead, with the
short CPU recipe and the configuration the 8-minute budget fit picks for this benchmark (unet
16-32-64, patch 28x36x28, batch 2), validating once at the end.

    python scripts/bench_sparse.py --out /tmp/bench_sparse --seeds 0 1 --modes dense slices [--minutes 8]
    python scripts/bench_sparse.py --out /tmp/bench_sparse --seeds 0 1 --modes dense slices --steps 4 60
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_bench_common import (  # noqa: E402
    CONFIGURATION,
    add_budget_arguments,
    plan_and_preprocess,
    run_summary,
    segkit,
    train_fold0,
)

from segkit.jsonio import read_json, write_json  # noqa: E402
from segkit.phantom_structures import generate_structures_dataset  # noqa: E402

MODES = ("dense", "slices", "scribbles")
# the configuration the 8-minute budget's hardware fit chose for this benchmark on the shared 2-core machine
FIXED_CONFIGURATION = {"patch_size": [28, 36, 28], "batch_size": 2, "architecture": {
    "family": "unet", "spatial_dims": 3, "features_per_stage": [16, 32, 64], "kernel_sizes": [[3, 3, 3]] * 3,
    "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "norm": "instance", "deep_supervision": True,
    "blocks_per_stage": [2, 2, 2], "decoder_blocks_per_stage": [2, 2]}}


def load_average() -> str:
    """The 1/5/15-minute load averages (shared machine: recorded with every run)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def training_dataset(dense: Path, mode: str, args: argparse.Namespace, seed: int) -> Path:
    """The dataset a mode trains on: the dense one, or a sparsified copy (made once)."""
    if mode == "dense":
        return dense
    sparse = dense.parent / f"BrainStructures_{mode}"
    if not sparse.exists():
        extra = ["--slices", str(args.slices), "--axes", *map(str, args.axes)] if mode == "slices" else \
            ["--scribbles", "--scribble-slices", str(args.scribble_slices), "--axes", str(args.axes[0])]
        segkit("sparsify", str(dense), str(sparse), *extra, "--seed", str(seed))
    return sparse


def train_fixed_steps(dataset: Path, work: Path, args: argparse.Namespace) -> float:
    """`segkit train -f 0` for a fixed number of steps on FIXED_CONFIGURATION; returns the wall seconds."""
    plans_file = work / "plans.json"
    plans = read_json(plans_file, "plans file")
    plans["configurations"][CONFIGURATION] |= FIXED_CONFIGURATION
    write_json(plans_file, plans)
    epochs, iterations = args.steps
    start = time.monotonic()
    segkit("train", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION, "-f", "0", "--no-fit",
           "--recipe", "short-cpu", "--epochs", str(epochs), "--iterations-per-epoch", str(iterations),
           "--validate-every", str(epochs), *(["--threads", str(args.threads)] if args.threads else []), "--quiet",
           *args.train_args)
    return time.monotonic() - start


def predict_and_evaluate(dense: Path, models: Path, out: Path, case_id: str, tta: bool) -> dict:
    """`segkit predict` on the held-out case (mirroring optional), `segkit evaluate` against its dense label."""
    images = out / "held_out_images"
    images.mkdir(exist_ok=True)
    for image in (dense / "imagesTr").glob(f"{case_id}_*.nii.gz"):
        shutil.copy(image, images / image.name)
    segkit("predict", "-i", str(images), "-o", str(out / "held_out_pred"), "-m", str(models), "-f", "0",
           *([] if tta else ["--no-tta"]))
    segkit("evaluate", str(out / "held_out_pred" / f"{case_id}.nii.gz"), str(dense / "labelsTr" / f"{case_id}.nii.gz"),
           "--regions-from", str(dense), "-o", str(out / "held_out_evaluation.json"))
    return json.loads((out / "held_out_evaluation.json").read_text())


def run_mode(dense: Path, out: Path, mode: str, args: argparse.Namespace, seed: int) -> dict:
    """Plan, preprocess, train within the budget and score one mode on the dense held-out label."""
    dataset = training_dataset(dense, mode, args, seed)
    run_dir = out / mode
    run_dir.mkdir(parents=True, exist_ok=True)
    models = plan_and_preprocess(dataset, run_dir / "work", args.network)
    write_json(models / "splits.json", [{"train": ["brain_001", "brain_002"], "val": ["brain_003"]}])
    load = load_average()
    wall = train_fixed_steps(dataset, run_dir / "work", args) if args.steps else \
        train_fold0(dataset, run_dir / "work", args)
    summary, last, _ = run_summary(models, wall, None if args.steps else args.minutes * 60)
    held_out = predict_and_evaluate(dense, models, run_dir, "brain_003", not args.no_tta)
    sparse_record = read_json(dataset / "dataset.json", "dataset.json").get("segkit_sparsify", {})
    return summary | {
        "mode": mode, "data_seed": seed, "tta": not args.no_tta, "threads": args.threads,
        "load_average_before": load, "load_average_after": load_average(),
        "annotated_fraction": sparse_record.get("annotated_fraction", 1.0),
        "annotated_fraction_train": [sparse_record.get("annotated_fraction_per_case", {}).get(c, 1.0)
                                     for c in ("brain_001", "brain_002")],
        "held_out_mean_dice": held_out["foreground_mean"]["dice"],
        "held_out_dice": {name: v["dice"] for name, v in held_out["mean"].items()},
        "held_out_hd95_mm": held_out["foreground_mean"]["hd95"],
        "trainer_validation_mean_dice": last["val_mean_dice"]}


def table(results: list[dict]) -> str:
    """Markdown rows: seed, mode, annotated %, steps, held-out Dice, ratio to the same seed's dense run."""
    dense = {r["data_seed"]: r["held_out_mean_dice"] for r in results if r["mode"] == "dense"}
    lines = ["| data seed | labels | annotated voxels | steps | train wall | held-out mean Dice | ratio to dense "
             "| load before |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        ratio = r["held_out_mean_dice"] / dense[r["data_seed"]] if r["data_seed"] in dense else float("nan")
        lines.append(f"| {r['data_seed']} | {r['mode']} | {100 * r['annotated_fraction']:.1f} % | {r['steps']} | "
                     f"{r['wall_s']} s | {r['held_out_mean_dice']:.3f} | {ratio:.2f} | {r['load_average_before']} |")
    return "\n".join(lines)


def main() -> None:
    """Run every (seed, mode) in order, appending each result; print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_budget_arguments(parser, "/tmp/bench_sparse", 8.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=["dense", "slices"])
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--axes", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--scribble-slices", type=int, default=3)
    parser.add_argument("--steps", type=int, nargs=2, metavar=("EPOCHS", "ITERATIONS"),
                        help="train a fixed number of steps (see above) instead of --minutes")
    parser.add_argument("--no-tta", action="store_true", help="predict the held-out case without mirroring (faster)")
    args = parser.parse_args()
    out = Path(args.out)
    results_file = out / "results.jsonl"
    for seed in args.seeds:
        seed_dir = out / f"seed_{seed}"
        dense = seed_dir / "BrainStructures"
        if not dense.exists():
            generate_structures_dataset(dense, 3, seed)
        for mode in args.modes:
            result = run_mode(dense, seed_dir, mode, args, seed)
            with open(results_file, "a") as handle:
                handle.write(json.dumps(result) + "\n")
            print(json.dumps({k: result[k] for k in ("mode", "data_seed", "held_out_mean_dice", "steps",
                                                     "annotated_fraction", "load_average_before")}), flush=True)
    results = [json.loads(line) for line in results_file.read_text().splitlines()]
    print(table(results))


if __name__ == "__main__":
    main()
