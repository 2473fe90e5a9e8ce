"""Benchmark: 3d_fullres vs 3d_lowres -> 3d_cascade_fullres on a large-volume phantom, same CPU budget per stage.

The data (`segkit.phantom_cascade`): CT-like bodies with one large organ and lesions whose label
(left / right half of the organ) needs the whole organ in view. The plan comes from `segkit plan`
with a memory budget (`--gpu-memory`) small enough that the full-resolution patch covers under
1/8 of the median image (checked; the run stops otherwise), so the planner adds 3d_lowres and
3d_cascade_fullres. A two-fold split (shared by every configuration); per seed:

- 3d_fullres fold 0: `--time-budget MINUTES`;
- 3d_lowres folds 0 and 1: `--time-budget MINUTES` each (each predicts its validation cases, the
  cascade's training input);
- 3d_cascade_fullres fold 0: `--time-budget MINUTES`;

then fold 0 of 3d_fullres, 3d_lowres and 3d_cascade_fullres (which runs its 3d_lowres fold 0
first) predict the held-out test cases (generated with another seed, never trained on; without
mirroring TTA unless --tta), scored with Dice per class. The cascade therefore costs three stage budgets against the fullres one;
the table says so.

    python scripts/bench_cascade.py --out /tmp/bench_cascade --minutes 10 --seeds 0 1 2 --threads 1

A small run: --minutes 1 --cases 6 --test-cases 3 --shape 40 128 160.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from segkit.evaluation.metrics import dice_only
from segkit.io.image import read_image
from segkit.jsonio import write_json
from segkit.phantom_cascade import LABELS, generate_cascade_dataset

CONFIGS = ("3d_fullres", "3d_lowres", "3d_cascade_fullres")
CLASSES = {name: value for name, value in LABELS.items() if value}


def segkit(*args: str) -> float:
    """Run one segkit command (failing loudly); return its wall seconds."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "segkit", *args], check=True)
    return time.monotonic() - start


def plan(dataset: Path, work: Path, gpu_memory: float) -> dict:
    """`segkit plan` + `segkit preprocess` of the three configurations; refuse a plan without the cascade."""
    segkit("plan", str(dataset), "--work-dir", str(work), "--network", "unet", "--gpu-memory", str(gpu_memory),
           "--configurations", "3d_fullres", "3d_lowres", "--no-tradeoff", "--force")
    plans = json.loads((work / "plans.json").read_text())
    configurations = plans["configurations"]
    if "3d_cascade_fullres" not in configurations:
        raise SystemExit("the plan has no 3d_cascade_fullres: lower --gpu-memory or enlarge --shape")
    fullres = configurations["3d_fullres"]
    coverage = math.prod(fullres["patch_size"]) / math.prod(fullres["median_shape"])
    if coverage >= 1 / 8:
        raise SystemExit(f"the fullres patch covers {coverage:.3f} of the median image (>= 1/8): lower --gpu-memory")
    segkit("preprocess", str(dataset), "--work-dir", str(work), "-c", *CONFIGS)
    return plans


def seed_work_dir(base: Path, seed: int, splits: list[dict]) -> Path:
    """A work dir per seed sharing the base's plan and preprocessed arrays (linked), with the split written."""
    work = base.parent / f"work_seed{seed}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name in ("plans.json", "fingerprint.json"):
        shutil.copy(base / name, work / name)
    os.symlink(base / "preprocessed", work / "preprocessed")
    for config in ("3d_fullres", "3d_lowres"):
        (work / "models" / config).mkdir(parents=True)
        write_json(work / "models" / config / "splits.json", splits)
    return work


def held_out_dice(predictions: Path, labels: Path) -> dict[str, float]:
    """Mean Dice per class over the held-out cases."""
    scores: dict[str, list[float]] = {name: [] for name in CLASSES}
    for reference in sorted(labels.glob("*.nii.gz")):
        truth = read_image(reference).array
        predicted = read_image(predictions / reference.name).array
        for name, value in CLASSES.items():
            scores[name].append(dice_only(predicted == value, truth == value))
    return {name: float(np.mean(values)) for name, values in scores.items()}


