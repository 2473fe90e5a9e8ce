"""The per-case pipeline: order kept, read-ahead / write-behind threads, failures isolated or stopping the run;
broken cases recorded with their reason and the rest finished, warnings and notes in report.json."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import SimpleITK as sitk
from batch_data import (
    SPEC_2CH,
    make_broken_batch,
    output_request,
    run_batch,
    threshold_predict,
    write_dicom_case,
    write_file_case,
)

from segkit.batch.cases import InputSpec, discover_cases
from segkit.batch.outputs import OutputRequest
from segkit.batch.pipeline import RunOptions as BatchOptions
from segkit.batch.pipeline import exit_code, run_pipelined
from segkit.errors import UserError
from segkit.io.dicom_seg import segment_names
from segkit.io.image import Geometry, read_image


def _steps(seen: dict, fail_load=(), fail_compute=(), fail_write=()):
    """load / compute / write recording their threads, raising for the given items."""
    def load(item):
        seen.setdefault("load", set()).add(threading.get_ident())
        if item in fail_load:
            raise UserError("unreadable", f"case{item}")
        return item * 10

    def compute(item, loaded):
        seen.setdefault("compute", set()).add(threading.get_ident())
        if item in fail_compute:
            raise RuntimeError("network exploded")
        return loaded + 1

    def write(item, computed):
        seen.setdefault("write", set()).add(threading.get_ident())
        if item in fail_write:
            raise OSError("disk full")
        return (item, computed)

    return load, compute, write


def test_order_threads_and_streaming_from_a_generator():
    seen: dict = {}
    results = list(run_pipelined((n for n in [3, 1, 2, 5]), *_steps(seen)))
    assert [item for item, _ in results] == [3, 1, 2, 5]
    assert [outcome.value for _, outcome in results] == [(3, 31), (1, 11), (2, 21), (5, 51)]
    assert all(outcome.seconds >= 0 and not outcome.failed for _, outcome in results)
    main = threading.get_ident()
    assert seen["compute"] == {main} and main not in seen["load"] | seen["write"]
    assert list(run_pipelined([], *_steps({}))) == []


def test_a_failing_step_fails_only_its_item():
    results = dict(run_pipelined([1, 2, 3, 4, 5], *_steps({}, fail_load=(2,), fail_compute=(3,), fail_write=(4,))))
    assert [n for n, outcome in results.items() if outcome.failed] == [2, 3, 4]
    assert results[1].value == (1, 11) and results[5].value == (5, 51)
    assert isinstance(results[2].error, UserError) and results[2].traceback is None
    assert "network exploded" in results[3].traceback[-1] and isinstance(results[4].error, OSError)


def test_stop_on_error_starts_nothing_after_the_first_failure():
    loaded = []
    load, compute, write = _steps({}, fail_load=(2,))

    def recording_load(item):
        loaded.append(item)
        return load(item)

    results = list(run_pipelined([1, 2, 3, 4, 5], recording_load, compute, write, stop_on_error=True))
    assert [item for item, _ in results] == [1, 2] and results[1][1].failed
    assert max(loaded) <= 3   # at most the one case read ahead before the failure was seen


@pytest.fixture(scope="module")
def broken_batch(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The 10-case batch with 3 broken cases (shared, read-only)."""
    folder = tmp_path_factory.mktemp("batch") / "in"
    return folder, make_broken_batch(folder)


def test_broken_cases_are_recorded_and_the_rest_finish(broken_batch, tmp_path):
    folder, expected = broken_batch
    out = tmp_path / "out"
    report = run_batch(discover_cases(folder), SPEC_2CH, output_request(out, statistics=True), threshold_predict,
                       BatchOptions(run_info={"model": "threshold"}), folder)
    data = json.loads((out / "report.json").read_text())
    statuses = {c["case_id"]: c["status"] for c in data["cases"]}
    assert statuses == expected
    assert data["totals"] == {"cases": 10, "ok": 7, "failed": 3, "skipped": 0, "pending": 0}
    assert data["state"] == "complete" and data["finished"] and data["model"] == "threshold"
    reasons = {c["case_id"]: c["reason"] for c in data["cases"] if c["status"] == "failed"}
    assert "bad_truncated_0001.nii.gz" in reasons["bad_truncated"] and "truncated" in reasons["bad_truncated"]
    assert "wrong channel count" in reasons["bad_channels"]
    assert "bad_empty" in reasons["bad_empty"] and "empty folder" in reasons["bad_empty"]
    assert exit_code(report) == 1
    for case in discover_cases(folder):
        if expected[case.case_id] == "ok":
            label = read_image(out / f"{case.case_id}.nii.gz")
            if case.kind == "files":  # the input's own header: bit-identical geometry
                assert Geometry.of_sitk(sitk.ReadImage(str(case.sources[0]))) == label.geometry
            assert label.array.max() > 0
    assert not list(out.glob("bad_*.nii.gz"))
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temp files left behind"


def test_unexpected_errors_are_recorded_with_a_traceback(tmp_path):
    folder = tmp_path / "in"
    write_file_case(folder, "c0", seed=0)
    write_file_case(folder, "c1", seed=1)

    calls = []

    def flaky(images, geometry):
        calls.append(1)
        if len(calls) == 1:  # cases run in sorted order: c0 fails
            raise RuntimeError("CUDA out of memory (simulated)")
        return threshold_predict(images, geometry)

    report = run_batch(discover_cases(folder), SPEC_2CH, output_request(tmp_path / "out"), flaky, BatchOptions(), folder)
    failed = [c for c in report.cases if c["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["reason"] == "RuntimeError: CUDA out of memory (simulated)"
    assert any("flaky" in line for line in failed[0]["traceback"])
    assert failed[0]["case_id"] == "c0" and [c["status"] for c in report.cases if c is not failed[0]] == ["ok"]


def test_a_lossy_source_is_warned_once_on_stderr_and_in_the_report_and_decoder_noise_stays_off(tmp_path, capfd):
    from dicom_data import write_lossy_jpeg_series

    folder = tmp_path / "in"
    write_lossy_jpeg_series(folder / "lossy", slices=4)
    out = tmp_path / "out"
    capfd.readouterr()
    report = run_batch(discover_cases(folder), InputSpec(num_channels=1), output_request(out), threshold_predict,
                       BatchOptions(), folder)
    err = capfd.readouterr().err
    entry = report.cases[0]
    assert entry["status"] == "ok"
    assert len(entry["warnings"]) == 1 and "lossy-compressed" in entry["warnings"][0]
    assert err.splitlines() == [f"warning: lossy: {entry['warnings'][0]}"]
    assert "JPEG" not in err.replace(entry["warnings"][0], "")


def test_a_label_without_a_snomed_code_is_noted_for_its_dicom_seg(tmp_path):
    import pydicom

    folder, out = tmp_path / "in", tmp_path / "out"
    write_dicom_case(folder, "study", seed=2)
    labels = {"background": 0, "necrosis": 1, "edema": 2, "thing 3": 3}
    report = run_batch(discover_cases(folder), SPEC_2CH, OutputRequest(out, labels, segment_names(labels),
                                                                       dicom_seg=True),
                       threshold_predict, BatchOptions(), folder)
    notes = report.cases[0]["notes"]
    assert len(notes) == 1 and "'thing 3'" in notes[0] and "generic Tissue" in notes[0]
    types = [s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning for s in pydicom.dcmread(out / "study_seg.dcm")
             .SegmentSequence]
    assert types == ["Necrosis", "Edema", "Tissue"]
