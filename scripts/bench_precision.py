"""Does bf16 inference change what a trained model segments? fp32 vs bf16 on real T1 MR, trained models, seeds.

Builds the real-image dataset (scripts/realdata.py; scripts/setup_realdata.sh installs its sources),
plans (`--network unet`) and preprocesses once, then per seed trains fold 0 for a short CPU time
budget (`segkit train --time-budget MINUTES --seed S`) and predicts the held-out subjects (mni152:
another anatomy, template and protocol; colin_thick: thick slices with a bias field) and the
validation case twice, `--precision fp32` and `--precision bf16` (no TTA, so the precision is the
only difference). Per case it records the voxel agreement of the two label maps, the foreground
agreement (Dice of the two foreground masks), each precision's mean Dice against the reference
labels and their difference, and both prediction times. Writes results.json and table.md.

    python scripts/bench_precision.py --out /tmp/bench_precision --minutes 2 --seeds 0 1 [--threads 1]
    python scripts/bench_precision.py --out /tmp/bench_precision --steps 4 150 --seeds 1 --threads 1
    python scripts/bench_precision.py --lateral --out /tmp/precision_lateral --seeds 0 --threads 1 \
        --model /tmp/bench_lateral/work_improved/models/3d_fullres

`--model DIR` compares a model folder already trained (fold 0, same dataset and split; e.g. by
scripts/bench_real.py or scripts/bench_oblique.py) instead of training one; `--lateral` uses the
lateralised dataset (12 structures, left and right apart).

bf16 on a CPU without AMX / AVX512-BF16 runs through oneDNN's emulation: slower, but the same bf16
rounding of the convolution inputs and weights with float32 accumulation as on hardware bf16.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realdata  # noqa: E402
from bench_real import fix_configuration, train_arguments  # noqa: E402

HERE = Path(__file__).resolve().parents[1]
CONFIGURATION = "3d_fullres"
PRECISIONS = ("fp32", "bf16")
VALIDATION_CASE = "colin_004"
SPLIT = [{"train": ["colin_001", "colin_002", "colin_003"], "val": [VALIDATION_CASE]}]   # as scripts/bench_real.py


def segkit(*args: str) -> None:
    """Run one segkit command from this tree, failing loudly."""
    subprocess.run([sys.executable, "-m", "segkit", *args], check=True, env=os.environ | {"PYTHONPATH": str(HERE)},
                   stdout=subprocess.DEVNULL)


def loadavg() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def read(path: Path) -> np.ndarray:
    """Voxels of a label file."""
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def mean_dice(prediction: np.ndarray, reference: np.ndarray, classes: list[int]) -> float:
    """Mean Dice over the foreground classes."""
    return float(np.mean([dice(prediction == c, reference == c) for c in classes]))


def inputs_folder(dataset: Path, out: Path) -> tuple[Path, dict[str, Path]]:
    """One input folder with the held-out images and the validation case; each case's reference label."""
    folder = out / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    references = {}
    for image in sorted((dataset / "heldout" / "images").glob("*_0000.nii.gz")):
        case = image.name[: -len("_0000.nii.gz")]
        link = folder / image.name
        if not link.exists():
            link.symlink_to(image.resolve())
        references[case] = dataset / "heldout" / "labels" / f"{case}.nii.gz"
    image = dataset / "imagesTr" / f"{VALIDATION_CASE}_0000.nii.gz"
    if not (folder / image.name).exists():
        (folder / image.name).symlink_to(image.resolve())
    references[VALIDATION_CASE] = dataset / "labelsTr" / f"{VALIDATION_CASE}.nii.gz"
    return folder, references


def train_seed(dataset: Path, work: Path, out: Path, seed: int, minutes: float, threads: int | None,
               steps: list[int] | None = None) -> Path:
    """Train fold 0 for the budget (or fixed steps); a copy of the model folder for this seed."""
    models = work / "models" / CONFIGURATION
    shutil.rmtree(models, ignore_errors=True)
    models.mkdir(parents=True)
    (models / "splits.json").write_text(json.dumps(SPLIT))
    segkit("train", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION, "-f", "0",
           *train_arguments(minutes, steps), "--seed", str(seed), "--quiet",
           *(["--threads", str(threads)] if threads else []))
    kept = out / f"seed_{seed}" / "model"
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(models, kept)
    return kept


