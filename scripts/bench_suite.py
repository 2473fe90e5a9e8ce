"""The real-data suite: one recipe variant against today's on every dataset, over seeds, side by side.

A default of the short recipe is decided on the suite's mean *and* its worst dataset (issue #27):
a change that raises one dataset and lowers another beyond the seed spread does not become one.

Datasets (each with held-out subjects that are never trained or validated on; built only from
images and labels that ship inside installed packages, provenance in docs/dependencies.md):
  brain-lateral  real T1 MR, 12 subcortical structures with left and right apart (realdata, lateral)
  brain-merged   real T1 MR, 8 structures with left and right merged (realdata: the development benchmark)
  ct-abdomen     real abdominal CT, 8 organs (TotalSegmentator's test CTs and reference masks: train on
                 deformations of one subject, hold out a second subject, contrast-enhanced, another grid)
  lesion-lung-ct real chest CT, one lesion (pyradiomics' test cases: train on deformations of lung2's 48 ml
                 tumour, hold out lung1's 1.4 ml nodule)
  lesion-brain-mr real brain MR, one lesion (pyradiomics' test cases: train on deformations of brain1,
                 hold out brain2)
The CT and lesion tasks have two real subjects each (one trained on, one held out), so their held-out
Dice is one case's. A dataset is one entry in DATASETS.

Every run goes through scripts/bench_real.py's steps (plan + preprocess once per variant and dataset,
train fold 0, predict and evaluate the held-out subjects), one training at a time, seeds outermost.
`--steps EPOCHS ITERATIONS` trains a fixed number of steps on bench_real's FIXED_CONFIGURATION, which
ranks recipes on a loaded machine (wall-clock budgets are not comparable there); `--minutes` runs the
time budget as users do.

    python scripts/bench_suite.py --out /tmp/suite --steps 5 200 --seeds 0 1 2 --threads 1 \
        --today-root <checkout of main> [-- extra segkit train arguments for the variant]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path

import bench_real
import realdata

HERE = Path(__file__).resolve().parents[1]
DATASETS: dict[str, Callable[[Path], Path]] = {
    "brain-lateral": lambda root: realdata.build_dataset(root, lateral=True),
    "brain-merged": lambda root: realdata.build_dataset(root),
    "ct-abdomen": lambda root: realdata.build_ct_dataset(root),
    "lesion-lung-ct": lambda root: realdata.build_lesion_dataset(root, "lesion-lung-ct"),
    "lesion-brain-mr": lambda root: realdata.build_lesion_dataset(root, "lesion-brain-mr"),
}


def split_of(dataset: Path) -> list[dict]:
    """Fold 0 of a built dataset: the last training case validates, the others train (held-out cases apart)."""
    cases = sorted(p.name[:-len("_0000.nii.gz")] for p in (dataset / "imagesTr").glob("*_0000.nii.gz"))
    return [{"train": cases[:-1], "val": cases[-1:]}]


def summarise(rows: list[dict]) -> dict:
    """Mean held-out Dice over seeds, its spread (max - min) and the per-seed values."""
    values = [r["held_out_mean_dice"] for r in rows]
    return {"mean": round(statistics.mean(values), 4), "spread": round(max(values) - min(values), 4),
            "per_seed": values}


def verdict(table: dict) -> dict:
    """Suite mean per variant, and whether the variant is lower than today on any dataset beyond the seed spread."""
    means = {variant: round(statistics.mean(d[variant]["mean"] for d in table.values()), 4)
             for variant in ("today", "variant")}
    worse = [name for name, d in table.items()
             if d["today"]["mean"] - d["variant"]["mean"] > max(d["today"]["spread"], d["variant"]["spread"])]
    return {"suite_mean": means, "lower_beyond_spread": worse,
            "becomes_default": means["variant"] > means["today"] and not worse}


def main() -> None:
    """Build the datasets, run today and the variant on each for every seed, print the suite table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="/tmp/bench_suite")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--steps", type=int, nargs=2, metavar=("EPOCHS", "ITERATIONS"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int)
    parser.add_argument("--today-root", required=True, help="source tree of today's recipe (a checkout of main)")
    parser.add_argument("train_args", nargs="*", help="extra `segkit train` arguments that define the variant")
    args = parser.parse_args()
    out = Path(args.out)
    roots = {"today": Path(args.today_root), "variant": HERE}
    results: dict = {"steps": args.steps, "minutes": None if args.steps else args.minutes, "threads": args.threads,
                     "cpu_count": os.cpu_count(), "variant_args": args.train_args,
                     "commits": {v: bench_real.git_commit(r) for v, r in roots.items()}, "runs": {}}
    datasets = {}
    for name in args.datasets:
        datasets[name] = out / name / "data"
        if not (datasets[name] / "dataset.json").is_file():
            DATASETS[name](datasets[name])
        for variant, root in roots.items():
            work = out / name / f"work_{variant}"
            bench_real.segkit(root, "plan", str(datasets[name]), "--work-dir", str(work), "--configurations",
                              bench_real.CONFIGURATION, "--force")
            bench_real.segkit(root, "preprocess", str(datasets[name]), "--work-dir", str(work), "-c",
                              bench_real.CONFIGURATION)
            if args.steps:
                bench_real.fix_configuration(work)
            (work / "models" / bench_real.CONFIGURATION).mkdir(parents=True, exist_ok=True)
            (work / "models" / bench_real.CONFIGURATION / "splits.json").write_text(json.dumps(split_of(datasets[name])))
    for seed in args.seeds:
        for name, dataset in datasets.items():
            for variant, root in roots.items():
                extra = args.train_args if variant == "variant" else []
                row = bench_real.run_variant_seed(root, dataset, out / name / f"work_{variant}",
                                                  out / name / f"{variant}_seed{seed}", args.minutes, seed,
                                                  args.threads, extra, steps=args.steps)
                results["runs"].setdefault(name, {}).setdefault(variant, []).append(row)
                print(json.dumps({"dataset": name, "variant": variant, "seed": seed,
                                  "held_out_mean_dice": row["held_out_mean_dice"], "loadavg": row["loadavg_after"]}),
                      flush=True)
                (out / "result.json").write_text(json.dumps(results, indent=1))
    table = {name: {variant: summarise(rows) for variant, rows in runs.items()} for name, runs in results["runs"].items()}
    results["table"], results["verdict"] = table, verdict(table)
    (out / "result.json").write_text(json.dumps(results, indent=1))
    print(json.dumps({"table": table, "verdict": results["verdict"]}, indent=1))


if __name__ == "__main__":
    main()
