"""Preprocess a dataset's training cases into WORK/preprocessed/<config>/ (one case per worker task).

Per case: `<CASE>.npy` (float32, C, z, y, x), `<CASE>_seg.npy` (int16, z, y, x) and
`<CASE>.json` (properties), each written atomically; the JSON is written last, so a present
JSON whose `preprocessing_sha256` matches the plans means the case is complete.
This module owns that format: the paths (`case_paths`), the writers and the readers (`load_array`,
`read_properties`) that training uses.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segkit.errors import UserError
from segkit.io.dataset import CaseFiles
from segkit.io.image import read_image
from segkit.jsonio import atomic_path, read_json
from segkit.plans import Plans, ignore_label_of, labels_of
from segkit.preprocessing.pipeline import (
    preprocess_arrays,
    preprocessing_fingerprint,
    sample_annotated_locations,
    sample_class_locations,
)


@dataclass(frozen=True)
class CaseTask:
    """Everything a worker needs to preprocess one case (plain data, cheap to send to a process)."""

    case: CaseFiles
    out_dir: Path
    plans: Plans
    config: str
    plans_hash: str


def case_paths(out_dir: Path, case_id: str) -> tuple[Path, Path, Path]:
    """Data, label and properties paths of one preprocessed case."""
    return out_dir / f"{case_id}.npy", out_dir / f"{case_id}_seg.npy", out_dir / f"{case_id}.json"


def is_complete(out_dir: Path, case_id: str, plans_hash: str) -> bool:
    """True when all three files exist and the properties were made with these plans."""
    data_path, seg_path, json_path = case_paths(out_dir, case_id)
    if not (data_path.is_file() and seg_path.is_file() and json_path.is_file()):
        return False
    try:
        properties = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(properties, dict) and properties.get("preprocessing_sha256") == plans_hash


def read_case(case: CaseFiles) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Read a case's channels (C, z, y, x) float32 and label; check they share one geometry."""
    first = read_image(case.images[0], np.float32)
    images = np.empty((len(case.images),) + first.array.shape, dtype=np.float32)
    images[0] = first.array
    for index, path in enumerate(case.images[1:], start=1):
        channel = read_image(path, np.float32)
        problem = first.geometry.mismatch(channel.geometry)
        if problem:
            raise UserError(f"geometry differs from channel 0 ({case.images[0].name}): {problem}", path)
        images[index] = channel.array
    labels = None
    if case.label is not None:
        label = read_image(case.label)
        problem = first.geometry.mismatch(label.geometry)
        if problem:
            raise UserError(f"label geometry differs from the image's: {problem}", case.label)
        if not np.issubdtype(label.array.dtype, np.integer) and not np.all(label.array == np.round(label.array)):
            raise UserError("label map holds non-integer values", case.label)
        labels = label.array.astype(np.int16)
    return images, labels, first.geometry.to_json()


def save_array(path: Path, array: np.ndarray) -> None:
    """np.save atomically (temp file, then rename)."""
    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)


def save_properties(path: Path, properties: dict) -> None:
    """Write properties as compact JSON atomically (class_locations make indented JSON large)."""
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(properties, separators=(",", ":")) + "\n")


def load_array(path: Path) -> np.ndarray:
    """Memory-map one preprocessed .npy (the single reader), turning a missing or unreadable file into a UserError."""
    if not path.is_file():
        raise UserError("preprocessed file not found (run `segkit preprocess` first)", path)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UserError(f"corrupt preprocessed file ({err}); rerun `segkit preprocess`", path) from None


def read_properties(path: Path) -> dict:
    """A case's preprocessed properties JSON (written by save_properties)."""
    return read_json(path, "preprocessed properties")


def case_seed(case_id: str) -> int:
    """A stable per-case seed for foreground sampling."""
    return zlib.crc32(case_id.encode())


def declared_label_values(plans: Plans) -> list[int]:
    """Every label value the plans' labels declare (integers or region lists), plus the ignore value."""
    values: set[int] = set()
    for value in labels_of(plans).values():
        values.update(int(v) for v in (value if isinstance(value, list) else [value]))
    if (ignore := ignore_label_of(plans)) is not None:
        values.add(ignore)
    return sorted(values)


def check_label_values(labels: np.ndarray, plans: Plans, path: Path) -> None:
    """UserError naming the label file when it holds values the plans do not declare."""
    declared = declared_label_values(plans)
    if declared and not np.isin(labels, declared).all():
        unknown = sorted(set(np.unique(labels).tolist()) - set(declared))
        raise UserError(f"label values {unknown} are not declared in dataset.json/plans (declared: {declared})", path)


def preprocess_case(task: CaseTask) -> str:
    """Preprocess one case and write its three files; returns the case id."""
    images, labels, geometry = read_case(task.case)
    if labels is not None and task.case.label is not None:     # labels are read only from a label file
        check_label_values(labels, task.plans, task.case.label)
    spacing = tuple(reversed(geometry["spacing"]))
    data, seg, properties = preprocess_arrays(images, labels, spacing, task.plans, task.config,
                                              direction=geometry["direction"])
    del images, labels
    properties = {"case_id": task.case.case_id, "geometry": geometry, **properties,
                  "class_locations": sample_class_locations(seg, task.plans, case_seed(task.case.case_id)),
                  "preprocessing_sha256": task.plans_hash}
    if (ignore := ignore_label_of(task.plans)) is not None:
        properties["annotated_locations"] = sample_annotated_locations(seg, ignore,
                                                                       case_seed(task.case.case_id))
    data_path, seg_path, json_path = case_paths(task.out_dir, task.case.case_id)
    save_array(data_path, data)
    save_array(seg_path, seg.astype(np.int16, copy=False))
    save_properties(json_path, properties)
    return task.case.case_id


def reuse_case(source_dir: Path, out_dir: Path, case_id: str) -> None:
    """Hard-link (or copy) a finished case from another configuration with identical preprocessing; JSON last."""
    for source in case_paths(source_dir, case_id):
        target = out_dir / source.name
        with atomic_path(target, suffix=source.suffix) as tmp:
            tmp.unlink()
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)


def make_tasks(cases: list[CaseFiles], out_dir: Path, plans: Plans, config: str, force: bool
               ) -> tuple[list[CaseTask], int]:
    """Tasks for the cases still to do, and how many were skipped as complete."""
    plans_hash = preprocessing_fingerprint(plans, config)
    todo = [CaseTask(case, out_dir, plans, config, plans_hash) for case in cases
            if force or not is_complete(out_dir, case.case_id, plans_hash)]
    return todo, len(cases) - len(todo)
