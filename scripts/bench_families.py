"""Benchmark: every registered network family at one memory budget on the brain-structures benchmark.

The data and training are scripts/bench_train_budget.py's (segkit.phantom_structures: three
brain-MR-like volumes, 2 train, 1 held out): per family, `segkit plan --network FAMILY
--gpu-memory BUDGET` (the planner spends the same memory budget on every family), preprocess,
`segkit train --time-budget MINUTES --no-fit` (the same CPU time per family; --no-fit keeps the
planned network, so the memory budget is what differs between families), then `segkit predict`
+ `segkit evaluate` on the held-out case. Then, for each trained configuration, the efficiency
report of `segkit bench-model` (parameters, FLOPs per patch, predicted and measured peak
training memory, step time, inference voxels/s) and, over the families of this run as the
reference set, the U-Score (segkit.evaluation.uscore). Every number comes from this one run.
Families that cannot be built here (swinunetr without MONAI) are listed as skipped.

    python scripts/bench_families.py --out /tmp/bench_families [--minutes 8] [--budget-gb 1] [--threads 1]
                                     [--families unet resenc ...] [--seed 0] [--resume]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_budget import predict_and_evaluate  # noqa: E402
from train_bench_common import CONFIGURATION, segkit  # noqa: E402

from segkit.cli.bench_model import model_report  # noqa: E402
from segkit.evaluation.uscore import FORMULA, MIN_REFERENCES, reference_bounds, u_score_terms  # noqa: E402
from segkit.jsonio import read_json, write_json  # noqa: E402
from segkit.networks.registry import family_names  # noqa: E402
from segkit.phantom_structures import generate_structures_dataset  # noqa: E402


def train_family(dataset: Path, out: Path, family: str, args: argparse.Namespace) -> dict:
    """Plan at the budget, preprocess, train for the time budget, evaluate the held-out case."""
    work = out / family / "work"
    models = work / "models" / CONFIGURATION
    evaluation = out / family / "held_out_evaluation.json"
    if args.resume and evaluation.is_file() and (models / "fold_0" / "log.jsonl").is_file():
        return _trained_record(family, read_json(evaluation, "evaluation"), models, None)
    segkit("plan", str(dataset), "--work-dir", str(work), "--configurations", CONFIGURATION, "--network", family,
           "--gpu-memory", str(args.budget_gb), "--force", "--no-tradeoff")
    segkit("preprocess", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION)
    write_json(models / "splits.json", [{"train": ["brain_001", "brain_002"], "val": ["brain_003"]}])
    start = time.monotonic()
    segkit("train", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION, "-f", "0", "--time-budget",
           str(args.minutes), "--threads", str(args.threads), "--no-fit", "--quiet")
    train_s = time.monotonic() - start
    held_out = predict_and_evaluate(dataset, models, out / family, "brain_003")
    return _trained_record(family, held_out, models, train_s)


def _trained_record(family: str, held_out: dict, models: Path, train_s: float | None) -> dict:
    """Held-out Dice, steps and the trained configuration entry of one family."""
    log = [json.loads(line) for line in (models / "fold_0" / "log.jsonl").read_text().splitlines()]
    entry = read_json(models / "plans.json", "plans file")["configurations"][CONFIGURATION]
    return {"family": family, "dice": held_out["foreground_mean"]["dice"],
            "train_wall_s": None if train_s is None else round(train_s, 1), "steps": log[-1]["step"], "entry": entry}


def measure_family(trained: dict, plans: dict, threads: int) -> dict:
    """bench-model's report for the trained configuration."""
    entry = trained["entry"]
    return model_report(entry["architecture"], list(entry["patch_size"]), int(entry["batch_size"]),
                        int(plans["num_channels"]), int(plans["num_outputs"]), steps=2, repeats=2, threads=threads)


def markdown_table(rows: list[dict], args: argparse.Namespace) -> str:
    """The table for docs/benchmarks/network-families.md."""
    lines = [f"Memory budget {args.budget_gb} GiB per family, {args.minutes} min training each, "
             f"{args.threads} thread(s), seed {args.seed}. U-Score: {FORMULA}; reference = the families of this run.",
             "",
             "| family | patch | batch | held-out Dice | params | GFLOPs/patch (fwd) | predicted MiB | measured MiB | "
             "step s | inference Mvox/s | steps | U-Score |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['family']} | skipped: {r['skipped']} |" + " |" * 10)
            continue
        lines.append(
            f"| {r['family']} | {'x'.join(map(str, r['patch_size']))} | {r['batch_size']} | {r['dice']:.3f} | "
            f"{r['parameters'] / 1e6:.2f} M | {r['flops'] / 1e9:.1f} | {r['predicted_step_bytes'] / 2 ** 20:.0f} | "
            f"{r['measured_step_bytes'] / 2 ** 20:.0f} | {r['step_seconds']:.2f} | {r['throughput'] / 1e6:.3f} | "
            f"{r['steps']} | {'undefined' if r.get('u_score') is None else format(r['u_score'], '.3f')} |")
    return "\n".join(lines)


def main() -> None:
    """Train and measure every family, then the U-Score over them; write results.json and table.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="/tmp/bench_families")
    parser.add_argument("--minutes", type=float, default=8.0, help="training time budget per family")
    parser.add_argument("--budget-gb", type=float, default=1.0, help="memory budget every family is planned for")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--families", nargs="+", help="default: every registered family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true",
                        help="reuse a family's finished training and evaluation in --out (measure and score again)")
    args = parser.parse_args()
    out = Path(args.out)
    dataset = out / "BrainStructures"
    if not (args.resume and dataset.is_dir()):
        generate_structures_dataset(dataset, 3, args.seed)
    rows: list[dict] = []
    for family in args.families or family_names():
        print(f"== {family}", flush=True)
        try:
            trained = train_family(dataset, out, family, args)
        except subprocess.CalledProcessError as err:   # e.g. swinunetr without MONAI: segkit says why, exit 2
            rows.append({"family": family, "skipped": f"segkit exited {err.returncode} (see the log above)"})
            continue
        plans = read_json(out / family / "work" / "plans.json", "plans file")
        report = measure_family(trained, plans, args.threads)
        rows.append({"family": family, "dice": trained["dice"], "steps": trained["steps"],
                     "train_wall_s": trained["train_wall_s"], "patch_size": report["patch_size"],
                     "batch_size": report["batch_size"], "parameters": report["parameters"],
                     "flops": report["flops"], "training_flops": report["training_flops"],
                     "predicted_step_bytes": report["predicted_step_bytes"],
                     "measured_step_bytes": report["measured_step_bytes"], "step_seconds": report["step_seconds"],
                     "throughput": report["inference"]["voxels_per_second"],
                     "features_per_stage": trained["entry"]["architecture"]["features_per_stage"]})
    measured = [r for r in rows if "skipped" not in r]
    if len(measured) >= MIN_REFERENCES:   # one family spreads no range: its U-Score is undefined
        bounds = reference_bounds(measured)
        for r in measured:
            r |= u_score_terms(r["dice"], r["parameters"], r["flops"], r["throughput"], bounds)
    table = markdown_table(rows, args)
    write_json(out / "results.json", {"rows": measured, "skipped": [r for r in rows if "skipped" in r],
                                      "u_score_formula": FORMULA, "budget_gb": args.budget_gb, "minutes": args.minutes,
                                      "threads": args.threads, "seed": args.seed,
                                      "voxels": {r["family"]: math.prod(r["patch_size"]) for r in measured}})
    (out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
