"""Benchmark: obliquely stored real MR segmented like the axis-aligned storage (issue #25, item 2).

Builds the real-image dataset (scripts/realdata.py; run scripts/setup_realdata.sh first), plans,
preprocesses and trains fold 0 of 3d_fullres for a short time budget (`--minutes`, default 2;
train colin_001-003, validate colin_004, as scripts/bench_real.py). Its training images are
axis-aligned, so plans.json records a residual-rotation range of 0 degrees and resamples
inputs tilted more than 5 degrees.

Each held-out subject (mni152 at 1.5 mm, colin_thick at 1.2 x 1.2 x 3 mm) is then stored
axis-aligned and resampled (cubic B-spline, labels nearest) onto grids tilted 20, 35 and 48.19
degrees (rotations about the axis (1, 2, 3), and (1/3)[[2,-1,2],[2,2,-1],[-1,2,2]] which leaves
48.19 degrees on every axis), same spacing, covering the whole volume: the same anatomy in
physical space. `segkit predict --no-tta` (`--tta`: with mirroring) predicts all of them twice:
with the model as planned
("resampled": the tilted inputs go through the axis-aligned grid) and with
`oblique_inputs.resample_above_degrees` set to 90 in a copy of its plans ("as before": the
network sees the rotated anatomy, what segkit did before). Every label map is carried back onto
the axis-aligned grid (nearest neighbour) and scored against the held-out labels: mean Dice
over the classes, its difference from the axis-aligned storage, and foreground agreement
with the axis-aligned storage's prediction (Dice of the two foreground masks, and the share of
their union labelled alike). "truth carried" is the held-out labels stored tilted and carried
back the same way: what the storage alone costs. The resampled mode also saves each
prediction's probabilities (`--save-probabilities`) and scores it a second time carried back by
them (`prob_*`: every channel linearly onto the axis-aligned grid, then the argmax, as segkit
maps probabilities between grids itself): nearest-neighbour carrying of a label map moves its
boundaries by up to half a voxel, which the `prob_*` scores do not charge to the prediction.
The resampling's time comes from report.json (`axis_alignment.seconds_to_grid` and
`seconds_back`) next to each case's whole time.

    bash scripts/setup_realdata.sh
    python scripts/bench_oblique.py --out /tmp/bench_oblique [--minutes 2] [--skip-train]
    python scripts/bench_oblique.py --out /tmp/bench_oblique --steps 4 150 --subjects mni152

`--steps EPOCHS ITERATIONS` trains a fixed number of steps instead (no hardware fit, the short-cpu
recipe, scripts/bench_real.py's FIXED_CONFIGURATION): on a loaded machine a wall-clock budget
buys too few steps for a usable model. `--lateral` uses the lateralised dataset (12 structures,
left and right apart: a rotation must not swap them); `--model DIR` scores a model folder trained
elsewhere on the same dataset (e.g. by scripts/bench_real.py) instead of training one:

    python scripts/bench_oblique.py --lateral --out /tmp/oblique/lat \
        --model /tmp/bench_lateral/work_improved/models/3d_fullres
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
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy.optimize import brentq
from scipy.spatial.transform import Rotation

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import realdata  # noqa: E402
from bench_real import FIXED_CONFIGURATION, fix_configuration, train_arguments  # noqa: E402

from segkit.inference.probabilities import load_probabilities  # noqa: E402
from segkit.io.image import Geometry  # noqa: E402
from segkit.preprocessing.orientation import oblique_degrees  # noqa: E402

CONFIGURATION = "3d_fullres"
SPLIT = [{"train": ["colin_001", "colin_002", "colin_003"], "val": ["colin_004"]}]
WORST_SYMMETRIC = tuple(float(v) for v in (np.array([[2, -1, 2], [2, 2, -1], [-1, 2, 2]]) / 3).flatten())
TILTS = (20.0, 35.0, 48.19)
NUM_CLASSES = len(realdata.CLASSES)
SHIFTS_MM = (0.5, 1.0)


def loadavg() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def tta_flags(tta: bool) -> list[str]:
    """segkit predict's flags for mirroring TTA on (its default) or off."""
    return [] if tta else ["--no-tta"]


def segkit(*args: str) -> None:
    """Run one segkit command from this tree, failing loudly."""
    subprocess.run([sys.executable, "-m", "segkit", *args], check=True, cwd=HERE,
                   env=os.environ | {"PYTHONPATH": str(HERE)})


