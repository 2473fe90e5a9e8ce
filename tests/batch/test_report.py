"""report.json: a sharded run's part reports merge into one; missing parts are refused."""

from __future__ import annotations

import csv
import json

import pytest
from batch_data import (
    SPEC_2CH,
    output_request,
    run_batch,
    threshold_predict,
    write_file_case,
)

from segkit.batch.cases import discover_cases
from segkit.batch.pipeline import RunOptions as BatchOptions
from segkit.batch.report import merge_reports
from segkit.batch.statistics import merge_statistics_csv
from segkit.errors import UserError


def test_sharded_run_writes_part_reports_that_merge(tmp_path):
    folder = tmp_path / "in"
    for index in range(5):
        write_file_case(folder, f"c{index}", seed=index)
    out = tmp_path / "out"
    cases = discover_cases(folder)
    for part in range(2):
        run_batch(cases, SPEC_2CH, output_request(out, statistics=True), threshold_predict,
                  BatchOptions(num_parts=2, part_id=part), folder)
    part0 = json.loads((out / "report_part0.json").read_text())
    assert [c["case_id"] for c in part0["cases"]] == ["c0", "c2", "c4"]
    assert not (out / "report.json").exists()
    merged = json.loads(merge_reports(out).read_text())
    assert [c["case_id"] for c in merged["cases"]] == [f"c{i}" for i in range(5)]
    assert merged["totals"]["ok"] == 5
    merge_statistics_csv(out)
    with (out / "statistics.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 15


def test_merge_refuses_missing_parts(tmp_path):
    folder = tmp_path / "in"
    write_file_case(folder, "c0", seed=0)
    write_file_case(folder, "c1", seed=1)
    out = tmp_path / "out"
    run_batch(discover_cases(folder), SPEC_2CH, output_request(out), threshold_predict,
              BatchOptions(num_parts=2, part_id=1), folder)
    with pytest.raises(UserError, match=r"missing parts \[0\]"):
        merge_reports(out)
