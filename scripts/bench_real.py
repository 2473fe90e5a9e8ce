"""Benchmark: the short CPU time budget on real T1 MR brain structures, today's recipe vs this tree's, over seeds.

Builds the real-image dataset (scripts/realdata.py: four deformed Colin27 training subjects with
AAL labels; held out: the MNI152 2009a template labelled under another protocol and a thick-slice
re-processed Colin27, both with a bias field), then for every variant and seed: `segkit plan` +
`preprocess` (once per variant), `segkit train -f 0 --time-budget MINUTES --seed S` (train on
colin_001-003, validate on colin_004), `segkit predict --no-tta` (`--tta`: with mirroring, the default of
segkit predict, 8x slower) on the held-out images and
`segkit evaluate` against their labels. Runs one training at a time and records /proc/loadavg
before and after each (the numbers are "under load" whenever the load exceeds the threads used).

Variants: "today" runs segkit from --today-root (default /work/main, the main branch: today's
recipe and schedule), "improved" from this tree with its defaults; "light" (this tree, today's
`--augment light`) and "fast-elastic" (this tree, `--augment fast --elastic`) isolate the
augmentation. `--phantom` also runs scripts/bench_train_budget.py (the
brain-structures phantom) with this tree for each seed.

`--steps EPOCHS ITERATIONS` trains every variant for the same number of optimiser steps instead of
a time budget (to rank recipes on a shared, loaded machine where wall-clock budgets are unreliable):
`--no-fit` on FIXED_CONFIGURATION -- what the 8-minute hardware fit picks for this dataset on an
idle 2-core machine (patch 40 x 48 x 40, 4 stages of 16-128 features, batch 2) -- with
`--recipe short-cpu`, validating once at the end. The train wall per step is recorded
(`seconds_per_step`), so the cost of an augmentation shows.

    python scripts/bench_real.py --out /tmp/bench_real [--minutes 8] [--seeds 0 1 2] [--variants today improved]
    python scripts/bench_real.py --out /tmp/bench_real_steps --steps 5 200 --threads 1 --seeds 0 \
        --variants light fast fast-elastic
    python scripts/bench_real.py --lateral --out /tmp/bench_lateral --steps 5 200 --threads 1 --seeds 0 1 2 \
        --variants today improved --today-root <a checkout before pair swapping, e.g. 75faa7f>

`--lateral` builds the left/right variant of the dataset (realdata.LATERAL_CLASSES: 12 subcortical
structures, left and right apart; mirrored training subjects have their pairs swapped).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realdata  # noqa: E402

HERE = Path(__file__).resolve().parents[1]
CONFIGURATION = "3d_fullres"
# variant -> (source tree: "today" = --today-root, else this tree; extra `segkit train` arguments)
VARIANTS = {"today": ("today", []), "improved": ("here", []), "light": ("here", ["--augment", "light"]),
            "fast": ("here", ["--augment", "fast"]), "fast-elastic": ("here", ["--augment", "fast", "--elastic"])}
# the 8-minute hardware fit's choice for this dataset on an idle 2-core machine (training_fit in the
# models' plans.json of an 8-minute run: "patch [40, 48, 40], 4 stages", 0.20 s/step at 2 threads)
FIXED_CONFIGURATION = {"patch_size": [40, 48, 40], "batch_size": 2, "architecture": {
    "family": "unet", "spatial_dims": 3, "features_per_stage": [16, 32, 64, 128], "kernel_sizes": [[3, 3, 3]] * 4,
    "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], "norm": "instance", "deep_supervision": True,
    "init": "pytorch", "blocks_per_stage": [2, 2, 2, 2], "decoder_blocks_per_stage": [2, 2, 2]}}
SPLIT = [{"train": ["colin_001", "colin_002", "colin_003"], "val": ["colin_004"]}]


def loadavg() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def segkit(root: Path, *args: str, cpu: int | None = None, log: Path | None = None) -> None:
    """Run one segkit command from the source tree `root`, failing loudly.

    `cpu`: pin the process to that core with one thread (taskset; its torch and BLAS threads inherit the
    affinity); `log`: append its output there instead of the terminal (runs side by side do not interleave)."""
    env = os.environ | {"PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "segkit", *args]
    if cpu is not None:
        env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        command = ["taskset", "-c", str(cpu), *command]
    if log is None:
        _run(command, env, root, None)
        return
    with log.open("a") as stream:
        stream.write(f"$ {' '.join(command)}\n")
        stream.flush()
        _run(command, env, root, stream)


# the segkit commands running now (from any thread): stop_running() ends them when the benchmark is stopped
RUNNING: set[subprocess.Popen] = set()
STOPPING = threading.Event()


def _run(command: list[str], env: dict, cwd: Path, stream) -> None:
    """Run a command to its end (registered in RUNNING meanwhile), raising CalledProcessError when it fails."""
    output = {} if stream is None else {"stdout": stream, "stderr": subprocess.STDOUT}
    if STOPPING.is_set():
        raise RuntimeError(f"stopped before {command[-1]!r}: the benchmark is stopping")
    with subprocess.Popen(command, env=env, cwd=cwd, **output) as process:
        RUNNING.add(process)
        try:
            code = process.wait()
        finally:
            RUNNING.discard(process)
    if code:
        raise subprocess.CalledProcessError(code, command)


def stop_running() -> None:
    """Terminate every segkit command still running and start no new one (a stopped benchmark leaves no training behind)."""
    STOPPING.set()
    for process in list(RUNNING):
        process.terminate()


def git_commit(root: Path) -> str:
    """Short commit id of a source tree (with '+dirty' when it has uncommitted changes)."""
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return commit.stdout.strip() + ("+dirty" if dirty else "")


def fix_configuration(work: Path) -> None:
    """Replace the planned configuration by FIXED_CONFIGURATION in WORK/plans.json (for --steps)."""
    plans_file = work / "plans.json"
    plans = json.loads(plans_file.read_text())
    plans["configurations"][CONFIGURATION] |= FIXED_CONFIGURATION
    plans_file.write_text(json.dumps(plans, indent=1))


def train_arguments(minutes: float, steps: list[int] | None) -> list[str]:
    """`segkit train` arguments of the schedule: a time budget, or a fixed number of steps without fitting."""
    if not steps:
        return ["--time-budget", str(minutes)]
    epochs, iterations = steps
    return ["--no-fit", "--recipe", "short-cpu", "--epochs", str(epochs), "--iterations-per-epoch", str(iterations),
            "--validate-every", str(epochs)]


def run_variant_seed(root: Path, dataset: Path, work: Path, out: Path, minutes: float, seed: int,
                     threads: int | None, extra: list[str], tta: bool = False, skip_train: bool = False,
                     steps: list[int] | None = None, cpu: int | None = None, log_file: Path | None = None) -> dict:
    """Train fold 0 (within the budget, or for fixed steps), predict + evaluate the held-out subjects; the result row.

    `cpu` pins every command of the run to that core with one thread, `log_file` collects their output (segkit())."""
    models = work / "models" / CONFIGURATION
    (models / "fold_0").mkdir(parents=True, exist_ok=True)
    load_before = loadavg()
    start = time.monotonic()
    if not skip_train:
        for stale in ("checkpoint_latest.pt", "checkpoint_final.pt", "checkpoint_best.pt", "schedule.json"):
            (models / "fold_0" / stale).unlink(missing_ok=True)
        segkit(root, "train", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION, "-f", "0",
               *train_arguments(minutes, steps), "--seed", str(seed), "--quiet",
               *(["--threads", str(threads)] if threads else []), *extra, cpu=cpu, log=log_file)
    wall = time.monotonic() - start if not skip_train else float("nan")
    load_after = loadavg()
    pred = out / "pred"
    segkit(root, "predict", "-i", str(dataset / "heldout" / "images"), "-o", str(pred), "-m", str(models), "-f", "0",
           *([] if tta else ["--no-tta"]), cpu=cpu, log=log_file)
    evaluation = out / "evaluation.json"
    segkit(root, "evaluate", str(pred), str(dataset / "heldout" / "labels"), "--regions-from", str(dataset),
           "-o", str(evaluation), cpu=cpu, log=log_file)
    summary = json.loads(evaluation.read_text())
    schedule = json.loads((models / "fold_0" / "schedule.json").read_text())
    log = [json.loads(line) for line in (models / "fold_0" / "log.jsonl").read_text().splitlines()]
    per_case = {case["case_id"]: {name: round(m["dice"], 4) for name, m in case["metrics"].items()}
                for case in summary["cases"]}
    return {"seed": seed, "wall_s": round(wall, 1), "loadavg_before": load_before, "loadavg_after": load_after,
            "steps": log[-1]["step"] if log else 0, "epochs": len(log),
            "seconds_per_step": round(wall / log[-1]["step"], 3) if log and log[-1]["step"] and not skip_train else None,
            "held_out_mean_dice": round(summary["foreground_mean"]["dice"], 4),
            "held_out_case_mean_dice": {c: round(sum(d.values()) / len(d), 4) for c, d in per_case.items()},
            "held_out_class_dice": {n: round(m["dice"], 4) for n, m in summary["mean"].items()},
            "held_out_case_dice": per_case, "step_share": (schedule.get("final") or {}).get("step_share"),
            "step_share_of_wall": round((schedule.get("final") or {}).get("step_seconds", 0.0) / wall, 3),
            "recipe": (schedule.get("recipe") or {}).get("name"), "augment": (schedule.get("recipe") or {}).get("augment"),
            "schedule": {k: schedule.get(k) for k in ("epochs", "iterations_per_epoch", "validate_every",
                                                       "total_steps", "validation", "validation_fraction",
                                                       "predicted_step_share", "given_up")}}


def run_phantom(out: Path, minutes: float, seed: int, threads: int | None) -> dict:
    """scripts/bench_train_budget.py (brain-structures phantom) with this tree; returns its held-out Dice."""
    load_before = loadavg()
    cmd = [sys.executable, str(HERE / "scripts" / "bench_train_budget.py"), "--out", str(out), "--minutes", str(minutes),
           "--seed", str(seed), *(["--threads", str(threads)] if threads else [])]
    subprocess.run(cmd, check=True, env=os.environ | {"PYTHONPATH": str(HERE)}, stdout=subprocess.DEVNULL)
    result = json.loads((out / "result.json").read_text())
    return {"seed": seed, "held_out_mean_dice": round(result["held_out_mean_dice"], 4), "steps": result["steps"],
            "wall_s": result["wall_s"], "loadavg_before": load_before, "loadavg_after": loadavg()}


def mean(values: list[float]) -> float:
    """Arithmetic mean (nan for none)."""
    return round(sum(values) / len(values), 4) if values else float("nan")


def main() -> None:
    """Build the dataset, run every variant x seed one at a time, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="/tmp/bench_real")
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["today", "improved"], choices=list(VARIANTS))
    parser.add_argument("--today-root", default="/work/main", help="source tree of today's recipe (main branch)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: every core)")
    parser.add_argument("--phantom", action="store_true", help="also run the brain-structures phantom per seed")
    parser.add_argument("--tta", action="store_true",
                        help="score with mirroring TTA (segkit predict's default; 8x the prediction time)")
    parser.add_argument("--steps", type=int, nargs=2, metavar=("EPOCHS", "ITERATIONS"),
                        help="train every variant for EPOCHS x ITERATIONS steps on FIXED_CONFIGURATION (no fit, "
                             "short-cpu recipe, one validation at the end) instead of --minutes")
    parser.add_argument("--skip-train", action="store_true",
                        help="score the models already trained in --out (e.g. after an interrupted run)")
    parser.add_argument("--lateral", action="store_true",
                        help="the lateralised dataset: 12 subcortical structures with left and right apart")
    parser.add_argument("train_args", nargs="*", help="extra `segkit train` arguments for the improved variant")
    args = parser.parse_args()
    out = Path(args.out)
    dataset = out / ("RealBrainLateral" if args.lateral else "RealBrainStructures")
    if not (dataset / "dataset.json").is_file():
        realdata.build_dataset(dataset, lateral=args.lateral)
    roots = {v: Path(args.today_root) if VARIANTS[v][0] == "today" else HERE for v in args.variants}
    results: dict = {"minutes": None if args.steps else args.minutes, "steps": args.steps,
                     "cpu_count": os.cpu_count(), "threads": args.threads,
                     "commits": {v: git_commit(roots[v]) for v in args.variants}, "runs": {}}
    for variant in ([] if args.skip_train else args.variants):
        root, work = roots[variant], out / f"work_{variant}"
        segkit(root, "plan", str(dataset), "--work-dir", str(work), "--configurations", CONFIGURATION, "--force")
        segkit(root, "preprocess", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION)
        if args.steps:
            fix_configuration(work)
        (work / "models" / CONFIGURATION).mkdir(parents=True, exist_ok=True)
        (work / "models" / CONFIGURATION / "splits.json").write_text(json.dumps(SPLIT))
    for seed in args.seeds:   # seeds outermost: the variants of one seed run back to back under similar load
        for variant in args.variants:
            extra = VARIANTS[variant][1] + (args.train_args if VARIANTS[variant][0] == "here" else [])
            row = run_variant_seed(roots[variant], dataset, out / f"work_{variant}", out / f"{variant}_seed{seed}",
                                   args.minutes, seed, args.threads, extra, args.tta, args.skip_train,
                                   args.steps)
            results["runs"].setdefault(variant, []).append(row)
            print(json.dumps({"variant": variant} | {k: row[k] for k in ("seed", "held_out_mean_dice",
                  "held_out_case_mean_dice", "steps", "wall_s", "seconds_per_step", "loadavg_before", "loadavg_after")}), flush=True)
            (out / "result.json").write_text(json.dumps(results, indent=1))
        if args.phantom:
            row = run_phantom(out / f"phantom_seed{seed}", args.minutes, seed, args.threads)
            results.setdefault("phantom", []).append(row)
            print(json.dumps({"variant": "phantom"} | row), flush=True)
    results["summary"] = {v: {"mean_held_out_dice": mean([r["held_out_mean_dice"] for r in rows]),
                              "per_seed": [r["held_out_mean_dice"] for r in rows]}
                          for v, rows in results["runs"].items()}
    if "phantom" in results:
        results["summary"]["phantom"] = {"mean_held_out_dice": mean([r["held_out_mean_dice"] for r in results["phantom"]]),
                                         "per_seed": [r["held_out_mean_dice"] for r in results["phantom"]]}
    (out / "result.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results["summary"], indent=1))


if __name__ == "__main__":
    main()
