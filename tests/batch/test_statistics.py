"""Per-case statistics (JSON and CSV) in physical volumes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from batch_data import (
    SPEC,
    SPEC_2CH,
    output_request,
    run_batch,
    threshold_predict,
    write_file_case,
)

from segkit.batch.cases import discover_cases
from segkit.batch.pipeline import RunOptions as BatchOptions
from segkit.io.image import read_image


def test_statistics_json_and_csv_use_physical_voxel_volume(tmp_path):
    folder = tmp_path / "in"
    geometry = write_file_case(folder, "case_a", seed=3)
    write_file_case(folder, "case_b", seed=4)
    out = tmp_path / "out"
    run_batch(discover_cases(folder), SPEC_2CH, output_request(out, statistics=True), threshold_predict, BatchOptions(), folder)
    stats = json.loads((out / "case_a_stats.json").read_text())
    label = read_image(out / "case_a.nii.gz").array
    voxel_ml = float(np.prod(SPEC.spacing)) / 1000
    assert stats["voxel_volume_ml"] == pytest.approx(voxel_ml)
    assert stats["spacing_mm"] == pytest.approx(list(geometry.array_spacing))
    for name, value in [("necrosis", 1), ("edema", 2), ("enhancing", 3)]:
        assert stats["labels"][name]["voxels"] == int((label == value).sum()) > 0
        assert stats["labels"][name]["volume_ml"] == pytest.approx((label == value).sum() * voxel_ml)
    with (out / "statistics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["case_id"], r["label"]) for r in rows] == [
        (c, n) for c in ("case_a", "case_b") for n in ("necrosis", "edema", "enhancing")]
    assert float(rows[1]["volume_ml"]) == pytest.approx(stats["labels"]["edema"]["volume_ml"], rel=1e-5)
