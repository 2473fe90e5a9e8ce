"""Evaluate a folder of predicted label maps against reference label maps (`segkit evaluate`).

Sparse references (an ignore label, docs/sparse-annotation.md): reference voxels holding the
ignore value are left out -- every metric compares prediction and reference on the annotated
voxels only, and the summary records the ignore value and the annotated fraction.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from segkit.errors import UserError
from segkit.evaluation.metrics import BRATS_HD_PENALTY_MM, DEFAULT_NSD_TOLERANCE_MM, METRIC_NAMES, mask_metrics
from segkit.io.dataset import load_dataset
from segkit.io.image import image_suffix, read_label_map
from segkit.io.parallel import parallel_map
from segkit.jsonio import atomic_path, write_json

SUMMARY_FORMAT = "segkit-evaluation-1"
HD_DEFINITION = "max of the two directed 95th percentiles of surface-voxel distances (BraTS/MONAI)"
SPARSE_NOTE = "only annotated voxels scored: reference voxels holding the ignore label are left out"


@dataclass(frozen=True)
class CasePair:
    """One case to evaluate: its id, prediction file and reference file."""

    case_id: str
    prediction: Path
    reference: Path


def parse_label_specs(items: Sequence[str]) -> dict[str, list[int]]:
    """Parse `--labels` items: `2` (one label value) or `NAME=1,2,3` (a region: union of values)."""
    classes: dict[str, list[int]] = {}
    for item in items:
        name, _, values_text = item.rpartition("=")
        try:
            values = [int(v) for v in values_text.split(",") if v.strip()]
        except ValueError:
            raise UserError(f"--labels: {item!r} is not 'VALUE' or 'NAME=V1,V2,...' with integer values") from None
        if not values or 0 in values:
            raise UserError(f"--labels: {item!r} must name at least one non-zero label value")
        classes[name or values_text] = values
    return classes


def classes_from_dataset(dataset: str | Path) -> dict[str, list[int]]:
    """Foreground classes or regions (name -> label values) declared in a dataset's dataset.json."""
    from segkit.io.dataset import load_dataset

    return load_dataset(dataset).regions


def named_classes_of_reference(ref: Path) -> dict[str, list[int]] | None:
    """Class names for a dataset's labelsTr/labelsTs (its dataset.json beside it), one value per class; else None.

    Region-based datasets (a label naming several values) return None: which regions to score
    is the caller's choice (--regions-from), and per-value scoring has no names for them.
    """
    from segkit.io.dataset import load_dataset

    root = ref.parent if ref.name in ("labelsTr", "labelsTs") else ref
    if not (root / "dataset.json").is_file():
        return None
    info = load_dataset(root)
    if info.region_based:
        return None
    return {str(name): [int(value)] for name, value in info.annotation_labels.items()
            if isinstance(value, int) and value != 0}


def ignore_label_of(dataset: str | Path) -> int | None:
    """The ignore label declared by DATASET/dataset.json; None when the folder is not a dataset or has none."""
    from segkit.io.dataset import load_dataset

    return load_dataset(dataset).ignore_label if (Path(dataset) / "dataset.json").is_file() else None


def label_files(folder: Path) -> dict[str, Path]:
    """Image files of a folder by case id (file name without its image suffix); hidden files skipped."""
    if not folder.is_dir():
        raise UserError("folder not found", folder)
    files = {}
    for path in sorted(folder.iterdir()):
        suffix = image_suffix(path)
        if suffix and not path.name.startswith(".") and path.is_file():
            files[path.name[: -len(suffix)]] = path
    return files


def is_reference_folder(folder: Path) -> bool:
    """A dataset folder or its labelsTr/labelsTs: where reference label maps live."""
    return (folder.name in ("labelsTr", "labelsTs") or (folder / "dataset.json").is_file()
            or (folder.name.startswith("labels") and (folder.parent / "dataset.json").is_file()))


def _declared_values(ref: Path) -> set[int] | None:
    """Label values the reference's dataset.json declares (None when there is no dataset.json next to it)."""
    for root in (ref, ref.parent):
        if (root / "dataset.json").is_file():
            return set(load_dataset(root).label_values)
    return None


