"""Dataset fingerprint: geometry, crop statistics, foreground intensities and class volumes.

Everything the planner needs is measured here once and written to fingerprint.json, so
planning is cheap, repeatable and can be re-run with other budgets without touching images.
Deterministic: each case samples its foreground voxels with a seed derived from its id.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from segkit.console import progress_bar
from segkit.errors import UserError
from segkit.io.dataset import CaseFiles, DatasetInfo, training_cases
from segkit.io.image import read_image
from segkit.jsonio import read_json, write_json
from segkit.preprocessing.orientation import CANONICAL, oblique_degrees, orientation_summary, reorientation_for

# 2: spacing and shapes in the canonical (LPS) array order, per-case orientation code
FINGERPRINT_VERSION = 2
# Pool at most this many foreground voxels per channel over the whole dataset (as nnU-Net does, 1e8).
TOTAL_INTENSITY_SAMPLES = 100_000_000
PERCENTILES = (0.5, 50.0, 99.5)


def nonzero_box(images: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Bounding box [start, stop) of voxels non-zero in any channel; the whole image if none."""
    nonzero = np.any(images != 0, axis=0)
    box = []
    for axis in range(nonzero.ndim):
        other_axes = tuple(a for a in range(nonzero.ndim) if a != axis)
        hits = np.flatnonzero(np.any(nonzero, axis=other_axes))
        box.append((int(hits[0]), int(hits[-1]) + 1) if hits.size else (0, nonzero.shape[axis]))
    return tuple(box)


def case_seed(case_id: str) -> int:
    """Stable per-case random seed (independent of worker order and Python hash seeds)."""
    return int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:4], "little")


