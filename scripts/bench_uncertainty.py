"""How well the uncertainty score ranks cross-validation cases by Dice, on real T1 MR (issue #29).

Builds the real brain-structures dataset of scripts/realdata.py (Colin27 T1 + AAL labels from
Debian's mricron-data; run scripts/setup_realdata.sh first) with --subjects training subjects
(the four standard ones plus more seeded deformations of Colin27 head / skull-stripped, some
mirrored, with bias fields), plans and preprocesses 3d_fullres, trains the given folds of the
5-fold split with a short `--time-budget` each (`--predict-validation`: every fold predicts its
validation cases with test-time mirroring, the files find-best reads), gathers those CV
predictions and runs `segkit calibrate-uncertainty` on them. The result (AUROC of the score for
"below the median Dice", Spearman, the review threshold's precision and recall, per-case Dice and
score) is written to OUT/result.json.

    python scripts/bench_uncertainty.py --out /tmp/bench_uncertainty --subjects 16 --minutes 3 --folds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE), str(HERE / "scripts")]

import realdata  # noqa: E402

CONFIGURATION = "3d_fullres"
SOURCES = ("ch2.nii.gz", "ch2bet.nii.gz")


def segkit(*args: str) -> None:
    """Run one segkit command from this tree, failing loudly."""
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    subprocess.run([sys.executable, "-m", "segkit", *args], check=True, env=env, cwd=HERE)


def build(dataset: Path, subjects: int, seed: int) -> None:
    """The standard dataset plus extra deformed subjects (colin_005 ...) in imagesTr/labelsTr."""
    realdata.build_dataset(dataset, seed)
    for index in range(len(realdata.TRAIN_SUBJECTS), subjects):
        source = SOURCES[index % 2]
        mirror = bool((index // 2) % 2)
        bias = (0.0, 0.1, 0.2)[index % 3]
        realdata.build_training_subject(f"colin_{index + 1:03d}", source, mirror, bias, seed * 1000 + index, dataset)
    info = json.loads((dataset / "dataset.json").read_text())
    info["numTraining"] = subjects
    (dataset / "dataset.json").write_text(json.dumps(info, indent=1))


def main() -> int:
    """Build, train, predict CV, calibrate; write result.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_uncertainty"))
    parser.add_argument("--subjects", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-train", action="store_true", help="reuse trained folds; only gather and calibrate")
    args = parser.parse_args()
    dataset, work = args.out / "RealBrainStructures", args.out / "work"
    timings: dict = {}
    start = time.monotonic()
    if not args.skip_train:
        if not (dataset / "dataset.json").is_file():
            build(dataset, args.subjects, args.seed)
        segkit("plan", str(dataset), "--work-dir", str(work), "--configurations", CONFIGURATION, "--force")
        segkit("preprocess", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION)
        timings["prepare_seconds"] = round(time.monotonic() - start, 1)
        for fold in args.folds:
            fold_start = time.monotonic()
            segkit("train", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION, "-f", str(fold),
                   "--time-budget", str(args.minutes), "--seed", str(args.seed), "--predict-validation", "--quiet")
            timings[f"fold_{fold}_seconds"] = round(time.monotonic() - fold_start, 1)
            print(f"fold {fold} done in {timings[f'fold_{fold}_seconds']} s", flush=True)
    cv = args.out / "cv"
    cv.mkdir(parents=True, exist_ok=True)
    for fold in args.folds:   # the finished folds' CV predictions in one folder (--cv-dir)
        for npz in (work / "models" / CONFIGURATION / f"fold_{fold}" / "validation").glob("*.npz"):
            link = cv / npz.name
            link.unlink(missing_ok=True)
            link.symlink_to(npz)
    calibration_path = args.out / "uncertainty_calibration.json"
    segkit("calibrate-uncertainty", str(work), "-c", CONFIGURATION, "--ref", str(dataset), "--cv-dir", str(cv),
           "-o", str(calibration_path))
    calibration = json.loads(calibration_path.read_text())
    result = {"subjects": args.subjects, "minutes_per_fold": args.minutes, "folds": args.folds, "seed": args.seed,
              "cpu_count": os.cpu_count(), "load_average_end": os.getloadavg(), "timings": timings,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "calibration": calibration}
    (args.out / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: calibration[k] for k in ("num_cases", "median_dice", "threshold", "quality")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
