"""A case's output files: --continue keeps a finished case and redoes a truncated, missing, moved or
another patient's output (segkit.batch.outputs.finished_problem)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from batch_data import (
    SPEC_2CH,
    output_request,
    phantom,
    run_batch,
    threshold_predict,
    write_dicom_case,
    write_file_case,
)

from segkit.batch.cases import discover_cases
from segkit.batch.pipeline import RunOptions as BatchOptions
from segkit.batch.pipeline import exit_code
from segkit.io.image import Geometry, read_image


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
