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


def test_label_counts_in_chunks_equal_one_bincount(monkeypatch):
    """Chunked counting (bounded int64 temporaries) gives np.bincount of the whole map, negatives counted as 0."""
    from segkit.batch import statistics

    rng = np.random.default_rng(5)
    monkeypatch.setattr(statistics, "COUNT_CHUNK_VOXELS", 37)
    for dtype in (np.uint8, np.int16, np.int64):
        label = rng.integers(-1 if dtype != np.uint8 else 0, 9, (6, 7, 11)).astype(dtype)
        label[0, 0, :3] = 0                                           # the later chunks hold the larger values
        expected = np.bincount(label.ravel().astype(np.int64).clip(min=0))
        np.testing.assert_array_equal(statistics.label_counts(label), expected)
        np.testing.assert_array_equal(statistics.label_counts(label[:, ::-1].transpose(2, 0, 1)),
                                      expected)                       # any view: counts do not depend on order
    assert statistics.label_counts(np.zeros((0, 3, 3), dtype=np.uint8)).tolist() == []
