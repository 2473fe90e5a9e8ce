"""Benchmark: `segkit train --time-budget 8` on three brain-MR-like volumes (2 train, 1 held out).

Generates segkit.phantom_structures cases (80x100x85 at 2 mm, twelve structures of 200-1,400
voxels), plans (default --network unet, the CPU-friendly family), preprocesses, writes a
one-fold split (train on 2, validate on the third), trains within the budget and reports the
held-out Dice of the final weights per structure, as a user gets it: `segkit predict` (default
settings) on the held-out case, then `segkit evaluate` against its label (original space).
The trainer's own last validation (no TTA, preprocessed space) is reported beside it.

    python scripts/bench_train_budget.py --out /tmp/bench_budget [--minutes 8] [--network unet] [--init he]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
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


def predict_and_evaluate(dataset: Path, models: Path, out: Path, case_id: str) -> dict:
    """Held-out Dice as a user gets it: `segkit predict` (defaults: TTA, Gaussian tiles) + `segkit evaluate`."""
    images = out / "held_out_images"
    images.mkdir(exist_ok=True)
    for image in (dataset / "imagesTr").glob(f"{case_id}_*.nii.gz"):
        shutil.copy(image, images / image.name)
    segkit("predict", "-i", str(images), "-o", str(out / "held_out_pred"), "-m", str(models), "-f", "0")
    segkit("evaluate", str(out / "held_out_pred" / f"{case_id}.nii.gz"), str(dataset / "labelsTr" / f"{case_id}.nii.gz"),
           "--regions-from", str(dataset), "-o", str(out / "held_out_evaluation.json"))
    return json.loads((out / "held_out_evaluation.json").read_text())


def main() -> None:
    """Generate, plan, preprocess, train within the budget, print and save the result."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_budget_arguments(parser, "/tmp/bench_budget", 8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr-mirror", action="store_true",
                        help="mirror along x too (default: the plan's mirror_axes, which leave out x for these left/right labels)")
    parser.add_argument("--init", choices=("pytorch", "he"),
                        help="override the plan's architecture init (weight initialisation; default: the plan's)")
    args = parser.parse_args()
    out = Path(args.out)
    dataset, work = out / "BrainStructures", out / "work"
    generate_structures_dataset(dataset, 3, args.seed)
    models = plan_and_preprocess(dataset, work, args.network)
    if args.lr_mirror:
        # the planner drops x from mirror_axes for these lateralised labels; put it back (the old behaviour)
        plans_file = work / "plans.json"
        plans = read_json(plans_file, "plans file")
        plans["configurations"][CONFIGURATION]["mirror_axes"] = [0, 1, 2]
        write_json(plans_file, plans)
    if args.init:
        plans_file = work / "plans.json"
        plans = read_json(plans_file, "plans file")
        plans["configurations"][CONFIGURATION]["architecture"]["init"] = args.init
        write_json(plans_file, plans)
    write_json(models / "splits.json", [{"train": ["brain_001", "brain_002"], "val": ["brain_003"]}])
    summary, last, plans = run_summary(models, train_fold0(dataset, work, args), args.minutes * 60)
    held_out = predict_and_evaluate(dataset, models, out, "brain_003")
    schedule = read_json(models / "fold_0" / "schedule.json", "schedule file")
    result = summary | {
        "held_out_mean_dice": held_out["foreground_mean"]["dice"],
        "held_out_dice": {name: v["dice"] for name, v in held_out["mean"].items()},
        "held_out_hd95_mm": held_out["foreground_mean"]["hd95"],
        "trainer_validation_mean_dice": last["val_mean_dice"], "trainer_validation_dice": last["val_dice"],
        "init": plans["architecture"].get("init"), "mirror_axes": plans.get("mirror_axes"),
        "recipe": schedule.get("recipe", {}).get("name"), "schedule": schedule}
    write_json(out / "result.json", result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