def tilted_direction(degrees: float) -> tuple[float, ...]:
    """A rotation whose residual rotation (segkit's oblique_degrees) is `degrees` (48.19: the symmetric worst case)."""
    if abs(degrees - 48.19) < 0.01:
        return WORST_SYMMETRIC
    axis = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)

    def matrix(angle: float) -> np.ndarray:
        return Rotation.from_rotvec(axis * np.radians(angle)).as_matrix()

    angle = brentq(lambda a: oblique_degrees(tuple(matrix(a).flatten())) - degrees, 0.0, 60.0)
    return tuple(float(v) for v in matrix(angle).flatten())


def tilted_reference(image: sitk.Image, direction: tuple[float, ...]) -> sitk.Image:
    """An empty image on a grid of the same spacing with this direction covering all of `image`'s voxels."""
    size, spacing = np.asarray(image.GetSize()), np.asarray(image.GetSpacing())
    corners = np.array([image.TransformContinuousIndexToPhysicalPoint([float(c) for c in corner]) for corner in
                        np.array(np.meshgrid(*[(-0.5, n - 0.5) for n in size], indexing="ij")).reshape(3, -1).T])
    matrix = np.reshape(direction, (3, 3))
    local = corners @ matrix
    low, high = local.min(axis=0), local.max(axis=0)
    reference = sitk.Image([int(n) for n in np.ceil((high - low) / spacing)], sitk.sitkUInt8)
    reference.SetSpacing([float(s) for s in spacing])
    reference.SetDirection(direction)
    reference.SetOrigin([float(v) for v in matrix @ (low + spacing / 2)])
    return reference


def carried(image: sitk.Image, reference: sitk.Image, nearest: bool, pixel: int) -> sitk.Image:
    """image resampled onto reference's grid (B-spline or nearest), 0 outside.

    The B-spline's ringing is not let into the image's zero background (where the linearly
    carried nonzero mask is below one half the result is 0): the tilted storage of a
    zero-background MR has a zero background too, as a scanner or converter would write it.
    """
    if nearest:
        return sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0, pixel)
    values = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkBSpline, 0.0, pixel)
    mask = sitk.Resample(sitk.Cast(image != 0, sitk.sitkFloat32), reference, sitk.Transform(), sitk.sitkLinear, 0.0,
                         sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(values)
    array[sitk.GetArrayFromImage(mask) < 0.5] = 0
    result = sitk.GetImageFromArray(array)
    result.CopyInformation(values)
    return result


def write_inputs(dataset: Path, inputs: Path, subjects: list[str]) -> dict:
    """Each held-out subject stored axis-aligned and tilted, as NIfTI inputs; returns the stored label images."""
    stored = {}
    for subject in subjects:
        image = sitk.ReadImage(str(dataset / "heldout" / "images" / f"{subject}_0000.nii.gz"), sitk.sitkFloat32)
        labels = sitk.ReadImage(str(dataset / "heldout" / "labels" / f"{subject}.nii.gz"))
        sitk.WriteImage(image, str(inputs / f"{subject}_straight_0000.nii.gz"))
        stored[f"{subject}_straight"] = labels
        for degrees in TILTS:
            reference = tilted_reference(image, tilted_direction(degrees))
            name = f"{subject}_tilt{int(degrees)}"
            sitk.WriteImage(carried(image, reference, False, sitk.sitkFloat32), str(inputs / f"{name}_0000.nii.gz"))
            stored[name] = carried(labels, reference, True, sitk.sitkUInt8)
    return stored


def labels_from_probabilities(path: Path, reference: sitk.Image) -> np.ndarray:
    """Labels on reference's grid from a `<CASE>.npz` (segkit predict --save-probabilities) on another grid.

    Each probability channel is carried linearly in physical space (background 1, classes 0
    outside the prediction's grid), then the argmax: how segkit itself maps probabilities
    between grids. Carrying the label map by nearest neighbour instead moves every boundary by
    up to half a voxel of the finer grid (a grid shifted 0.5 mm against a 1.5 mm one is carried
    back displaced by 0.5 mm), which the comparison would charge to the prediction.
    """
    probabilities, metadata = load_probabilities(path)
    geometry = Geometry.from_json(metadata["geometry"])
    best = labels = None
    for channel in range(probabilities.shape[0]):
        image = geometry.apply_to(sitk.GetImageFromArray(np.ascontiguousarray(probabilities[channel])))
        mapped = sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear,
                                                      1.0 if channel == 0 else 0.0, sitk.sitkFloat32))
        if best is None or labels is None:
            best, labels = mapped, np.zeros(mapped.shape, dtype=np.uint8)
            continue
        higher = mapped > best
        best[higher], labels[higher] = mapped[higher], channel
    assert labels is not None
    return labels


