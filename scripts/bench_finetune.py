"""Benchmark: fine-tuning a pretrained model vs training from scratch, same short CPU budget, several seeds.

1. Pretraining task: segkit.phantom_structures volumes (data seed 7, 4 cases) with every left/right
   pair merged into one label (6 structures instead of 12); plan (unet), preprocess, train fold 0
   (3 train / 1 validation case) with --time-budget PRETRAIN_MINUTES (the CPU hardware fit applies).
2. Target task: the brain-structures task of scripts/bench_train_budget.py (data seed 0, 12
   lateralised structures; train on brain_001-002, held-out brain_003).
   - `segkit plan --like <pretrained model folder>` (the fitted network and patch are adopted);
   - per seed, one after another (one training at a time), each within --time-budget MINUTES:
       finetune       `segkit train --pretrained <model folder>` (heads re-initialised: other labels)
       scratch        same plan, same network, random initialisation (`--no-fit`)
       scratch_plan   the task's own default plan (`segkit plan` + the hardware fit), as a user without a
                      pretrained model would run it (disable with --no-default-scratch)
   - held-out Dice as a user gets it: `segkit predict` (defaults) + `segkit evaluate` on brain_003.

    python scripts/bench_finetune.py --out /tmp/bench_finetune [--minutes 3] [--pretrain-minutes 6] [--seeds 0 1 2]

The machine's load average is recorded before every training (the numbers are "under load" when it is above
the core count).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_budget import predict_and_evaluate
from train_bench_common import CONFIGURATION, plan_and_preprocess, segkit

from segkit.io.image import read_image, write_image
from segkit.jsonio import read_json, write_json
from segkit.phantom_structures import LABEL_NAMES, generate_structures_dataset

TRAIN, HELD_OUT = ["brain_001", "brain_002"], "brain_003"


def load_average() -> float:
    """1-minute load average of the machine."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def merged_pretraining_dataset(root: Path, num_cases: int, seed: int) -> Path:
    """Brain-structure volumes with each left/right pair merged into one label (6 structures)."""
    generate_structures_dataset(root, num_cases, seed)
    for label_file in sorted((root / "labelsTr").glob("*.nii.gz")):
        image = read_image(label_file)
        write_image(((image.array.astype(np.int16) + 1) // 2).astype(np.uint8), image.geometry, label_file)
    meta = read_json(root / "dataset.json")
    names = [name.rsplit("_", 1)[0] for name in LABEL_NAMES[::2]]
    meta["labels"] = {"background": 0} | {name: i + 1 for i, name in enumerate(names)}
    meta["name"] = "BrainStructuresMerged"
    write_json(root / "dataset.json", meta)
    return root


def train(dataset: Path, work: Path, minutes: float, seed: int, args: argparse.Namespace, *extra: str) -> float:
    """`segkit train -f 0 --time-budget`; returns the wall seconds."""
    start = time.monotonic()
    segkit("train", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION, "-f", "0", "--time-budget",
           str(minutes), "--seed", str(seed), "--quiet", "--validate-every", str(args.validate_every),
           *(["--threads", str(args.threads)] if args.threads else []), *extra)
    return time.monotonic() - start


def run_record(models: Path, wall_s: float, held_out: dict, load_before: float) -> dict:
    """What one training run did and scored."""
    fold = models / "fold_0"
    log = [json.loads(line) for line in (fold / "log.jsonl").read_text().splitlines()]
    schedule = read_json(fold / "schedule.json", "schedule file")
    entry = read_json(models / "plans.json", "plans")["configurations"][CONFIGURATION]
    return {"held_out_mean_dice": held_out["foreground_mean"]["dice"],
            "held_out_dice": {name: v["dice"] for name, v in held_out["mean"].items()},
            "trainer_last_val_mean_dice": log[-1].get("val_mean_dice"), "epochs": len(log), "steps": log[-1]["step"],
            "wall_s": round(wall_s, 1), "load_average_before": load_before, "load_average_after": load_average(),
            "patch_size": entry["patch_size"], "batch_size": entry["batch_size"],
            "features_per_stage": entry["architecture"]["features_per_stage"],
            "training_fit": entry.get("training_fit", {}).get("chosen"), "lr": log[0]["lr"],
            "pretrained": {k: schedule["pretrained"][k] for k in ("loaded_tensors", "reinitialised", "label_set")}
            if "pretrained" in schedule else None}


def table(results: dict[str, list[dict]]) -> str:
    """Markdown table: per variant, held-out mean Dice per seed, mean +- sd, steps."""
    lines = ["| variant | held-out mean Dice per seed | mean ± sd | steps per run | epochs |", "| --- | --- | --- | --- | --- |"]
    for variant, runs in results.items():
        dice = [r["held_out_mean_dice"] for r in runs]
        spread = statistics.stdev(dice) if len(dice) > 1 else 0.0
        lines.append(f"| {variant} | {', '.join(f'{d:.3f}' for d in dice)} | {statistics.mean(dice):.3f} ± {spread:.3f} "
                     f"| {', '.join(str(r['steps']) for r in runs)} | {', '.join(str(r['epochs']) for r in runs)} |")
    return "\n".join(lines)


def main() -> None:
    """Pretrain, plan --like, then fine-tune vs scratch per seed; print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="/tmp/bench_finetune")
    parser.add_argument("--minutes", type=float, default=3.0, help="budget of each target-task training")
    parser.add_argument("--pretrain-minutes", type=float, default=6.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--network", default="unet")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, every core; on a machine "
                                                    "shared with other work 1 avoids oversubscription)")
    parser.add_argument("--validate-every", type=int, default=10,
                        help="validate every N epochs (default 10: the budget's minimum of 10 epochs validates once, "
                             "at the end; a whole-volume validation took ~13 s under load, most of a 3-minute budget "
                             "when run every epoch)")
    parser.add_argument("--no-default-scratch", action="store_true", help="skip the task's own default plan")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:   # segkit predict (a subprocess) uses torch's default threads otherwise
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    started = time.monotonic()

    pretrain_data = out / "PretrainMerged"
    if not (pretrain_data / "dataset.json").is_file():
        merged_pretraining_dataset(pretrain_data, 4, seed=7)
    pretrain_work = out / "pretrain_work"
    pretrain_models = pretrain_work / "models" / CONFIGURATION
    load, pretrain_wall = load_average(), 0.0
    if not (pretrain_models / "fold_0" / "checkpoint_final.pt").is_file():   # a rerun reuses the pretrained model
        pretrain_models = plan_and_preprocess(pretrain_data, pretrain_work, args.network)
        write_json(pretrain_models / "splits.json",
                   [{"train": ["brain_001", "brain_002", "brain_003"], "val": ["brain_004"]}])
        pretrain_wall = train(pretrain_data, pretrain_work, args.pretrain_minutes, 0, args)
    pretrain_log = [json.loads(line) for line in (pretrain_models / "fold_0" / "log.jsonl").read_text().splitlines()]
    pretrain = {"wall_s": round(pretrain_wall, 1), "load_average_before": load, "steps": pretrain_log[-1]["step"],
                "last_val_mean_dice": pretrain_log[-1].get("val_mean_dice")}
    print(f"pretraining: {pretrain}", flush=True)

    target = generate_structures_dataset(out / "BrainStructures", 3, 0)
    like_work = out / "like_work"
    segkit("plan", str(target), "--work-dir", str(like_work), "--configurations", CONFIGURATION,
           "--like", str(pretrain_models), "--force")
    segkit("preprocess", str(target), "--work-dir", str(like_work), "-c", CONFIGURATION)
    works = {"finetune": like_work, "scratch": like_work}
    if not args.no_default_scratch:
        works["scratch_plan"] = out / "default_work"
        plan_and_preprocess(target, works["scratch_plan"], args.network)
    variant_args = {"finetune": ["--pretrained", str(pretrain_models), "--pretrained-fold", "0"],
                    "scratch": ["--no-fit"], "scratch_plan": []}
    results: dict[str, list[dict]] = {variant: [] for variant in works}
    for seed in args.seeds:
        for variant, work in works.items():
            models = work / "models" / CONFIGURATION
            shutil.rmtree(models / "fold_0", ignore_errors=True)
            write_json(models / "splits.json", [{"train": TRAIN, "val": [HELD_OUT]}])
            load = load_average()
            wall = train(target, work, args.minutes, seed, args, *variant_args[variant])
            run_out = out / "runs" / f"{variant}_seed{seed}"
            shutil.rmtree(run_out, ignore_errors=True)
            run_out.mkdir(parents=True)
            held_out = predict_and_evaluate(target, models, run_out, HELD_OUT)
            record = run_record(models, wall, held_out, load) | {"seed": seed}
            results[variant].append(record)
            shutil.copytree(models / "fold_0", run_out / "fold_0")
            print(f"{variant} seed {seed}: held-out mean Dice {record['held_out_mean_dice']:.3f} "
                  f"({record['steps']} steps, load {load:.1f})", flush=True)
            write_json(out / "result.json", {"pretraining": pretrain, "runs": results})
    summary = table(results)
    write_json(out / "result.json", {"pretraining": pretrain, "runs": results, "table": summary,
                                     "minutes": args.minutes, "pretrain_minutes": args.pretrain_minutes,
                                     "cores": os.cpu_count(), "total_wall_s": round(time.monotonic() - started, 1)})
    print(summary)


if __name__ == "__main__":
    main()
