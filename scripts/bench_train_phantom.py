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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_bench_common import add_budget_arguments, plan_and_preprocess, run_summary, train_fold0  # noqa: E402

from segkit.jsonio import read_json, write_json  # noqa: E402
from segkit.phantom import generate_dataset  # noqa: E402


def main() -> None:
    """Generate, plan, preprocess, train within the budget, print and save the result."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_budget_arguments(parser, "/tmp/bench_phantom", 10.0)
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--held-out", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    dataset, work = out / "Phantom", out / "work"
    generate_dataset(dataset, args.cases, seed=0)
    models = plan_and_preprocess(dataset, work, args.network)
    ids = [f"phantom_{i + 1:03d}" for i in range(args.cases)]
    write_json(models / "splits.json", [{"train": ids[:-args.held_out], "val": ids[-args.held_out:]}])
    summary, last, _ = run_summary(models, train_fold0(dataset, work, args), args.minutes * 60)
    result = summary | {"held_out_cases": ids[-args.held_out:], "held_out_mean_dice": last["val_mean_dice"],
                        "held_out_dice": last["val_dice"],
                        "schedule": read_json(models / "fold_0" / "schedule.json", "schedule file")}
    write_json(out / "result.json", result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