def check_argument_order(pred: Path, ref: Path, output: Path, subset: bool = False) -> None:
    """Refuse swapped PRED/REF (nnU-Net's order is REF PRED) and a summary written among the references."""
    hint = "are the arguments swapped? the order is segkit evaluate PREDICTIONS REFERENCES"
    if pred.is_dir() and is_reference_folder(pred):
        raise UserError(f"this is a folder of reference labels; {hint}", pred)
    out_dir = output.parent.resolve()
    if ref.exists() and (out_dir in {ref.resolve(), (ref / "labelsTr").resolve()} or is_reference_folder(out_dir)):
        raise UserError("refusing to write the summary into a folder of reference labels; pass -o elsewhere", out_dir)
    if not (pred.is_dir() and ref.is_dir()):
        return
    refs = label_files(ref / "labelsTr" if (ref / "dataset.json").is_file() else ref)
    preds = label_files(pred)
    if not subset and 0 < len(refs) < len(preds) and set(refs) <= set(preds):
        raise UserError(f"the references ({len(refs)} cases) are fewer than the predictions ({len(preds)}); "
                        f"{hint} (pass --subset to evaluate only the referenced cases)", ref)
    declared = _declared_values(ref)
    if declared is not None and preds:
        first = next(iter(preds.values()))
        found = set(int(v) for v in np.unique(read_label_map(first).array))
        if found - declared:
            raise UserError(f"holds label values {sorted(found - declared)} that dataset.json does not declare; "
                            f"{hint}", first)


def match_cases(pred: Path, ref: Path, allow_missing: bool = False) -> tuple[list[CasePair], list[str], list[str]]:
    """Pair predictions with references; returns pairs, references without prediction, extra predictions."""
    for path, what in ((pred, "prediction"), (ref, "reference")):
        if not path.exists():
            raise UserError(f"{what} folder or file not found", path)
    if pred.is_file() and ref.is_file():
        case_id = ref.name[: -len(image_suffix(ref))] if image_suffix(ref) else ref.name
        return [CasePair(case_id, pred, ref)], [], []
    refs = label_files(ref / "labelsTr" if (ref / "dataset.json").is_file() else ref)
    if not refs:
        raise UserError("no reference label files found", ref)
    preds = label_files(pred)
    missing = sorted(set(refs) - set(preds))
    extra = sorted(set(preds) - set(refs))
    if missing and not allow_missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise UserError(f"no prediction for {len(missing)} reference case(s): {shown} (use --allow-missing to skip them)",
                        pred)
    pairs = [CasePair(case, preds[case], refs[case]) for case in sorted(set(refs) & set(preds))]
    if not pairs:
        raise UserError("no prediction matches any reference case", pred)
    return pairs, missing, extra


