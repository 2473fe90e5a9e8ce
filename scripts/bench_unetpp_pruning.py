"""Benchmark: UNet++ pruning levels -- Dice vs inference time on the brain-structures volumes.

Same data and protocol as scripts/bench_train_budget.py (three segkit.phantom_structures cases,
train on brain_001 + brain_002 within the budget, brain_003 held out as fold 0's validation case),
with `segkit plan --network unetpp`. Then `segkit choose-pruning` scores every level j = 1..L
(prediction of X^{0,j} by the sub-network of the nodes i + j' <= j) on brain_003 -- Dice per
structure in the preprocessed space (sliding window, no mirroring) and the seconds each level
took -- and writes pruning.json; the timing is repeated (--repeats) and the minimum kept.

    python scripts/bench_unetpp_pruning.py --out /tmp/bench_unetpp [--minutes 8] [--threads 1] [--repeats 3]
        [--features 16 32 64 128 --patch 32 32 32 -- --no-fit]

--features/--patch replace the plan's network by the first len(features) stages of its topology
at that patch (the CPU fit would otherwise pick its own; pass `-- --no-fit` to keep this one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from train_bench_common import add_budget_arguments, plan_and_preprocess, run_summary, train_fold0  # noqa: E402

from segkit.evaluation.choose_pruning import choose_pruning, format_levels, score_levels  # noqa: E402
from segkit.inference.model import load_model  # noqa: E402
from segkit.jsonio import read_json, write_json  # noqa: E402
from segkit.phantom_structures import generate_structures_dataset  # noqa: E402


def set_network(work: Path, features: list[int], patch: list[int]) -> None:
    """Keep the first len(features) stages of the planned topology, with these widths and this patch."""
    plans_file = work / "plans.json"
    plans = read_json(plans_file, "plans file")
    entry = plans["configurations"]["3d_fullres"]
    arch, stages = entry["architecture"], len(features)
    for key in ("kernel_sizes", "strides", "blocks_per_stage"):
        arch[key] = arch[key][:stages]
    arch["decoder_blocks_per_stage"] = arch["decoder_blocks_per_stage"][-(stages - 1):]
    arch["features_per_stage"] = list(features)
    entry["patch_size"] = list(patch)
    write_json(plans_file, plans)


def main() -> None:
    """Generate, plan (unetpp), preprocess, train, score every pruning level; print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_budget_arguments(parser, "/tmp/bench_unetpp", 8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats per level (minimum kept)")
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--features", type=int, nargs="+", help="widths per stage (their count = stages)")
    parser.add_argument("--patch", type=int, nargs=3, help="patch size with --features")
    parser.set_defaults(network="unetpp")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    dataset, work = out / "BrainStructures", out / "work"
    generate_structures_dataset(dataset, 3, args.seed)
    models = plan_and_preprocess(dataset, work, args.network)
    if args.features:
        set_network(work, args.features, args.patch)
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


if __name__ == "__main__":
    main()
