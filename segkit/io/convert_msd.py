"""Plan the conversion of a Medical Segmentation Decathlon (MSD) task folder.

MSD layout: ``dataset.json`` with ``modality`` ({"0": "FLAIR", ...}), ``labels``
({"0": "background", ...}), ``training`` ([{"image": "./imagesTr/X.nii.gz", "label":
"./labelsTr/X.nii.gz"}]) and ``test`` (["./imagesTs/Y.nii.gz"]). Multi-channel tasks store
one 4D file per case, split here into ``X_0000``, ``X_0001``, ...; labels keep their values.
"""

from __future__ import annotations

import re
from pathlib import Path

from segkit.errors import UserError
from segkit.io.convert_files import FileJob
from segkit.io.image import image_suffix
from segkit.jsonio import read_json

OUTPUT_ENDING = ".nii.gz"
METADATA_KEYS = ("name", "description", "reference", "licence", "license", "release", "tensorImageSize")


def _msd_json(src: Path) -> dict:
    """Read and validate the MSD dataset.json."""
    path = src / "dataset.json"
    data = read_json(path, "dataset.json")
    if not isinstance(data, dict):
        raise UserError("must hold a JSON object", path)
    for key in ("modality", "labels", "training"):
        if key not in data:
            raise UserError(f"MSD dataset.json has no '{key}' entry", path)
    modality = data["modality"]
    if not isinstance(modality, dict) or not modality or sorted(modality) != [str(i) for i in range(len(modality))]:
        raise UserError("'modality' must map '0', '1', ... (no gaps) to channel names", path)
    if not isinstance(data["training"], list) or not isinstance(data.get("test", []), list):
        raise UserError("'training' and 'test' must be lists", path)
    return data


def msd_labels(labels: object, path: Path) -> dict[str, int]:
    """Invert MSD labels ({"0": "background"}) into name -> value, background first."""
    if not isinstance(labels, dict) or not labels:
        raise UserError("'labels' must map label values to names", path)
    out: dict[str, int] = {}
    for value, name in sorted(labels.items(), key=lambda item: _label_value(item[0], path)):
        if not isinstance(name, str) or name in out:
            raise UserError(f"label name {name!r} is not a string or appears twice", path)
        out[name] = _label_value(value, path)
    if 0 not in out.values():
        raise UserError("'labels' must declare background as '0'", path)
    return out


def _label_value(key: str, path: Path) -> int:
    """Parse an MSD label key ('0', '1', ...) as an integer."""
    try:
        return int(key)
    except (TypeError, ValueError):
        raise UserError(f"label key {key!r} is not an integer", path) from None


def _inside(src: Path, relative: object, json_path: Path) -> Path:
    """Resolve a path listed in dataset.json, refusing one that escapes the dataset folder."""
    if not isinstance(relative, str) or not relative:
        raise UserError(f"expected a file path, got {relative!r}", json_path)
    path = src / relative
    try:
        path.resolve().relative_to(src.resolve())
    except ValueError:
        raise UserError(f"path {relative!r} escapes the dataset folder", json_path) from None
    if not image_suffix(path):
        raise UserError(f"path {relative!r} is not an image file", json_path)
    if not path.is_file():
        raise UserError(f"file listed in dataset.json not found ({relative})", path)
    return path


def _case_id(path: Path) -> str:
    """Case id of an MSD image: the file name without its image suffix."""
    return path.name[: -len(image_suffix(path))]


def _image_job(image: Path, folder: Path, num_channels: int) -> FileJob:
    """Job writing one case's channel files (split a 4D file; a single-channel 3D file is copied)."""
    case_id = _case_id(image)
    dests = tuple(str(folder / f"{case_id}_{c:04d}{OUTPUT_ENDING}") for c in range(num_channels))
    return FileJob("split", str(image), dests)


def plan_msd(src: Path, dest: Path) -> tuple[list[FileJob], dict]:
    """Jobs and the new dataset.json for an MSD folder (validates the listing, reads no voxels)."""
    json_path = src / "dataset.json"
    data = _msd_json(src)
    labels = msd_labels(data["labels"], json_path)
    num_channels = len(data["modality"])
    jobs: list[FileJob] = []
    training_ids: list[str] = []
    for entry in data["training"]:
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            raise UserError(f"'training' entry {entry!r} needs 'image' and 'label'", json_path)
        image, label = _inside(src, entry["image"], json_path), _inside(src, entry["label"], json_path)
        jobs.append(_image_job(image, dest / "imagesTr", num_channels))
        jobs.append(FileJob("copy", str(label), (str(dest / "labelsTr" / f"{_case_id(image)}{OUTPUT_ENDING}"),)))
        training_ids.append(_case_id(image))
    test_ids = []
    for entry in data.get("test", []):
        image = _inside(src, entry["image"] if isinstance(entry, dict) else entry, json_path)
        jobs.append(_image_job(image, dest / "imagesTs", num_channels))
        test_ids.append(_case_id(image))
    _refuse_duplicates(training_ids + test_ids, json_path)
    dataset_json = {key: data[key] for key in METADATA_KEYS if key in data}
    dataset_json.update({
        "channel_names": {str(k): str(v) for k, v in sorted(data["modality"].items(), key=lambda kv: int(kv[0]))},
        "labels": labels,
        "file_ending": OUTPUT_ENDING,
        "numTraining": len(training_ids),
        "numTest": len(test_ids),
        "segkit_source": {
            "format": "msd",
            # the task folder's name (Task05_Prostate): what `export --format msd` names the submission
            **({"task": src.name} if re.match(r"^Task\d+_.+$", src.name) else {}),
            "case_pattern": "{case}.nii.gz",
            "label_map": {str(v): v for v in labels.values() if v != 0},
            "original": {k: v for k, v in data.items() if k not in ("training", "test")},
        },
    })
    return jobs, dataset_json


def _refuse_duplicates(case_ids: list[str], json_path: Path) -> None:
    """Refuse a dataset.json listing the same case twice (outputs would overwrite each other)."""
    seen: set[str] = set()
    for case_id in case_ids:
        if case_id in seen:
            raise UserError(f"case {case_id!r} is listed twice", json_path)
        seen.add(case_id)