def _masks(labels: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """Binary mask of the voxels whose label is one of values."""
    return labels == values[0] if len(values) == 1 else np.isin(labels, values)


def evaluate_pair(pair: CasePair, classes: dict[str, list[int]] | None, nsd_tolerance_mm: float,
                  hd_empty_penalty_mm: float, ignore_label: int | None = None) -> dict:
    """Metrics of one case per class; classes None = every non-zero value present. Errors as values.

    With ignore_label, only the voxels whose reference is not the ignore value are scored.
    """
    try:
        ref = read_label_map(pair.reference)
        pred = read_label_map(pair.prediction)
        problem = ref.geometry.mismatch(pred.geometry)
        if problem:
            raise UserError(f"geometry does not match the reference {pair.reference}: {problem}", pair.prediction)
        if classes is None:
            present = sorted((set(np.unique(ref.array)) | set(np.unique(pred.array))) - {0, ignore_label})
            classes = {str(int(v)): [int(v)] for v in present}
        annotated = ref.array != ignore_label if ignore_label is not None else None
        if annotated is not None and annotated.all():
            annotated = None

        def masks(values: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
            pred_mask, ref_mask = _masks(pred.array, values), _masks(ref.array, values)
            return (pred_mask, ref_mask) if annotated is None else (pred_mask & annotated, ref_mask & annotated)

        metrics = {name: mask_metrics(*masks(values), ref.spacing, nsd_tolerance_mm, hd_empty_penalty_mm)
                   for name, values in classes.items()}
        result: dict[str, Any] = {"case_id": pair.case_id, "prediction": str(pair.prediction), "reference": str(pair.reference),
                  "metrics": metrics}
        if ignore_label is not None:
            result["annotated_voxels"] = int(ref.array.size if annotated is None else np.count_nonzero(annotated))
            result["voxels"] = int(ref.array.size)
        return result
    except UserError as err:
        return {"case_id": pair.case_id, "error": str(err)}


def _both_empty() -> dict:
    """The metrics of a class absent from both masks."""
    return {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0, "n_pred": 0, "n_ref": 0, "tp": 0}


def _complete_auto_classes(cases: list[dict]) -> dict[str, list[int]]:
    """With auto-detected classes, fill classes absent from a case with the both-empty metrics."""
    values = sorted({int(name) for case in cases for name in case["metrics"]})
    classes = {str(v): [v] for v in values}
    for case in cases:
        case["metrics"] = {name: case["metrics"].get(name, _both_empty()) for name in classes}
    return classes


def summarise(cases: list[dict], classes: dict[str, list[int]]) -> tuple[dict, dict]:
    """Per-class means over cases, and the foreground mean (mean of the class means)."""
    class_means = {name: {metric: float(np.mean([case["metrics"][name][metric] for case in cases]))
                          for metric in METRIC_NAMES} for name in classes}
    foreground = {metric: float(np.mean([class_means[name][metric] for name in classes])) if classes else float("nan")
                  for metric in METRIC_NAMES}
    return class_means, foreground


def evaluate_folders(pred: str | Path, ref: str | Path, classes: dict[str, list[int]] | None = None,
                     nsd_tolerance_mm: float = DEFAULT_NSD_TOLERANCE_MM,
                     hd_empty_penalty_mm: float = BRATS_HD_PENALTY_MM, allow_missing: bool = False,
                     num_workers: int = 1, ignore_label: int | None = None) -> dict:
    """Evaluate every reference case against its prediction; returns the summary dict (not written).

    ignore_label: reference voxels with this value are not scored (sparse annotation); by default
    the value declared by REF's dataset.json when REF is a dataset folder.
    """
    if nsd_tolerance_mm < 0 or hd_empty_penalty_mm < 0:
        raise UserError("--nsd-tolerance and --hd-empty-penalty must be non-negative")
    pred, ref = Path(pred), Path(ref)
    if ignore_label is None and ref.is_dir():
        ignore_label = ignore_label_of(ref)
    if classes is None and ref.is_dir():
        classes = named_classes_of_reference(ref)   # "Anterior", not "1", when the reference is a dataset's
    if classes is not None and ignore_label is not None and any(ignore_label in v for v in classes.values()):
        raise UserError(f"the ignore label {ignore_label} cannot be scored as a class")
    pairs, missing, extra = match_cases(pred, ref, allow_missing)
    worker = partial(evaluate_pair, classes=classes, nsd_tolerance_mm=nsd_tolerance_mm,
                     hd_empty_penalty_mm=hd_empty_penalty_mm, ignore_label=ignore_label)
    cases = parallel_map(worker, pairs, num_workers, desc="evaluate")
    errors = [case["error"] for case in cases if "error" in case]
    if errors:
        more = f" (and {len(errors) - 1} more case(s) failed)" if len(errors) > 1 else ""
        raise UserError(errors[0] + more)
    if classes is None:
        classes = _complete_auto_classes(cases)
    class_means, foreground = summarise(cases, classes)
    settings = {"nsd_tolerance_mm": nsd_tolerance_mm, "hd_empty_penalty_mm": hd_empty_penalty_mm,
                "hd95_definition": HD_DEFINITION, "distance_unit": "mm"}
    if ignore_label is not None:
        annotated = sum(case["annotated_voxels"] for case in cases)
        settings |= {"ignore_label": int(ignore_label), "scored_voxels": SPARSE_NOTE,
                     "annotated_fraction": round(annotated / max(1, sum(case["voxels"] for case in cases)), 6)}
    return {"format": SUMMARY_FORMAT, "prediction": str(pred), "reference": str(ref),
            "classes": classes, "settings": settings,
            "num_cases": len(cases), "missing_predictions": missing, "predictions_without_reference": extra,
            "mean": class_means, "foreground_mean": foreground, "cases": cases}


def csv_rows(summary: dict) -> list[list]:
    """One row per case and class, then one mean row per class and the foreground mean."""
    columns = list(METRIC_NAMES)
    rows: list[list] = [["case_id", "class", *columns, "n_pred", "n_ref", "tp"]]
    for case in summary["cases"]:
        for name, metrics in case["metrics"].items():
            rows.append([case["case_id"], name, *[metrics[c] for c in columns],
                         metrics["n_pred"], metrics["n_ref"], metrics["tp"]])
    for name, metrics in summary["mean"].items():
        rows.append(["mean", name, *[metrics[c] for c in columns], "", "", ""])
    rows.append(["mean", "foreground", *[summary["foreground_mean"][c] for c in columns], "", "", ""])
    return rows


def write_summary(summary: dict, json_path: str | Path) -> tuple[Path, Path]:
    """Write summary.json and the CSV beside it (same name, .csv), each atomically."""
    json_path = Path(json_path)
    csv_path = json_path.with_suffix(".csv")
    with atomic_path(csv_path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as handle:
            csv.writer(handle).writerows(csv_rows(summary))
    write_json(json_path, summary)
    return json_path, csv_path


def format_means(summary: dict) -> str:
    """A small text table of the per-class means."""
    lines = [f"{'class':<16}" + "".join(f"{m:>10}" for m in METRIC_NAMES)]
    for name, metrics in {**summary["mean"], "foreground": summary["foreground_mean"]}.items():
        lines.append(f"{name:<16}" + "".join(f"{metrics[m]:>10.4f}" for m in METRIC_NAMES))
    settings = summary.get("settings", {})
    if settings.get("ignore_label") is not None:
        lines.append(f"sparse reference (ignore label {settings['ignore_label']}): only the annotated voxels were "
                     f"scored, {100 * settings['annotated_fraction']:.1f} % of all voxels")
    return "\n".join(lines)