def run_seed(dataset: Path, work: Path, seed: int, args: argparse.Namespace) -> dict:
    """Train every stage of one seed within the budget, predict the test cases with fold 0, score them."""
    common = ["--work-dir", str(work), "--time-budget", str(args.minutes), "--seed", str(seed), "--quiet",
              "--threads", str(args.threads), "--device", "cpu"]
    # only 3d_lowres's validation predictions are needed (the cascade's training input)
    wall = {"3d_fullres": segkit("train", str(dataset), "-c", "3d_fullres", "-f", "0", *common,
                                 "--no-predict-validation"),
            "3d_lowres_fold0": segkit("train", str(dataset), "-c", "3d_lowres", "-f", "0", *common),
            "3d_lowres_fold1": segkit("train", str(dataset), "-c", "3d_lowres", "-f", "1", *common),
            "3d_cascade_fullres": segkit("train", str(dataset), "-c", "3d_cascade_fullres", "-f", "0", *common,
                                         "--no-predict-validation")}
    result: dict = {"seed": seed, "train_wall_s": {k: round(v, 1) for k, v in wall.items()}, "dice": {},
                    "predict_wall_s": {}, "trained": {}}
    for config in CONFIGS:
        out = work / "test_predictions" / config
        result["predict_wall_s"][config] = round(segkit(
            "predict", "-i", str(dataset / "imagesTs"), "-o", str(out), "-m", str(work), "-c", config, "-f", "0",
            "--device", "cpu", "--threads", str(args.threads), "--no-postprocess",
            *([] if args.tta else ["--no-tta"])), 1)
        result["dice"][config] = held_out_dice(out, dataset / "labelsTs")
        entry = json.loads((work / "models" / config / "plans.json").read_text())["configurations"][config]
        log = [json.loads(line) for line in (work / "models" / config / "fold_0" / "log.jsonl").read_text().splitlines()]
        result["trained"][config] = {"patch_size": entry["patch_size"], "batch_size": entry["batch_size"],
                                     "features": entry["architecture"]["features_per_stage"],
                                     "steps": log[-1]["step"], "epochs": len(log)}
    return result


def table(results: list[dict]) -> str:
    """Markdown rows: per seed and configuration, Dice per class and the mean."""
    rows = ["| seed | configuration | organ | lesion left half | lesion right half | mean | fold-0 steps |",
            "|---|---|---|---|---|---|---|"]
    for result in results:
        for config in CONFIGS:
            dice = result["dice"][config]
            rows.append(f"| {result['seed']} | {config} | " + " | ".join(f"{dice[c]:.3f}" for c in CLASSES)
                        + f" | {np.mean(list(dice.values())):.3f} | {result['trained'][config]['steps']} |")
    for config in CONFIGS:
        means = [np.mean(list(r["dice"][config].values())) for r in results]
        rows.append(f"| mean +- sd | {config} | | | | {np.mean(means):.3f} +- {np.std(means):.3f} | |")
    return "\n".join(rows)


def main() -> None:
    """Generate, plan, train every seed's stages within the budget, score the held-out cases, save."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/bench_cascade")
    parser.add_argument("--minutes", type=float, default=10.0, help="CPU time budget per stage (each training run)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cases", type=int, default=10, help="training cases (two folds)")
    parser.add_argument("--test-cases", type=int, default=5)
    parser.add_argument("--shape", type=int, nargs=3, default=[48, 160, 192], help="volume shape (z y x)")
    parser.add_argument("--gpu-memory", type=float, default=0.25,
                        help="planning budget in GB: small enough that the fullres patch covers < 1/8 of the image")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tta", action="store_true", help="mirroring TTA for the test predictions (8x slower)")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    dataset = generate_cascade_dataset(out / "CascadeAbdomen", args.cases, seed=0, shape=tuple(args.shape))
    generate_cascade_dataset(dataset, args.test_cases, seed=1, shape=tuple(args.shape), prefix="test",
                             folder="imagesTs", label_folder="labelsTs")
    base = out / "work"
    plans = plan(dataset, base, args.gpu_memory)
    ids = [f"abdomen_{i + 1:03d}" for i in range(args.cases)]
    half = args.cases // 2
    splits = [{"train": ids[half:], "val": ids[:half]}, {"train": ids[:half], "val": ids[half:]}]
    results = [run_seed(dataset, seed_work_dir(base, seed, splits), seed, args) for seed in args.seeds]
    fullres = plans["configurations"]["3d_fullres"]
    summary = {"command": " ".join(sys.argv), "minutes_per_stage": args.minutes, "threads": args.threads,
               "tta": args.tta,
               "shape": args.shape, "cases": args.cases, "test_cases": args.test_cases,
               "planned": {c: {k: plans["configurations"][c][k] for k in ("patch_size", "median_shape",
                                                                          "target_spacing", "batch_size")}
                           for c in CONFIGS},
               "fullres_patch_coverage": math.prod(fullres["patch_size"]) / math.prod(fullres["median_shape"]),
               "results": results, "table": table(results)}
    write_json(out / "bench_cascade.json", summary)
    print(summary["table"])
    print(f"wrote {out / 'bench_cascade.json'}")


if __name__ == "__main__":
    main()