def mean_dice(predicted: np.ndarray, truth: np.ndarray, num_classes: int = NUM_CLASSES) -> float:
    """Mean Dice over the classes 1..num_classes (a class absent from both counts 1)."""
    values = []
    for value in range(1, num_classes + 1):
        a, b = predicted == value, truth == value
        total = int(a.sum() + b.sum())
        values.append(2 * float(np.sum(a & b)) / total if total else 1.0)
    return float(np.mean(values))


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(Dice of the foreground masks, share of the foreground union labelled alike)."""
    fa, fb = a > 0, b > 0
    union = fa | fb
    return (2 * float(np.sum(fa & fb)) / max(1, int(fa.sum() + fb.sum())),
            float(np.mean(a[union] == b[union])) if union.any() else 1.0)


def score(out: Path, dataset: Path, stored: dict, subjects: list[str], num_classes: int = NUM_CLASSES) -> list[dict]:
    """Per subject and storage: Dice after carrying back, vs the axis-aligned storage, and the recorded times."""
    report = {case["case_id"]: case for case in json.loads((out / "report.json").read_text())["cases"]}
    rows = []
    for subject in subjects:
        truth_image = sitk.ReadImage(str(dataset / "heldout" / "labels" / f"{subject}.nii.gz"))
        truth = sitk.GetArrayFromImage(truth_image)
        straight = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{subject}_straight.nii.gz")))
        reference_dice = mean_dice(straight, truth, num_classes)
        for storage in ("straight", *[f"tilt{int(d)}" for d in TILTS]):
            name = f"{subject}_{storage}"
            prediction = sitk.ReadImage(str(out / f"{name}.nii.gz"))
            back = sitk.GetArrayFromImage(carried(prediction, truth_image, True, sitk.sitkUInt8))
            truth_back = sitk.GetArrayFromImage(carried(stored[name], truth_image, True, sitk.sitkUInt8))
            foreground_dice, label_agreement = agreement(back, straight)
            alignment = report[name].get("axis_alignment") or {}
            dice = mean_dice(back, truth, num_classes)
            rows.append(probability_scores(out / f"{name}.npz", truth_image, truth, straight, reference_dice,
                                           num_classes) | {"subject": subject, "storage": storage,
                         "oblique_degrees": round(oblique_degrees(prediction.GetDirection()), 2),
                         "mean_dice": round(dice, 4), "dice_minus_straight": round(dice - reference_dice, 4),
                         "truth_carried_dice": round(mean_dice(truth_back, truth, num_classes), 4),
                         "foreground_dice_vs_straight": round(foreground_dice, 4),
                         "label_agreement_vs_straight": round(label_agreement, 4),
                         "resampled": bool(alignment), "seconds_to_grid": alignment.get("seconds_to_grid"),
                         "seconds_back": alignment.get("seconds_back"), "case_seconds": report[name]["seconds"],
                         "grid_shape": alignment.get("grid_shape")})
    return rows


def probability_scores(npz: Path, truth_image: sitk.Image, truth: np.ndarray, straight: np.ndarray,
                       straight_dice: float, num_classes: int) -> dict:
    """The scores of a prediction carried back by its probabilities (linear, then argmax), when they were saved."""
    if not npz.is_file():
        return {}
    back = labels_from_probabilities(npz, truth_image)
    dice = mean_dice(back, truth, num_classes)
    foreground, alike = agreement(back, straight)
    return {"prob_mean_dice": round(dice, 4), "prob_dice_minus_straight": round(dice - straight_dice, 4),
            "prob_foreground_dice_vs_straight": round(foreground, 4), "prob_label_agreement_vs_straight": round(alike, 4)}


def shifted_reference(image: sitk.Image, millimetres: float) -> sitk.Image:
    """An empty axis-parallel grid like `image`'s (one voxel larger each side) moved by `millimetres` on every axis."""
    reference = sitk.Image([n + 2 for n in image.GetSize()], sitk.sitkUInt8)
    reference.SetSpacing(image.GetSpacing())
    reference.SetDirection(image.GetDirection())
    matrix, spacing = np.reshape(image.GetDirection(), (3, 3)), np.asarray(image.GetSpacing())
    reference.SetOrigin([float(v) for v in np.asarray(image.GetOrigin()) - matrix @ spacing + millimetres])
    return reference


