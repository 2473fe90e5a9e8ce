"""Benchmark: weight initialisation (architecture `init`) on the brain-structure volumes at a fixed step count.

The time-budget benchmark (bench_train_budget.py) buys as many steps as the machine allows, so on
a loaded machine two inits get different step counts (under load 15 one 4-minute run got 1 step).
This one trains a fixed number of steps instead, so the init is the only difference:

generate the three segkit.phantom_structures volumes (data --seed), `segkit plan --network`,
preprocess (once, shared by the inits), take the cheapest configuration the CPU hardware fit
considers (the plan shrunk by segkit.training.fitting.candidates with the short recipe's min
width: for unet patch 28x36x28, 3 stages, widths 16-64 -- what the fit picked under load); then
per init, on a copy of the work dir: set `init`, `segkit train -f 0 --recipe short-cpu --augment
light --no-fit --epochs E --iterations-per-epoch I` (train on brain_001 + brain_002, validate
brain_003 once at the end), and `segkit predict` + `segkit evaluate` on brain_003 as
bench_train_budget.py scores it (unless --no-predict).

    python scripts/bench_init.py --out /tmp/bench_init_unet0 --network unet --seed 0   # pytorch and he, 1,000 steps
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_budget import predict_and_evaluate  # noqa: E402
from train_bench_common import CONFIGURATION, plan_and_preprocess, segkit  # noqa: E402

from segkit.jsonio import read_json, write_json  # noqa: E402
from segkit.networks.blocks.init import INIT_SCHEMES  # noqa: E402
from segkit.phantom_structures import generate_structures_dataset  # noqa: E402
from segkit.plans import Configuration  # noqa: E402
from segkit.training.fitting import candidates  # noqa: E402
from segkit.training.recipe import SHORT_CPU  # noqa: E402


def fixed_configuration(work: Path, init: str) -> dict:
    """Replace the plan's configuration by the fit's cheapest candidate with the given init; return it."""
    plans_file = work / "plans.json"
    plans = read_json(plans_file, "plans file")
    entry = plans["configurations"][CONFIGURATION]
    if "fixed_for_benchmark" not in entry:
        change, chosen = list(candidates(Configuration.from_json(CONFIGURATION, entry), SHORT_CPU.min_width))[-1]
        entry = chosen.as_dict() | {"fixed_for_benchmark": change}
    entry["architecture"] = {**entry["architecture"], "init": init}
    plans["configurations"][CONFIGURATION] = entry
    write_json(plans_file, plans)
    return entry


def train_and_score(dataset: Path, work: Path, out: Path, init: str, args: argparse.Namespace) -> dict:
    """Train fold 0 of a copy of the work dir with one init for the fixed step count; its scores."""
    shutil.copytree(work, out / "work", dirs_exist_ok=False)
    entry = fixed_configuration(out / "work", init)
    models = out / "work" / "models" / CONFIGURATION
    start = time.monotonic()
    segkit("train", str(dataset), "--work-dir", str(out / "work"), "-c", CONFIGURATION, "-f", "0", "--recipe",
           "short-cpu", "--augment", "light", "--no-fit", "--epochs", str(args.epochs), "--iterations-per-epoch",
           str(args.iterations_per_epoch), "--validate-every", str(args.epochs), "--quiet",
           *(["--threads", str(args.threads), "--num-workers", "0"] if args.threads else []))
    wall = time.monotonic() - start
    log = [json.loads(line) for line in (models / "fold_0" / "log.jsonl").read_text().splitlines()]
    arch = entry["architecture"]
    result = {"network": args.network, "init": init, "data_seed": args.seed, "steps": log[-1]["step"],
              "threads": args.threads,
              "train_wall_s": round(wall, 1), "patch_size": entry["patch_size"], "batch_size": entry["batch_size"],
              "features_per_stage": arch["features_per_stage"], "configuration": entry["fixed_for_benchmark"],
              "final_train_loss": log[-1]["train_loss"],
              "trainer_validation_mean_dice": log[-1].get("val_mean_dice")}
    if not args.no_predict:
        held_out = predict_and_evaluate(dataset, models, out, "brain_003")
        result |= {"held_out_mean_dice": held_out["foreground_mean"]["dice"],
                   "held_out_dice": {name: v["dice"] for name, v in held_out["mean"].items()}}
    return result


def main() -> None:
    """Generate, plan, preprocess once; per init: fix the configuration, train the fixed steps, score."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="/tmp/bench_init")
    parser.add_argument("--network", default="unet")
    parser.add_argument("--inits", nargs="+", choices=INIT_SCHEMES, default=list(INIT_SCHEMES))
    parser.add_argument("--seed", type=int, default=0, help="data seed (training seed: segkit train's default 0)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--iterations-per-epoch", type=int, default=250)
    parser.add_argument("--threads", type=int,
                        help="torch threads for training, with the loader in the main process (a loaded machine: 1)")
    parser.add_argument("--no-predict", action="store_true",
                        help="score with the trainer's final validation only (sliding window, no TTA)")
    args = parser.parse_args()
    out = Path(args.out)
    dataset, work = out / "BrainStructures", out / "shared_work"
    generate_structures_dataset(dataset, 3, args.seed)
    models = plan_and_preprocess(dataset, work, args.network)
    write_json(models / "splits.json", [{"train": ["brain_001", "brain_002"], "val": ["brain_003"]}])
    results = [train_and_score(dataset, work, out / init, init, args) for init in args.inits]
    write_json(out / "result.json", results)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
