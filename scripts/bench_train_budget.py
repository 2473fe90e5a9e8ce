"""Benchmark: `segkit train --time-budget 8` on three brain-MR-like volumes (2 train, 1 held out).

Generates segkit.phantom_structures cases (80x100x85 at 2 mm, twelve structures of 200-1,400
voxels), plans (default --network unet, the CPU-friendly family), preprocesses, writes a
one-fold split (train on 2, validate on the third), trains within the budget and reports the
held-out Dice of the final weights per structure, as a user gets it: `segkit predict` (default
settings) on the held-out case, then `segkit evaluate` against its label (original space).
The trainer's own last validation (no TTA, preprocessed space) is reported beside it.

    python scripts/bench_train_budget.py --out /tmp/bench_budget [--minutes 8] [--network unet]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from segkit.jsonio import write_json
from segkit.phantom_structures import generate_structures_dataset


def segkit(*args: str) -> None:
    """Run one segkit command, failing loudly."""
    subprocess.run([sys.executable, "-m", "segkit", *args], check=True)


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
    parser.add_argument("--out", default="/tmp/bench_budget")
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--network", default="unet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice, i.e. every core)")
    parser.add_argument("--lr-mirror", action="store_true",
                        help="mirror along x too (default: the plan's mirror_axes, which leave out x for these left/right labels)")
    parser.add_argument("train_args", nargs="*", help="extra `segkit train` arguments (after --)")
    args = parser.parse_args()
    out = Path(args.out)
    dataset, work = out / "BrainStructures", out / "work"
    generate_structures_dataset(dataset, 3, args.seed)
    segkit("plan", str(dataset), "--work-dir", str(work), "--configurations", "3d_fullres", "--network", args.network,
           "--force")
    segkit("preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_fullres")
    if args.lr_mirror:
        # the planner drops x from mirror_axes for these lateralised labels; put it back (the old behaviour)
        plans_file = work / "plans.json"
        plans = json.loads(plans_file.read_text())
        plans["configurations"]["3d_fullres"]["mirror_axes"] = [0, 1, 2]
        write_json(plans_file, plans)
    models = work / "models" / "3d_fullres"
    write_json(models / "splits.json", [{"train": ["brain_001", "brain_002"], "val": ["brain_003"]}])
    start = time.monotonic()
    segkit("train", str(dataset), "--work-dir", str(work), "-c", "3d_fullres", "-f", "0", "--time-budget",
           str(args.minutes), *(["--threads", str(args.threads)] if args.threads else []), "--quiet", *args.train_args)
    wall = time.monotonic() - start
    held_out = predict_and_evaluate(dataset, models, out, "brain_003")
    log = [json.loads(line) for line in (models / "fold_0" / "log.jsonl").read_text().splitlines()]
    last = log[-1]
    schedule = json.loads((models / "fold_0" / "schedule.json").read_text())
    plans = json.loads((models / "plans.json").read_text())["configurations"]["3d_fullres"]
    result = {"wall_s": round(wall, 1), "budget_s": args.minutes * 60, "epochs": len(log), "steps": last["step"],
              "held_out_mean_dice": held_out["foreground_mean"]["dice"],
              "held_out_dice": {name: v["dice"] for name, v in held_out["mean"].items()},
              "held_out_hd95_mm": held_out["foreground_mean"]["hd95"],
              "trainer_validation_mean_dice": last["val_mean_dice"], "trainer_validation_dice": last["val_dice"],
              "patch_size": plans["patch_size"], "batch_size": plans["batch_size"],
              "features_per_stage": plans["architecture"]["features_per_stage"], "family": plans["architecture"]["family"],
              "training_fit": plans.get("training_fit", {}).get("chosen"), "mirror_axes": plans.get("mirror_axes"),
              "recipe": schedule.get("recipe", {}).get("name"),
              "schedule": schedule}
    write_json(out / "result.json", result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