def storage_controls(pred: Path, dataset: Path, subjects: list[str]) -> list[dict]:
    """What the tilted storage alone costs the comparison: the axis-aligned prediction and the reference labels
    stored on each tilted grid (nearest) and carried back, foreground Dice against themselves."""
    rows = []
    for subject in subjects:
        truth_image = sitk.ReadImage(str(dataset / "heldout" / "labels" / f"{subject}.nii.gz"))
        straight_image = sitk.ReadImage(str(pred / f"{subject}_straight.nii.gz"))
        straight, truth = sitk.GetArrayFromImage(straight_image), sitk.GetArrayFromImage(truth_image)
        for degrees in TILTS:
            tilted = sitk.ReadImage(str(pred / f"{subject}_tilt{int(degrees)}.nii.gz"))
            trips = [sitk.GetArrayFromImage(carried(carried(image, tilted, True, sitk.sitkUInt8), truth_image, True,
                                                    sitk.sitkUInt8)) for image in (straight_image, truth_image)]
            back = sitk.GetArrayFromImage(carried(tilted, truth_image, True, sitk.sitkUInt8))
            rows.append({"subject": subject, "storage": f"tilt{int(degrees)}",
                         "pred_fg_vs_straight": agreement(back, straight),
                         "straight_roundtrip_fg_vs_straight": agreement(trips[0], straight),
                         "truth_roundtrip_fg_vs_truth": agreement(trips[1], truth)})
    return rows


def shift_controls(out: Path, dataset: Path, model: Path, subjects: list[str], checkpoint: str,
                   num_classes: int, tta: bool = False) -> list[dict]:
    """The same images not rotated, only stored on a grid moved by 0.5 / 1 mm: how much the lattice alone moves."""
    inputs, pred = out / "shift_inputs", out / "pred_shift"
    for folder in (inputs, pred):
        shutil.rmtree(folder, ignore_errors=True)
    inputs.mkdir(parents=True)
    for subject in subjects:
        image = sitk.ReadImage(str(dataset / "heldout" / "images" / f"{subject}_0000.nii.gz"), sitk.sitkFloat32)
        for mm in SHIFTS_MM:
            shifted = carried(image, shifted_reference(image, mm), False, sitk.sitkFloat32)
            sitk.WriteImage(shifted, str(inputs / f"{subject}_shift{str(mm).replace('.', 'p')}_0000.nii.gz"))
    segkit("predict", "-i", str(inputs), "-o", str(pred), "-m", str(model), "-f", "0", *tta_flags(tta),
           "--checkpoint", checkpoint, "--save-probabilities")
    rows = []
    for subject in subjects:
        truth_image = sitk.ReadImage(str(dataset / "heldout" / "labels" / f"{subject}.nii.gz"))
        truth = sitk.GetArrayFromImage(truth_image)
        straight = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "pred_resampled" / f"{subject}_straight.nii.gz")))
        for mm in SHIFTS_MM:
            prediction = sitk.ReadImage(str(pred / f"{subject}_shift{str(mm).replace('.', 'p')}.nii.gz"))
            back = sitk.GetArrayFromImage(carried(prediction, truth_image, True, sitk.sitkUInt8))
            dice = mean_dice(back, truth, num_classes)
            foreground, alike = agreement(back, straight)
            npz = pred / f"{subject}_shift{str(mm).replace('.', 'p')}.npz"
            rows.append(probability_scores(npz, truth_image, truth, straight, mean_dice(straight, truth, num_classes),
                                           num_classes) | {"subject": subject, "shift_mm": mm, "mean_dice": round(dice, 4),
                         "dice_minus_straight": round(dice - mean_dice(straight, truth, num_classes), 4),
                         "foreground_dice_vs_straight": round(foreground, 4), "label_agreement_vs_straight": round(alike, 4)})
    return rows