def compare_seed(model: Path, inputs: Path, references: dict[str, Path], out: Path, classes: list[int],
                 threads: int | None, checkpoint: str = "final") -> dict:
    """Predict every case in fp32 and bf16; per case agreement, Dice of each and the difference; times."""
    seconds = {}
    for precision in PRECISIONS:
        target = out / precision
        shutil.rmtree(target, ignore_errors=True)
        start = time.perf_counter()
        segkit("predict", "-i", str(inputs), "-o", str(target), "-m", str(model), "-f", "0", "--no-tta",
               "--device", "cpu", "--precision", precision, "--checkpoint", checkpoint,
               *(["--threads", str(threads)] if threads else []))
        seconds[precision] = round(time.perf_counter() - start, 1)
    cases = {}
    for case, label in references.items():
        reference = read(label)
        maps = {p: read(out / p / f"{case}.nii.gz") for p in PRECISIONS}
        dices = {p: mean_dice(maps[p], reference, classes) for p in PRECISIONS}
        cases[case] = {"voxel_agreement": float((maps["fp32"] == maps["bf16"]).mean()),
                       "voxels_differing": int((maps["fp32"] != maps["bf16"]).sum()),
                       "foreground_agreement": dice(maps["fp32"] > 0, maps["bf16"] > 0),
                       "dice_fp32": round(dices["fp32"], 4), "dice_bf16": round(dices["bf16"], 4),
                       "dice_difference": round(dices["bf16"] - dices["fp32"], 4)}
    return {"seconds": seconds, "cases": cases}


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    """The table for docs/benchmarks/precision.md."""
    schedule = (f"the model folder {args.model}" if args.model
                else f"`--steps {args.steps[0]} {args.steps[1]}` (fixed configuration)" if args.steps
                else f"`segkit train --time-budget {args.minutes}`")
    lines = [f"Real T1 MR brain structures, {schedule} per seed, predict `--no-tta` "
             f"fp32 vs bf16 on the CPU ({platform.processor() or platform.machine()}), threads {args.threads or 'all'}.",
             "",
             "| seed (steps) | case | mean Dice fp32 | mean Dice bf16 | bf16 - fp32 | voxel agreement | voxels differing | "
             "foreground agreement |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for case, c in row["comparison"]["cases"].items():
            lines.append(f"| {row['seed']} ({row['steps']}) | {case} | {c['dice_fp32']:.4f} | {c['dice_bf16']:.4f} | "
                         f"{c['dice_difference']:+.4f} | {c['voxel_agreement']:.5f} | {c['voxels_differing']} | "
                         f"{c['foreground_agreement']:.4f} |")
    every = [c for row in rows for c in row["comparison"]["cases"].values()]
    if every:
        lines += ["", f"Largest |Dice difference| {max(abs(c['dice_difference']) for c in every):.4f}; lowest voxel "
                      f"agreement {min(c['voxel_agreement'] for c in every):.5f}; lowest foreground agreement "
                      f"{min(c['foreground_agreement'] for c in every):.4f} over {len(every)} predictions."]
    return "\n".join(lines)


def main() -> None:
    """Build, plan, preprocess; per seed train and compare; write results.json and table.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/bench_precision")
    parser.add_argument("--minutes", type=float, default=2.0, help="training time budget per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: every core)")
    parser.add_argument("--reuse-models", action="store_true", help="keep a seed's model already trained in --out")
    parser.add_argument("--steps", type=int, nargs=2, metavar=("EPOCHS", "ITERATIONS"),
                        help="train a fixed number of steps on scripts/bench_real.py's FIXED_CONFIGURATION instead of "
                             "a time budget (a loaded machine makes wall-clock budgets give a few dozen steps)")
    parser.add_argument("--lateral", action="store_true", help="the lateralised dataset (12 structures, left/right apart)")
    parser.add_argument("--model", help="compare this model folder (trained on the dataset, fold 0) instead of training; "
                                        "one seed (--seeds) labels it")
    parser.add_argument("--checkpoint", default="final", choices=("final", "best", "latest"),
                        help="which checkpoint predicts (latest: a training stopped early on a loaded machine)")
    args = parser.parse_args()
    out = Path(args.out)
    dataset = out / ("RealBrainLateral" if args.lateral else "RealBrainStructures")
    work = out / "work"
    if not (dataset / "dataset.json").is_file():
        realdata.build_dataset(dataset, lateral=args.lateral)
    if args.model and len(args.seeds) != 1:
        parser.error("--model compares one model: give one --seeds value to label it")
    if not args.model and not (work / "plans.json").is_file():
        segkit("plan", str(dataset), "--work-dir", str(work), "--network", "unet", "--no-tradeoff",
               "--configurations", CONFIGURATION)
        segkit("preprocess", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION)
    if args.steps and not args.model:
        fix_configuration(work)
    classes = list(range(1, len(realdata.LATERAL_CLASSES if args.lateral else realdata.CLASSES) + 1))
    inputs, references = inputs_folder(dataset, out)
    rows = []
    for seed in args.seeds:
        load_before = loadavg()
        kept = Path(args.model) if args.model else out / f"seed_{seed}" / "model"
        reuse = bool(args.model) or (args.reuse_models and (kept / "fold_0" / "checkpoint_final.pt").is_file())
        model = kept if reuse else train_seed(dataset, work, out, seed, args.minutes, args.threads, args.steps)
        comparison = compare_seed(model, inputs, references, out / f"seed_{seed}", classes, args.threads,
                                  args.checkpoint)
        log = [json.loads(line) for line in (model / "fold_0" / "log.jsonl").read_text().splitlines()]
        rows.append({"seed": seed, "steps": log[-1]["step"] if log else 0, "loadavg_before": load_before,
                     "loadavg_after": loadavg(), "dataset": dataset.name, "model": str(model),
                     "checkpoint": args.checkpoint,
                     "validation_mean_dice": next((e["val_mean_dice"] for e in reversed(log)
                                                   if e.get("val_mean_dice") is not None), None),
                     "comparison": comparison})
        print(json.dumps(rows[-1]), flush=True)
    table = markdown(rows, args)
    (out / "results.json").write_text(json.dumps({"minutes": args.minutes, "steps": args.steps, "threads": args.threads,
                                                  "machine": platform.processor() or platform.machine(),
                                                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                                  "rows": rows}, indent=1))
    (out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
