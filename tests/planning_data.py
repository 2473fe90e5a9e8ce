"""Synthetic planner inputs shared by the planner and network-family tests: a fingerprint and a one-channel dataset."""

from __future__ import annotations

import json
from pathlib import Path

from segkit.io.dataset import load_dataset


def synthetic_fingerprint(shape: list[int], spacing: list[float] | None = None, num_cases: int = 10) -> dict:
    """A fingerprint of `num_cases` identical cases (shape after crop, spacing) with unit intensity statistics."""
    spacing = spacing or [1.0, 1.0, 1.0]
    return {"cases": [{"case_id": f"c{i}", "spacing": spacing, "shape_after_crop": shape} for i in range(num_cases)],
            "foreground_intensity_statistics": {"0": {"mean": 0.0, "std": 1.0, "percentile_0.5": -1.0,
                                                      "percentile_99.5": 1.0}},
            "median_relative_size_after_crop": 0.6}


def one_channel_dataset(folder: Path, modality: str):
    """A dataset with one channel of `modality`, labels a and b, and no images (enough for the planner)."""
    (folder / "imagesTr").mkdir()
    (folder / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": modality}, "labels": {"background": 0, "a": 1, "b": 2}, "file_ending": ".nii.gz"}))
    return load_dataset(folder)
