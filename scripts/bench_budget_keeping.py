"""Benchmark: does `segkit train --time-budget M` end within 5 % of M minutes, and how much of it trains? (#24, #27)

Generates the demo phantom (10 training cases, 32x48x48 at 3 x 1.2 x 1.2 mm), plans and
preprocesses it once, then for each budget runs `python -m segkit train -f 0 --time-budget M`
as a fresh process (the user's command, interpreter start and imports included) and records the
wall time from process start to exit, and where the budget went (from schedule.json and log.jsonl):

  start-up     process start -> the first calibration step (imports, data, hardware fit)
  training     the calibration steps + every epoch (its steps, data loading and validation) + a
               validation run after the last epoch's time was taken -- #27 asks >= 97 % of the budget
  bookkeeping  the end-of-epoch saves between epochs (log line, checkpoints, progress.png), the
               validation-cost estimate and the final save
  exit         the trainer's end -> the process's exit
  unused       the budget left when the process exited

Output: one JSON object per budget plus a one-line summary, and the list in OUT/budget_keeping.json.
Report the machine and its load with the numbers.

    python scripts/bench_budget_keeping.py --out /tmp/budget_keeping --minutes 1 2 8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from segkit.cli.demo_run import DEMO_SPEC
from segkit.phantom import generate_dataset

CONFIGURATION = "3d_fullres"


def segkit(*args: str) -> float:
    """Run one segkit command as a fresh process; returns its wall seconds (process start to exit)."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "segkit", *args], check=True)
    return time.monotonic() - start


def budget_spending(budget_s: float, wall_s: float, schedule: dict, log: list[dict]) -> dict:
    """Where the budget went: start-up, training (steps + validation), bookkeeping, exit, unused (seconds, shares)."""
    final = schedule["final"]
    startup = float(schedule.get("calibration_from_s", schedule.get("decided_at_s", 0.0)))
    calibration_steps = float(schedule.get("calibration_step_s", 0.0))
    epochs = sum(float(r["epoch_time_s"]) for r in log)
    late_validation = sum(float(r.get("val_time_s", 0.0)) for r in log if r.get("val_after_epoch_time"))
    training = calibration_steps + epochs + late_validation
    finished = float(final.get("finished_at_s", final["elapsed_s"]))
    return {"startup_s": round(startup, 2), "training_s": round(training, 1),
            "training_share": round(training / budget_s, 4),
            "bookkeeping_s": round(finished - startup - training, 1),
            "exit_s": round(wall_s - finished, 2), "unused_s": round(budget_s - wall_s, 1),
            "end_reserve_s": final.get("end_reserve_s"), "save_s": final.get("save_s"),
            "final_save_s": final.get("final_save_s")}


def one_budget(dataset: Path, work: Path, minutes: float, extra: list[str]) -> dict:
    """Train fold 0 with the budget from scratch; the wall time against the budget and where it went."""
    fold = work / "models" / CONFIGURATION / "fold_0"
    shutil.rmtree(fold, ignore_errors=True)
    load_before = os.getloadavg()[0]
    wall = segkit("train", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION, "-f", "0",
                  "--time-budget", f"{minutes:g}", "--quiet", *extra)
    schedule = json.loads((fold / "schedule.json").read_text())
    log = [json.loads(line) for line in (fold / "log.jsonl").read_text().splitlines() if line.strip()]
    final = schedule["final"]
    budget_s = minutes * 60
    return {"minutes": minutes, "budget_s": budget_s, "wall_s": round(wall, 1),
            "over_budget_pct": round(100 * (wall / budget_s - 1), 1), "within_5pct": wall <= 1.05 * budget_s,
            "trainer_elapsed_s": final["elapsed_s"], "decided_at_s": schedule.get("decided_at_s"),
            "epochs": final["epochs_run"], "steps": final["steps"], "step_share": final.get("step_share"),
            "validation": schedule.get("validation"), "stopped_by": final.get("stopped_by"),
            **budget_spending(budget_s, wall, schedule, log),
            "load_average_before": load_before, "load_average_after": os.getloadavg()[0], "cpus": os.cpu_count()}


def summary_line(row: dict) -> str:
    """The one line a reader wants: the training share against #27's 97 %, and the wall against the budget."""
    return (f"{row['minutes']:g} min: training {row['training_s']:.1f} s = {100 * row['training_share']:.1f} % of "
            f"the budget (#27: >= 97 %), start-up {row['startup_s']:.1f} s, bookkeeping {row['bookkeeping_s']:.1f} s, "
            f"exit {row['exit_s']:.1f} s, unused {row['unused_s']:.1f} s; wall {row['wall_s']:.1f} s of "
            f"{row['budget_s']:.0f} s ({row['over_budget_pct']:+.1f} %), load {row['load_average_before']:.1f}")


def main() -> None:
    """Generate, plan, preprocess once; time each budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/budget_keeping")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("train_args", nargs="*", help="extra `segkit train` arguments (after --)")
    args = parser.parse_args()
    out = Path(args.out)
    dataset, work = out / "Phantom", out / "work"
    if not (work / "preprocessed" / CONFIGURATION).is_dir():
        shutil.rmtree(out, ignore_errors=True)
        generate_dataset(dataset, 10, seed=0, spec=DEMO_SPEC)
        segkit("plan", str(dataset), "--work-dir", str(work), "--configurations", CONFIGURATION)
        segkit("preprocess", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION)
    results = []
    for minutes in args.minutes:
        results.append(one_budget(dataset, work, minutes, args.train_args))
        print(json.dumps(results[-1]), flush=True)
    (out / "budget_keeping.json").write_text(json.dumps(results, indent=2))
    for row in results:
        print(summary_line(row))


if __name__ == "__main__":
    main()