def fingerprint_case(case: CaseFiles, samples_per_case: int, ignore_label: int | None = None) -> dict:
    """Measure one case: spacing, shapes, crop ratio, foreground intensity samples, class voxel counts.

    Per-axis values are in the canonical (LPS) array order the networks will see; `direction`
    is the image's own ITK direction and `orientation` its storage code (e.g. "RAS"). With an
    ignore label, foreground intensities come from annotated foreground only, and the case
    records its annotated voxels (inside the crop; unannotated = the ignore value).
    """
    channels = [read_image(path) for path in case.images]
    direction = channels[0].geometry.direction
    reorientation = reorientation_for(direction)
    images = reorientation.to_canonical(np.stack([image.array for image in channels]))
    label = reorientation.to_canonical(read_image(case.label).array) if case.label is not None else None
    box = nonzero_box(images)
    crop = tuple(slice(start, stop) for start, stop in box)
    cropped_shape = [stop - start for start, stop in box]
    spacing = reorientation.values(channels[0].spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    result: dict[str, Any] = {
        "case_id": case.case_id,
        "spacing": [float(s) for s in spacing],
        "direction": [float(v) for v in direction],
        "orientation": reorientation.code,
        "oblique_degrees": round(oblique_degrees(direction), 3),
        "shape_before_crop": list(images.shape[1:]),
        "shape_after_crop": cropped_shape,
        "relative_size_after_crop": float(np.prod(cropped_shape) / np.prod(images.shape[1:])),
        "class_voxels": {},
        "class_volume_ml": {},
        "intensity_samples": [],
    }
    if label is not None:
        values, counts = np.unique(label[crop], return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist()):
            result["class_voxels"][str(int(value))] = int(count)
            result["class_volume_ml"][str(int(value))] = round(count * voxel_ml, 6)
        foreground = label[crop] > 0
        if ignore_label is not None:
            foreground &= label[crop] != ignore_label
            result["annotated_voxels"] = int(np.count_nonzero(label[crop] != ignore_label))
    else:
        foreground = np.any(images[(slice(None),) + crop] != 0, axis=0)
    rng = np.random.default_rng(case_seed(case.case_id))
    for channel in range(images.shape[0]):
        values = images[channel][crop][foreground]
        if values.size > samples_per_case:
            values = rng.choice(values, samples_per_case, replace=False)
        result["intensity_samples"].append(values.astype(np.float32))
    return result


def _fingerprint_case_star(args: tuple[CaseFiles, int, int | None]) -> dict:
    """Picklable wrapper for process pools."""
    return fingerprint_case(*args)


def intensity_statistics(samples: np.ndarray) -> dict:
    """Mean, std, min, max and percentiles of pooled foreground samples of one channel."""
    if samples.size == 0:
        return {"mean": 0.0, "std": 1.0, "min": 0.0, "max": 0.0,
                **{f"percentile_{p}": 0.0 for p in PERCENTILES}}
    samples = samples.astype(np.float64)
    percentiles = np.percentile(samples, PERCENTILES)
    return {"mean": float(samples.mean()), "std": float(samples.std()), "min": float(samples.min()),
            "max": float(samples.max()), **{f"percentile_{p}": float(v) for p, v in zip(PERCENTILES, percentiles)}}


def compute_fingerprint(info: DatasetInfo, num_workers: int = 1, progress: bool = True) -> dict:
    """Fingerprint every training case of a dataset (parallel over cases) into one JSON-able dict."""
    cases = training_cases(info)
    if not cases:
        raise UserError("dataset has no training cases", info.root / "imagesTr")
    samples_per_case = max(1, TOTAL_INTENSITY_SAMPLES // len(cases))
    jobs = [(case, samples_per_case, info.ignore_label) for case in cases]
    show = None if progress else False
    bar: dict[str, Any] = {"total": len(jobs), "desc": "fingerprint", "unit": "case"}
    if num_workers > 1:
        with ProcessPoolExecutor(max_workers=num_workers) as pool:
            per_case = list(progress_bar(pool.map(_fingerprint_case_star, jobs), show=show, **bar))
    else:
        per_case = [fingerprint_case(*job) for job in progress_bar(jobs, show=show, **bar)]
    return summarise(info, per_case)


def summarise(info: DatasetInfo, per_case: list[dict]) -> dict:
    """Combine per-case measurements into the dataset fingerprint."""
    channels = info.channel_list
    statistics = {}
    for index, name in enumerate(channels):
        pooled = np.concatenate([case["intensity_samples"][index] for case in per_case])
        statistics[str(index)] = {"name": name, **intensity_statistics(pooled)}
    cases = []
    for case in per_case:
        cases.append({key: value for key, value in case.items() if key != "intensity_samples"})
    spacings = np.array([case["spacing"] for case in per_case])
    shapes = np.array([case["shape_after_crop"] for case in per_case])
    annotation = {}
    if info.ignore_label is not None:
        annotated = sum(case.get("annotated_voxels", 0) for case in per_case)
        cropped = sum(int(np.prod(case["shape_after_crop"])) for case in per_case)
        annotation = {"ignore_label": info.ignore_label, "annotated_voxels": annotated,
                      "annotated_fraction": annotated / max(cropped, 1)}
    return {
        "fingerprint_version": FINGERPRINT_VERSION,
        "dataset_name": info.name,
        "canonical_orientation": CANONICAL,
        "orientations": orientation_summary([case["direction"] for case in per_case]),
        "num_cases": len(per_case),
        "channel_names": channels,
        "median_spacing": np.median(spacings, axis=0).tolist(),
        "median_shape_after_crop": np.median(shapes, axis=0).tolist(),
        "median_relative_size_after_crop": float(np.median([c["relative_size_after_crop"] for c in per_case])),
        "foreground_intensity_statistics": statistics,
        **annotation,
        "cases": cases,
    }


def read_fingerprint(path: Path) -> dict:
    """fingerprint.json as written by write_fingerprint (the single reader); UserError naming the file."""
    data = read_json(path, "fingerprint")
    if not isinstance(data, dict):
        raise UserError("fingerprint.json must hold a JSON object", path)
    return data


def is_current(fingerprint: dict, case_ids: list[str]) -> bool:
    """Whether a stored fingerprint is of this FINGERPRINT_VERSION and describes exactly these cases."""
    return fingerprint.get("fingerprint_version") == FINGERPRINT_VERSION and \
        [c.get("case_id") for c in fingerprint.get("cases", [])] == case_ids


def write_fingerprint(path: Path, fingerprint: dict) -> None:
    """Write fingerprint.json atomically."""
    write_json(path, fingerprint)
