"""Benchmark: does `segkit train --time-budget M` end within 5 % of M minutes? (issue #24, item 7)

Generates the demo phantom (10 training cases, 32x48x48 at 3 x 1.2 x 1.2 mm), plans and
preprocesses it once, then for each budget runs `python -m segkit train -f 0 --time-budget M`
as a fresh process (the user's command, interpreter start and imports included) and records the
wall time from process start to exit, the trainer's own elapsed_s and the phase timings of
schedule.json (decided_at_s: start-up + calibration). Output: one JSON object per budget, and
the whole list in OUT/budget_keeping.json. Report the machine and its load with the numbers.

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


def one_budget(dataset: Path, work: Path, minutes: float, extra: list[str]) -> dict:
    """Train fold 0 with the budget from scratch; the wall time against the budget."""
    shutil.rmtree(work / "models" / CONFIGURATION / "fold_0", ignore_errors=True)
    wall = segkit("train", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION, "-f", "0",
                  "--time-budget", f"{minutes:g}", "--quiet", *extra)
    schedule = json.loads((work / "models" / CONFIGURATION / "fold_0" / "schedule.json").read_text())
    final = schedule["final"]
    budget_s = minutes * 60
    return {"minutes": minutes, "budget_s": budget_s, "wall_s": round(wall, 1),
            "over_budget_pct": round(100 * (wall / budget_s - 1), 1), "within_5pct": wall <= 1.05 * budget_s,
            "trainer_elapsed_s": final["elapsed_s"], "decided_at_s": schedule.get("decided_at_s"),
            "epochs": final["epochs_run"], "steps": final["steps"], "step_share": final.get("step_share"),
            "validation": schedule.get("validation"), "stopped_by": final.get("stopped_by"),
            "load_average_before": os.getloadavg()[0], "cpus": os.cpu_count()}


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


if __name__ == "__main__":
    main()
