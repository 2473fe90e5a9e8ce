"""Benchmark: UNet++ pruning levels -- Dice vs inference time on the brain-structures volumes.

Same data and protocol as scripts/bench_train_budget.py (three segkit.phantom_structures cases,
train on brain_001 + brain_002 within the budget, brain_003 held out as fold 0's validation case),
with `segkit plan --network unetpp`. Then `segkit choose-pruning` scores every level j = 1..L
(prediction of X^{0,j} by the sub-network of the nodes i + j' <= j) on brain_003 -- Dice per
structure in the preprocessed space (sliding window, no mirroring) and the seconds each level
took -- and writes pruning.json; the timing is repeated (--repeats) and the minimum kept.

    python scripts/bench_unetpp_pruning.py --out /tmp/bench_unetpp [--minutes 8] [--threads 1] [--repeats 3]
        [--features 16 32 64 128 --patch 32 32 32 -- --no-fit]

Cross-validated protocol (#25: the level chosen on validation, its Dice reported on other cases):
`--cases 8 --folds 2 --held-out 2 --epochs 4 --iterations-per-epoch 250` generates 8 cases, splits
the first 6 into 2 folds (each trained on 3, validated on 3), trains every fold for a fixed number
of steps (load-independent, unlike --minutes; --recipe short-cpu --augment light, what the --minutes
runs get), chooses the level on the 6 validation cases and then
scores every level on the last 2 cases, which no fold trained or validated on.

--features/--patch replace the plan's network by the first len(features) stages of its topology
at that patch (the CPU fit would otherwise pick its own; pass `-- --no-fit` to keep this one).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from train_bench_common import (  # noqa: E402
    CONFIGURATION,
    add_budget_arguments,
    plan_and_preprocess,
    run_summary,
    segkit,
    train_fold0,
)

from segkit.evaluation.choose_pruning import choose_pruning, format_levels, score_levels  # noqa: E402
from segkit.inference.model import load_model  # noqa: E402
from segkit.jsonio import read_json, write_json  # noqa: E402
from segkit.phantom_structures import generate_structures_dataset  # noqa: E402


def set_network(work: Path, features: list[int], patch: list[int], batch: int | None = None) -> None:
    """Keep the first len(features) stages of the planned topology, with these widths, this patch (and batch)."""
    plans_file = work / "plans.json"
    plans = read_json(plans_file, "plans file")
    entry = plans["configurations"]["3d_fullres"]
    arch, stages = entry["architecture"], len(features)
    for key in ("kernel_sizes", "strides", "blocks_per_stage"):
        arch[key] = arch[key][:stages]
    arch["decoder_blocks_per_stage"] = arch["decoder_blocks_per_stage"][-(stages - 1):]
    arch["features_per_stage"] = list(features)
    entry["patch_size"] = list(patch)
    if batch:
        entry["batch_size"] = batch
    write_json(plans_file, plans)


def cv_splits(case_ids: list[str], folds: int) -> list[dict]:
    """Round-robin folds over case_ids: fold k validates on every folds-th case from k and trains on the rest."""
    return [{"train": [c for i, c in enumerate(case_ids) if i % folds != k],
             "val": [c for i, c in enumerate(case_ids) if i % folds == k]} for k in range(folds)]


def train_fixed(dataset: Path, work: Path, fold: int, args: argparse.Namespace) -> float:
    """`segkit train -f fold --epochs E --iterations-per-epoch I`: a fixed number of steps; the wall seconds."""
    start = time.monotonic()
    segkit("train", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION, "-f", str(fold), "--epochs",
           str(args.epochs), "--iterations-per-epoch", str(args.iterations_per_epoch), "--seed", str(args.seed),
           "--recipe", args.recipe, "--augment", args.augment,
           *(["--threads", str(args.threads)] if args.threads else []), "--quiet", *args.train_args)
    return time.monotonic() - start


def held_out_table(record: dict, held: list[dict]) -> str:
    """Level, validation mean Dice (where it was chosen), held-out mean Dice and seconds, the choice marked."""
    by_level = {row["level"]: row for row in held}
    lines = [f"{'level':>5}  {'val Dice':>8}  {'val s':>7}  {'held-out Dice':>13}  {'held-out s':>10}"]
    for row in record["levels"]:
        mark = "  <- chosen on validation" if row["level"] == record["prune_level"] else ""
        other = by_level[row["level"]]
        lines.append(f"{row['level']:>5}  {row['mean_dice']:>8.4f}  {row['seconds']:>7.2f}  {other['mean_dice']:>13.4f}"
                     f"  {other['seconds']:>10.2f}{mark}")
    return "\n".join(lines)


def main() -> None:
    """Generate, plan (unetpp), preprocess, train, score every pruning level; print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_budget_arguments(parser, "/tmp/bench_unetpp", 8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats per level (minimum kept)")
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--features", type=int, nargs="+", help="widths per stage (their count = stages)")
    parser.add_argument("--patch", type=int, nargs=3, help="patch size with --features")
    parser.add_argument("--batch", type=int, help="batch size with --features")
    parser.add_argument("--cases", type=int, default=3, help="generated brain-structures cases")
    parser.add_argument("--folds", type=int, default=1,
                        help="1: the original protocol (train brain_001-002, validate brain_003); K > 1: K-fold "
                             "cross-validation over the cases before the held-out ones")
    parser.add_argument("--held-out", type=int, default=0, help="last cases kept out of every fold (with --folds > 1)")
    parser.add_argument("--epochs", type=int, help="fixed epochs instead of --minutes (with --folds > 1)")
    parser.add_argument("--iterations-per-epoch", type=int, default=250)
    parser.add_argument("--recipe", default="short-cpu", choices=["short-cpu", "nnunet"],
                        help="training recipe with --epochs (default short-cpu: the recipe the --minutes runs get; "
                             "without a time budget `segkit train` would pick nnU-Net's, which stays on the "
                             "all-background plateau for a few thousand CPU steps)")
    parser.add_argument("--augment", default="light", choices=["light", "full", "fast", "none"],
                        help="augmentation with --epochs (default light: what --minutes runs get; without a "
                             "time budget `--augment auto` would be full)")
    parser.add_argument("--train-folds", type=int, help="train (and choose on) only the first N of the K folds")
    parser.add_argument("--checkpoint", default="final", choices=["final", "latest", "best"],
                        help="the checkpoint choose-pruning scores (latest: an interrupted --skip-training run)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse --out's dataset and work dir; train only the folds without a final checkpoint")
    parser.add_argument("--skip-training", action="store_true",
                        help="reuse --out's dataset, work dir and trained folds: only choose and score")
    parser.set_defaults(network="unetpp")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    dataset, work = out / "BrainStructures", out / "work"
    if args.skip_training or args.resume:
        cross_validated(args, out, dataset, work, work / "models" / CONFIGURATION)
        return
    generate_structures_dataset(dataset, args.cases, args.seed)
    models = plan_and_preprocess(dataset, work, args.network)
    if args.features:
        set_network(work, args.features, args.patch, args.batch)
    if args.folds > 1:
        cross_validated(args, out, dataset, work, models)
        return
    write_json(models / "splits.json", [{"train": ["brain_001", "brain_002"], "val": ["brain_003"]}])
    summary, last, _ = run_summary(models, train_fold0(dataset, work, args), args.minutes * 60)
    record, path = choose_pruning(models, folds=["0"], tolerance=args.tolerance, device="cpu")
    loaded = load_model(models, folds=["0"], device="cpu")
    levels = [row["level"] for row in record["levels"]]
    repeats = [score_levels(loaded, levels) for _ in range(max(0, args.repeats - 1))]
    for row in record["levels"]:
        times = [row["seconds"]] + [r["seconds"] for rep in repeats for r in rep if r["level"] == row["level"]]
        row["seconds_all"], row["seconds"] = times, min(times)
    print(format_levels(record))
    result = summary | {"trainer_validation_mean_dice": last["val_mean_dice"], "pruning": record,
                        "pruning_file": str(path), "threads": args.threads, "repeats": args.repeats}
    write_json(out / "result.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "pruning"}, indent=1))


def cross_validated(args: argparse.Namespace, out: Path, dataset: Path, work: Path, models: Path) -> None:
    """Train K folds for fixed steps, choose the level on their validation cases, score every level on held-out ones."""
    if not args.epochs or args.held_out < 1:
        raise SystemExit("--folds > 1 needs --epochs (fixed steps) and --held-out >= 1")
    case_ids = [f"brain_{i + 1:03d}" for i in range(args.cases)]
    pool, held_out = case_ids[:-args.held_out], case_ids[-args.held_out:]
    splits = cv_splits(pool, args.folds)
    write_json(models / "splits.json", splits)
    runs = []
    trained = args.train_folds or args.folds
    for fold in range(trained):
        # A fold whose training finished in an earlier run is reused, so an interrupted CV resumes fold by fold.
        done = (models / f"fold_{fold}" / "checkpoint_final.pt").is_file()
        wall = float("nan") if args.skip_training or done else train_fixed(dataset, work, fold, args)
        log = [json.loads(line) for line in (models / f"fold_{fold}" / "log.jsonl").read_text().splitlines()]
        runs.append({"fold": fold, "wall_s": round(wall, 1), "steps": log[-1]["step"],
                     "train_seconds": log[-1].get("elapsed_s"),
                     "trainer_validation_mean_dice": log[-1].get("val_mean_dice")})
    folds = [str(k) for k in range(trained)]
    record, path = choose_pruning(models, folds=folds, checkpoint=args.checkpoint, tolerance=args.tolerance,
                                  device="cpu")
    loaded = load_model(models, folds=folds, checkpoint=args.checkpoint, device="cpu")
    levels = [row["level"] for row in record["levels"]]
    held = score_levels(loaded, levels, held_out)
    print(f"training: {args.epochs} epochs x {args.iterations_per_epoch} steps per fold (fixed, recipe {args.recipe},"
          f" augment {args.augment}); steps per fold {[run['steps'] for run in runs]}, seed {args.seed}")
    print(held_out_table(record, held))
    plans = read_json(models / "plans.json", "plans file")["configurations"][CONFIGURATION]
    result = {"protocol": f"{args.folds}-fold CV over {pool} (folds {folds} trained), held out {held_out}",
              "splits": splits,
              "epochs": args.epochs, "iterations_per_epoch": args.iterations_per_epoch, "seed": args.seed,
              "recipe": args.recipe, "augment": args.augment,
              "patch_size": plans["patch_size"], "batch_size": plans["batch_size"],
              "features_per_stage": plans["architecture"]["features_per_stage"], "folds": runs,
              "pruning": record, "held_out": held, "pruning_file": str(path), "threads": args.threads,
              "chosen_level": record["prune_level"],
              "held_out_dice_chosen": next(r["mean_dice"] for r in held if r["level"] == record["prune_level"]),
              "held_out_dice_full": next(r["mean_dice"] for r in held if r["level"] == record["depth"])}
    write_json(out / "result.json", result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("pruning", "held_out", "splits")}, indent=1))


if __name__ == "__main__":
    main()
