"""Challenge exports of label-map predictions: BraTS 2021 / 2023+ and the Medical Segmentation Decathlon.

The dataset's `segkit_source` record (written by `segkit convert`) says which challenge the
data came from and how stored label values map back to the original ones. Every exported
file is uint8, carries the original label values and the exact header of the case's input
image; a prediction whose geometry differs from its input is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segkit.errors import UserError
from segkit.inference.writing import write_label_like
from segkit.io.dataset import DatasetInfo, load_dataset
from segkit.io.image import image_suffix, read_image

BRATS_CASE_PATTERNS = {"brats2021": re.compile(r"^BraTS2021_\d{5}$"),
                       "brats2023": re.compile(r"^BraTS-[A-Z]+-\d{5}-\d{3}$")}
# the Decathlon's task numbers, for the submission's Task<NN>_<Name> folders
MSD_TASK_NUMBERS = {"BrainTumour": 1, "Heart": 2, "Liver": 3, "Hippocampus": 4, "Prostate": 5, "Lung": 6,
                    "Pancreas": 7, "HepaticVessel": 8, "Spleen": 9, "Colon": 10}
EXPORT_FORMATS = ("brats", "msd")


@dataclass(frozen=True)
class ExportPlan:
    """Where each exported case goes and how its label values are translated."""

    source_format: str
    value_map: dict[int, int]
    output_dir: Path


def source_record(dataset_root: Path) -> tuple[dict, DatasetInfo]:
    """The dataset's segkit_source record and its DatasetInfo; UserError when it was not converted."""
    info = load_dataset(dataset_root)
    record = info.raw.get("segkit_source")
    if not isinstance(record, dict) or "format" not in record:
        raise UserError("dataset.json has no 'segkit_source' record; export needs a dataset made by "
                        "`segkit convert`", dataset_root / "dataset.json")
    return record, info


def value_map_of(record: dict, path: Path) -> dict[int, int]:
    """Stored label value -> original challenge value (background stays 0)."""
    try:
        mapping = {0: 0, **{int(k): int(v) for k, v in (record.get("label_map") or {}).items()}}
    except (TypeError, ValueError):
        raise UserError("segkit_source.label_map must map label values to label values", path) from None
    return mapping


def msd_task_folder(record: dict, info: DatasetInfo, task: str | None) -> str:
    """Task<NN>_<Name> of an MSD dataset (or the explicit --task)."""
    if task:
        return task
    if re.match(r"^Task\d+_.+$", str(record.get("task") or "")):
        return str(record["task"])             # recorded by `segkit convert` from the task folder's name
    original = record.get("original") or {}
    name = str(original.get("name") or info.name)
    match = re.match(r"^Task(\d+)_(.+)$", info.root.name)
    if match:
        return info.root.name
    # the Decathlon's own dataset.json names differ from its folders ("BRATS", "PROSTATE")
    known = {key.lower(): key for key in MSD_TASK_NUMBERS} | {"brats": "BrainTumour"}
    if name.lower() in known:
        folder = known[name.lower()]
        return f"Task{MSD_TASK_NUMBERS[folder]:02d}_{folder}"
    raise UserError(f"cannot tell the MSD task folder for dataset {name!r}; pass --task TaskNN_Name",
                    info.root / "dataset.json")


def plan_export(export_format: str, dataset_root: Path, output: Path, task: str | None = None) -> ExportPlan:
    """Check the dataset's origin fits the requested export and work out the target folder."""
    record, info = source_record(dataset_root)
    json_path = dataset_root / "dataset.json"
    source = str(record["format"])
    if export_format == "brats":
        if source not in BRATS_CASE_PATTERNS:
            raise UserError(f"dataset was converted from {source!r}, not a BraTS challenge folder", json_path)
        return ExportPlan(source, value_map_of(record, json_path), output)
    if export_format == "msd":
        if source != "msd":
            raise UserError(f"dataset was converted from {source!r}, not an MSD task", json_path)
        return ExportPlan(source, value_map_of(record, json_path), output / msd_task_folder(record, info, task))
    raise UserError(f"unknown export format {export_format!r}; choose from {', '.join(EXPORT_FORMATS)}")


def input_image(dataset_root: Path, case_id: str, file_ending: str) -> Path:
    """The case's first channel in imagesTs or imagesTr (the geometry reference)."""
    for split in ("imagesTs", "imagesTr"):
        path = dataset_root / split / f"{case_id}_0000{file_ending}"
        if path.is_file():
            return path
    raise UserError(f"no input image {case_id}_0000{file_ending} in imagesTs or imagesTr", dataset_root)


def translate_labels(labels: np.ndarray, value_map: dict[int, int], path: Path) -> np.ndarray:
    """Stored values -> challenge values as uint8; UserError on a value the dataset does not declare."""
    present = np.unique(labels)
    unknown = [int(v) for v in present if int(v) not in value_map]
    if unknown:
        raise UserError(f"label values {unknown} are not among the dataset's {sorted(value_map)}", path)
    lookup = np.zeros(int(present.max(initial=0)) + 1, dtype=np.uint8)
    for stored, original in value_map.items():
        if stored < len(lookup):
            lookup[stored] = original
    return lookup[labels.astype(np.int64)]


def prediction_files(pred_dir: Path) -> list[tuple[str, Path]]:
    """(case id, path) of every label map in a prediction folder."""
    if not pred_dir.is_dir():
        raise UserError("prediction folder not found", pred_dir)
    found = []
    for path in sorted(pred_dir.iterdir()):
        suffix = image_suffix(path)
        if path.is_file() and suffix and not path.name.startswith("."):
            found.append((path.name[: -len(suffix)], path))
    if not found:
        raise UserError("no label maps found", pred_dir)
    return found


def check_case(plan: ExportPlan, case_id: str, prediction: Path, reference: Path) -> np.ndarray:
    """The prediction's labels after the name and geometry checks against its input image."""
    pattern = BRATS_CASE_PATTERNS.get(plan.source_format)
    if pattern is not None and not pattern.match(case_id):
        raise UserError(f"case id {case_id!r} does not follow the {plan.source_format} naming", prediction)
    predicted = read_image(prediction)
    expected = read_image(reference).geometry
    problem = expected.mismatch(predicted.geometry)
    if problem:
        raise UserError(f"geometry differs from the input {reference.name}: {problem}", prediction)
    return translate_labels(predicted.array, plan.value_map, prediction)


def export_predictions(export_format: str, pred_dir: str | Path, output: str | Path, dataset_root: str | Path,
                       task: str | None = None) -> list[Path]:
    """Check every prediction, then write the challenge files (nothing is written if any case fails)."""
    dataset_root, pred_dir = Path(dataset_root), Path(pred_dir)
    plan = plan_export(export_format, dataset_root, Path(output), task)
    info = load_dataset(dataset_root)
    cases = [(case_id, path, input_image(dataset_root, case_id, info.file_ending))
             for case_id, path in prediction_files(pred_dir)]
    for case_id, path, reference in cases:   # check all first: no partial export
        check_case(plan, case_id, path, reference)
    written = []
    for case_id, path, reference in cases:
        labels = check_case(plan, case_id, path, reference)
        target = plan.output_dir / f"{case_id}.nii.gz"
        written.append(write_label_like(labels, read_image(reference).geometry, target, reference))
    return written
