"""Benchmark: train on the segkit.phantom dataset within 10 minutes on CPU; Dice on held-out cases.

Generates 8 phantom cases (4 MR channels, 32x48x48 at 3x1.2x1.2 mm, necrosis/edema/enhancing),
plans (--network unet, the CPU-friendly family), preprocesses, writes a one-fold split (6 train,
2 held out), trains with `--time-budget` and reports the held-out Dice of the final weights (the
last epoch's whole-case validation, in the preprocessed space).

    python scripts/bench_train_phantom.py --out /tmp/bench_phantom [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from segkit.jsonio import write_json
from segkit.phantom import generate_dataset


def segkit(*args: str) -> None:
    """Run one segkit command, failing loudly."""
    subprocess.run([sys.executable, "-m", "segkit", *args], check=True)


def main() -> None:
    """Generate, plan, preprocess, train within the budget, print and save the result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="/tmp/bench_phantom")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--network", default="unet")
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--held-out", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice, i.e. every core)")
    parser.add_argument("train_args", nargs="*", help="extra `segkit train` arguments (after --)")
    args = parser.parse_args()
    out = Path(args.out)
    dataset, work = out / "Phantom", out / "work"
    generate_dataset(dataset, args.cases, seed=0)
    segkit("plan", str(dataset), "--work-dir", str(work), "--configurations", "3d_fullres", "--network", args.network,
           "--force")
    segkit("preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_fullres")
    ids = [f"phantom_{i + 1:03d}" for i in range(args.cases)]
    models = work / "models" / "3d_fullres"
    write_json(models / "splits.json", [{"train": ids[:-args.held_out], "val": ids[-args.held_out:]}])
    start = time.monotonic()
    segkit("train", str(dataset), "--work-dir", str(work), "-c", "3d_fullres", "-f", "0", "--time-budget",
           str(args.minutes), *(["--threads", str(args.threads)] if args.threads else []), "--quiet", *args.train_args)
    wall = time.monotonic() - start
    log = [json.loads(line) for line in (models / "fold_0" / "log.jsonl").read_text().splitlines()]
    plans = json.loads((models / "plans.json").read_text())["configurations"]["3d_fullres"]
    result = {"wall_s": round(wall, 1), "budget_s": args.minutes * 60, "epochs": len(log), "steps": log[-1]["step"],
              "held_out_cases": ids[-args.held_out:], "held_out_mean_dice": log[-1]["val_mean_dice"],
              "held_out_dice": log[-1]["val_dice"], "patch_size": plans["patch_size"],
              "batch_size": plans["batch_size"], "features_per_stage": plans["architecture"]["features_per_stage"],
              "family": plans["architecture"]["family"], "training_fit": plans.get("training_fit", {}).get("chosen"),
              "schedule": json.loads((models / "fold_0" / "schedule.json").read_text())}
    write_json(out / "result.json", result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