def main() -> None:
    """Train (unless --skip-train), predict every storage with and without the resampling, print and save."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="/tmp/bench_oblique")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, nargs=2, metavar=("EPOCHS", "ITERATIONS"),
                        help="train EPOCHS x ITERATIONS steps of FIXED_CONFIGURATION instead of --minutes")
    parser.add_argument("--modes", nargs="+", default=["resampled", "as_before"], choices=["resampled", "as_before"])
    parser.add_argument("--subjects", nargs="+", default=list(realdata.HELD_OUT), choices=list(realdata.HELD_OUT))
    parser.add_argument("--skip-train", action="store_true", help="reuse the model already trained in --out")
    parser.add_argument("--checkpoint", default="final", choices=("final", "best", "latest"),
                        help="which checkpoint predicts (latest: a training stopped early, e.g. on a loaded machine)")
    parser.add_argument("--lateral", action="store_true",
                        help="the lateralised dataset (realdata.LATERAL_CLASSES: 12 structures, left and right apart)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the predictions already written (`segkit predict --continue`), e.g. after a kill")
    parser.add_argument("--controls", action="store_true",
                        help="also the controls: the storage's own round trip, and the images shifted 0.5 / 1 mm "
                             "without rotation (needs the resampled mode)")
    parser.add_argument("--tta", action="store_true", help="predict with mirroring TTA (segkit's default; off: --no-tta)")
    parser.add_argument("--model", help="a model folder already trained on this dataset (fold 0): score it, no training")
    args = parser.parse_args()
    out = Path(args.out)
    dataset = out / ("RealBrainLateral" if args.lateral else "RealBrainStructures")
    if not (dataset / "dataset.json").is_file():
        realdata.build_dataset(dataset, args.seed, lateral=args.lateral)
    num_classes = len(realdata.LATERAL_CLASSES if args.lateral else realdata.CLASSES)
    work = out / "work"
    models = Path(args.model) if args.model else work / "models" / CONFIGURATION
    result: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "tta": args.tta,
                    "minutes": None if args.steps else args.minutes, "steps": args.steps,
                    "configuration": FIXED_CONFIGURATION if args.steps else "planned + hardware fit",
                    "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                    "loadavg_start": loadavg(), "dataset": dataset.name, "classes": num_classes}
    if args.model:
        result |= {"minutes": None, "steps": None, "configuration": None, "model": str(models)}
    if not args.skip_train and not args.model:
        segkit("plan", str(dataset), "--work-dir", str(work), "--configurations", CONFIGURATION, "--force")
        segkit("preprocess", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION)
        if args.steps:
            fix_configuration(work)
        models.mkdir(parents=True, exist_ok=True)
        (models / "splits.json").write_text(json.dumps(SPLIT))
        start = time.monotonic()
        segkit("train", str(dataset), "--work-dir", str(work), "-c", CONFIGURATION, "-f", "0",
               *train_arguments(args.minutes, args.steps), "--seed", str(args.seed), "--quiet")
        result["train_wall_s"] = round(time.monotonic() - start, 1)
        log = [json.loads(line) for line in (models / "fold_0" / "log.jsonl").read_text().splitlines()]
        result["train_steps"] = log[-1]["step"] if log else 0
        result["validation_mean_dice"] = log[-1].get("val_mean_dice") if log else None
    log = [json.loads(line) for line in (models / "fold_0" / "log.jsonl").read_text().splitlines()]
    result |= {"checkpoint": args.checkpoint, "checkpoint_step": log[-1]["step"] if log else 0,
               "validation_mean_dice": next((e["val_mean_dice"] for e in reversed(log) if e.get("val_mean_dice") is not None),
                                            None)}
    plans = json.loads((models / "plans.json").read_text())
    result["training_orientations"] = plans.get("training_orientations")
    result["oblique_inputs"] = plans.get("oblique_inputs")
    before = out / "model_as_before"   # the same weights, resampling switched off through the plan
    shutil.rmtree(before, ignore_errors=True)
    shutil.copytree(models, before)
    plans["oblique_inputs"] = {"resample_above_degrees": 90.0}
    (before / "plans.json").write_text(json.dumps(plans, indent=1))
    inputs = out / "inputs"
    shutil.rmtree(inputs, ignore_errors=True)
    inputs.mkdir(parents=True)
    stored = write_inputs(dataset, inputs, args.subjects)
    for mode, model in (("resampled", models), ("as_before", before)):
        if mode not in args.modes:
            continue
        pred = out / f"pred_{mode}"
        if not args.resume:
            shutil.rmtree(pred, ignore_errors=True)
        segkit("predict", "-i", str(inputs), "-o", str(pred), "-m", str(model), "-f", "0", *tta_flags(args.tta),
               "--checkpoint", args.checkpoint, *(["--continue"] if args.resume else []),
               *(["--save-probabilities"] if mode == "resampled" else []))
        result[mode] = score(pred, dataset, stored, args.subjects, num_classes)
        for row in result[mode]:
            print(json.dumps({"mode": mode} | row), flush=True)
    if args.controls and "resampled" in result:
        result["storage_controls"] = storage_controls(out / "pred_resampled", dataset, args.subjects)
        result["shift_controls"] = shift_controls(out, dataset, models, args.subjects, args.checkpoint, num_classes,
                                                  args.tta)
        for row in result["storage_controls"] + result["shift_controls"]:
            print(json.dumps(row), flush=True)
    result["loadavg_end"] = loadavg()
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out / 'result.json'}")


if __name__ == "__main__":
    main()
