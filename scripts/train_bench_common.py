"""Shared steps of the training-budget benchmarks: run segkit, plan + preprocess, train fold 0, summarise the run."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CONFIGURATION = "3d_fullres"


def segkit(*args: str) -> None:
    """Run one segkit command, failing loudly."""
    subprocess.run([sys.executable, "-m", "segkit", *args], check=True)


def add_budget_arguments(parser: argparse.ArgumentParser, out: str, minutes: float) -> None:
    """--out, --minutes, --network, --threads and extra `segkit train` arguments."""
    parser.add_argument("--out", default=out)
    parser.add_argument("--minutes", type=float, default=minutes)
    parser.add_argument("--network", default="unet")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice, i.e. every core)")
    parser.add_argument("train_args", nargs="*", help="extra `segkit train` arguments (after --)")


def plan_and_preprocess(dataset: Path, work: Path, network: str) -> Path:
    """`segkit plan` + `segkit preprocess` of the configuration; returns its model folder."""
    segkit("plan", str(dataset), "--work-dir", str(work), "--configurations", CONFIGURATION, "--network", network,
           "--force")
    segkit("preprocess", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION)
    return work / "models" / CONFIGURATION


def train_fold0(dataset: Path, work: Path, args: argparse.Namespace) -> float:
    """`segkit train -f 0 --time-budget` (splits.json already written); returns the wall seconds."""
    start = time.monotonic()
    segkit("train", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION, "-f", "0", "--time-budget",
           str(args.minutes), *(["--threads", str(args.threads)] if args.threads else []), "--quiet", *args.train_args)
    return time.monotonic() - start


def run_summary(models: Path, wall_s: float, budget_s: float) -> tuple[dict, dict, dict]:
    """(summary of the fitted run, last log record, trained plans entry) of fold 0."""
    log = [json.loads(line) for line in (models / "fold_0" / "log.jsonl").read_text().splitlines()]
    plans = json.loads((models / "plans.json").read_text())["configurations"][CONFIGURATION]
    summary = {"wall_s": round(wall_s, 1), "budget_s": budget_s, "epochs": len(log), "steps": log[-1]["step"],
               "patch_size": plans["patch_size"], "batch_size": plans["batch_size"],
               "features_per_stage": plans["architecture"]["features_per_stage"],
               "family": plans["architecture"]["family"], "training_fit": plans.get("training_fit", {}).get("chosen")}
    return summary, log[-1], plans
