"""Batch runner: broken cases recorded and skipped over, --continue, report.json, statistics, previews, shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from batch_data import (
    SPEC_2CH,
    make_broken_batch,
    output_request,
    phantom,
    run_batch,
    threshold_predict,
    write_dicom_case,
    write_file_case,
)

from segkit.batch import preview as preview_module
from segkit.batch.cases import InputSpec, discover_cases
from segkit.batch.outputs import OutputRequest
from segkit.batch.pipeline import RunOptions as BatchOptions
from segkit.batch.pipeline import exit_code
from segkit.io.dicom_seg import segment_names
from segkit.io.image import Geometry, read_image


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


def test_continue_skips_valid_outputs_and_redoes_invalid_ones(tmp_path):
    folder = tmp_path / "in"
    for index in range(4):
        write_file_case(folder, f"c{index}", seed=index)
    out = tmp_path / "out"
    run_batch(discover_cases(folder), SPEC_2CH, output_request(out), threshold_predict, BatchOptions(), folder)
    reference = {i: read_image(out / f"c{i}.nii.gz").array for i in range(4)}
    mtimes = {i: (out / f"c{i}.nii.gz").stat().st_mtime_ns for i in range(4)}
    (out / "c1.nii.gz").write_bytes((out / "c1.nii.gz").read_bytes()[:100])          # truncated output
    (out / "c2.nii.gz").unlink()                                                     # missing output
    shifted = read_image(out / "c3.nii.gz")                                           # wrong geometry
    from segkit.io.image import write_image
    write_image(shifted.array, Geometry(shifted.geometry.spacing, (0.0, 0.0, 0.0), shifted.geometry.direction,
                                        shifted.geometry.size), out / "c3.nii.gz")
    report = run_batch(discover_cases(folder), SPEC_2CH, output_request(out), threshold_predict,
                       BatchOptions(resume=True), folder)
    statuses = {c["case_id"]: c["status"] for c in report.cases}
    assert statuses == {"c0": "skipped", "c1": "ok", "c2": "ok", "c3": "ok"}
    assert (out / "c0.nii.gz").stat().st_mtime_ns == mtimes[0]
    for i in range(4):
        np.testing.assert_array_equal(read_image(out / f"c{i}.nii.gz").array, reference[i])
    assert exit_code(report) == 0


def test_continue_recomputes_a_case_whose_input_was_replaced_by_another_patient(tmp_path):
    folder = tmp_path / "in"
    for index in range(2):
        write_file_case(folder, f"c{index}", seed=index)
    out = tmp_path / "out"
    run_batch(discover_cases(folder), SPEC_2CH, output_request(out), threshold_predict, BatchOptions(), folder)
    first = read_image(out / "c0.nii.gz").array
    provenance = json.loads((out / "c0_provenance.json").read_text())
    assert provenance["format"] == "segkit-provenance-1" and provenance["dicom"] is None
    assert [item["file"] for item in provenance["inputs"]] == ["c0_0000.nii.gz", "c0_0001.nii.gz"]
    write_file_case(folder, "c0", seed=7)          # another patient, the same grid: geometry alone cannot tell
    report = run_batch(discover_cases(folder), SPEC_2CH, output_request(out), threshold_predict,
                       BatchOptions(resume=True), folder)
    assert {c["case_id"]: c["status"] for c in report.cases} == {"c0": "ok", "c1": "skipped"}
    images, _, _ = phantom(seed=7)
    np.testing.assert_array_equal(read_image(out / "c0.nii.gz").array, threshold_predict(images, None))
    assert not np.array_equal(read_image(out / "c0.nii.gz").array, first)
    assert json.loads((out / "c0_provenance.json").read_text())["input_sha256"] != provenance["input_sha256"]


def test_continue_recomputes_outputs_without_provenance(tmp_path):
    folder = tmp_path / "in"
    write_file_case(folder, "c0", seed=1)
    out = tmp_path / "out"
    run_batch(discover_cases(folder), SPEC_2CH, output_request(out), threshold_predict, BatchOptions(), folder)
    (out / "c0_provenance.json").unlink()           # e.g. outputs of an older segkit: origin unknown
    report = run_batch(discover_cases(folder), SPEC_2CH, output_request(out), threshold_predict,
                       BatchOptions(resume=True), folder)
    assert report.cases[0]["status"] == "ok" and (out / "c0_provenance.json").is_file()


def _dicom_continue_run(folder: Path, out: Path):
    """One --continue run over a DICOM folder with DICOM-SEG output; case id -> status."""
    report = run_batch(discover_cases(folder), SPEC_2CH, output_request(out, dicom_seg=True), threshold_predict,
                       BatchOptions(resume=True), folder)
    return {c["case_id"]: c["status"] for c in report.cases}


def test_continue_recomputes_a_dicom_study_replaced_by_another_patient_and_a_truncated_seg(tmp_path):
    import shutil

    import pydicom

    folder, out = tmp_path / "in", tmp_path / "out"
    for case_id, seed in (("old", 1), ("cut", 2), ("kept", 3)):
        write_dicom_case(folder, case_id, seed=seed)
    assert _dicom_continue_run(folder, out) == {"old": "ok", "cut": "ok", "kept": "ok"}
    old_seg = pydicom.dcmread(out / "old_seg.dcm")
    shutil.rmtree(folder / "old")
    write_dicom_case(folder, "old", seed=1)          # same pixels and grid, another patient's UIDs
    seg = (out / "cut_seg.dcm").read_bytes()
    (out / "cut_seg.dcm").write_bytes(seg[:-200])  # a SEG cut short: its header still reads
    assert _dicom_continue_run(folder, out) == {"old": "ok", "cut": "ok", "kept": "skipped"}
    new_seg = pydicom.dcmread(out / "old_seg.dcm")
    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((folder / "old").glob("S001_*.dcm"))]
    assert new_seg.StudyInstanceUID == sources[0].StudyInstanceUID != old_seg.StudyInstanceUID
    assert new_seg.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    assert {r.ReferencedSOPInstanceUID for r in new_seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence} == {
        s.SOPInstanceUID for s in sources}
    from segkit.batch.cases import case_series
    from segkit.io.dicom_seg import seg_problem

    cut = next(c for c in discover_cases(folder) if c.case_id == "cut")
    assert seg_problem(out / "cut_seg.dcm", case_series(cut, SPEC_2CH)[0]) is None     # written whole again


def test_preview_png_and_missing_matplotlib_warning(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "in"
    write_file_case(folder, "case_a", seed=5)
    out = tmp_path / "out"
    run_batch(discover_cases(folder), SPEC_2CH, output_request(out, preview=True), threshold_predict, BatchOptions(), folder)
    png = out / "case_a_preview.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image
    assert matplotlib.image.imread(png).shape[1] > 400
    monkeypatch.setattr("segkit.batch.pipeline.preview_available", lambda: False)
    out2 = tmp_path / "out2"
    run_batch(discover_cases(folder), SPEC_2CH, output_request(out2, preview=True), threshold_predict, BatchOptions(), folder)
    data = json.loads((out2 / "report.json").read_text())
    assert data["warnings"] == [preview_module.MISSING_MESSAGE]
    assert preview_module.MISSING_MESSAGE in capsys.readouterr().err
    assert data["cases"][0]["status"] == "ok" and "preview" not in data["cases"][0]["outputs"]
    assert not (out2 / "case_a_preview.png").exists()


def test_centre_slices_follow_the_structure():
    label = np.zeros((10, 12, 14), dtype=np.uint8)
    label[2:5, 8:11, 1:4] = 1
    assert preview_module.centre_slices(label) == (3, 9, 2)
    assert preview_module.centre_slices(np.zeros((4, 6, 8))) == (2, 3, 4)


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
