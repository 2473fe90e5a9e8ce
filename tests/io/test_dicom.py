"""segkit.io.dicom: reading a chosen series into a volume (geometry, values, slice integrity, lossy sources, the
DICOM node's one-series entry) and a DICOM folder as a batch case; series choice and channel maps are
tests/io/test_dicom_series.py's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from batch_data import phantom

from segkit.errors import UserError
from segkit.io.dicom import read_dicom_study
from segkit.io.dicom_write import write_dicom_series


def test_series_geometry_and_values_match_the_source_volume(tmp_path):
    images, _, geometry = phantom(seed=7, channels=1)
    write_dicom_series(images[0], geometry, tmp_path / "study", "T1 axial")
    study = read_dicom_study(tmp_path / "study", num_channels=1)
    assert geometry.mismatch(study.geometry) is None
    assert not np.allclose(np.reshape(geometry.direction, (3, 3)), np.eye(3))  # oblique on purpose
    np.testing.assert_array_equal(study.images[0], images[0])


def _edit_slice(path, **tags) -> None:
    """Change tags of one written slice file."""
    dataset = pydicom.dcmread(path)
    for name, value in tags.items():
        setattr(dataset, name, value)
    dataset.save_as(path)


def test_a_tilted_slice_fails_naming_the_file(tmp_path):
    images, _, geometry = phantom(seed=4, channels=1)
    paths = write_dicom_series(images[0], geometry, tmp_path / "study", "T1")
    c, s = np.cos(np.radians(10)), np.sin(np.radians(10))
    _edit_slice(paths[4], ImageOrientationPatient=[c, s, 0.0, -s, c, 0.0])
    with pytest.raises(UserError, match="do not share one orientation") as caught:
        read_dicom_study(tmp_path / "study", 1)
    assert Path(caught.value.path) == paths[4] and paths[4].name in str(caught.value)


def test_slice_positions_off_one_line_fail_naming_the_file(tmp_path):
    images, _, geometry = phantom(seed=4, channels=1)
    paths = write_dicom_series(images[0], geometry, tmp_path / "study", "T1")
    position = [float(v) for v in pydicom.dcmread(paths[3]).ImagePositionPatient]
    _edit_slice(paths[3], ImagePositionPatient=[position[0] + 4.0, position[1], position[2]])
    with pytest.raises(UserError, match="not on one line") as caught:
        read_dicom_study(tmp_path / "study", 1)
    assert Path(caught.value.path) == paths[3]


def test_a_sheared_stack_fails(tmp_path):
    images, _, geometry = phantom(seed=4, channels=1)
    paths = write_dicom_series(images[0], geometry, tmp_path / "study", "T1")
    for index, path in enumerate(paths):   # every slice shifted in-plane in proportion: gantry tilt
        position = [float(v) for v in pydicom.dcmread(path).ImagePositionPatient]
        _edit_slice(path, ImagePositionPatient=[position[0], position[1] + 0.5 * index * geometry.spacing[2],
                                                position[2]])
    with pytest.raises(UserError, match="to the slice normal"):
        read_dicom_study(tmp_path / "study", 1)


def test_a_folder_of_dicom_files_is_one_study_case(tmp_path):
    from segkit.batch.cases import discover_cases

    images, _, geometry = phantom(seed=9, channels=1)
    write_dicom_series(images[0], geometry, tmp_path / "patient7", "T1")
    cases = discover_cases(tmp_path / "patient7")
    assert [(c.case_id, c.kind) for c in cases] == [("patient7", "dicom")]


def test_broken_series_fail_their_case_with_the_file_named_and_leave_nothing(tmp_path, capsys):
    from inference_fixtures import make_model_dir

    from segkit.cli import main

    model = make_model_dir(tmp_path / "work", num_channels=1)
    inputs = tmp_path / "in"
    broken = {}
    for case_id in ("good", "tilted", "truncated_end", "truncated_middle", "off_line"):
        images, _, geometry = phantom(seed=4, channels=1)
        broken[case_id] = write_dicom_series(images[0], geometry, inputs / case_id, "T1")
    c, s = np.cos(np.radians(10)), np.sin(np.radians(10))
    _edit_slice(broken["tilted"][6], ImageOrientationPatient=[c, s, 0.0, -s, c, 0.0])
    broken["truncated_end"][-1].write_bytes(broken["truncated_end"][-1].read_bytes()[:600])
    broken["truncated_middle"][4].write_bytes(broken["truncated_middle"][4].read_bytes()[:-200])
    position = [float(v) for v in pydicom.dcmread(broken["off_line"][2]).ImagePositionPatient]
    _edit_slice(broken["off_line"][2], ImagePositionPatient=[position[0], position[1] + 3.0, position[2]])
    out = tmp_path / "out"
    code = main(["predict", "-i", str(inputs), "-o", str(out), "-m", str(model), "--device", "cpu", "--no-tta",
                 "--dicom-seg", "--statistics", "--preview"])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.out + captured.err
    report = {case["case_id"]: case for case in json.loads((out / "report.json").read_text())["cases"]}
    expected = {"tilted": broken["tilted"][6], "truncated_end": broken["truncated_end"][-1],
                "truncated_middle": broken["truncated_middle"][4], "off_line": broken["off_line"][2]}
    assert report["good"]["status"] == "ok"
    for case_id, path in expected.items():
        assert report[case_id]["status"] == "failed" and path.name in report[case_id]["reason"]
        assert "traceback" not in report[case_id] and report[case_id]["outputs"] == {}
        assert f"failed {case_id}" in captured.err
    left = sorted(p.name for p in out.iterdir())
    assert [name for name in left if not name.startswith(("good", "report", "statistics.csv"))] == []
    assert "WARNING: In" not in captured.err    # ITK's own sampling warning is replaced by segkit's message


def test_a_case_whose_writing_fails_leaves_no_outputs(tmp_path, monkeypatch):
    from inference_fixtures import make_model_dir

    import segkit.io.dicom_seg
    from segkit.cli import main

    def refuse(*args, **kwargs):
        raise ValueError("highdicom says no")

    monkeypatch.setattr(segkit.io.dicom_seg, "write_dicom_seg", refuse)
    model = make_model_dir(tmp_path / "work", num_channels=1)
    images, _, geometry = phantom(seed=4, channels=1)
    write_dicom_series(images[0], geometry, tmp_path / "in" / "study", "T1")
    out = tmp_path / "out"
    assert main(["predict", "-i", str(tmp_path / "in"), "-o", str(out), "-m", str(model), "--device", "cpu",
                 "--no-tta", "--dicom-seg", "--statistics", "--save-probabilities"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json"]


def test_two_different_slices_at_one_position_name_both_files(tmp_path):
    images, _, geometry = phantom(seed=4, channels=1)
    paths = write_dicom_series(images[0], geometry, tmp_path / "study", "T1")
    repeat = pydicom.dcmread(paths[5])
    repeat.SOPInstanceUID = repeat.file_meta.MediaStorageSOPInstanceUID = "2.25.12345"   # a repeated acquisition
    repeat.save_as(tmp_path / "study" / "repeat.dcm")
    with pytest.raises(UserError, match="share one position") as caught:
        read_dicom_study(tmp_path / "study", 1)
    assert paths[5].name in str(caught.value) and "repeat.dcm" in str(caught.value)
    assert "gap" not in str(caught.value)


def test_a_missing_slice_names_the_files_either_side_of_the_gap(tmp_path):
    images, _, geometry = phantom(seed=4, channels=1)
    paths = write_dicom_series(images[0], geometry, tmp_path / "study", "T1")
    paths[7].unlink()
    with pytest.raises(UserError, match="missing or unevenly spaced slices") as caught:
        read_dicom_study(tmp_path / "study", 1)
    message = str(caught.value)
    assert f"between {paths[6].name} and {paths[8].name}" in message and "after slice" not in message
    assert Path(caught.value.path) == paths[8]


def test_read_series_folder_is_the_one_series_entry(tmp_path):
    from segkit.io.dicom import read_series_folder

    images, _, geometry = phantom(seed=4, channels=1)
    write_dicom_series(images[0], geometry, tmp_path / "series", "T1")
    study = read_series_folder(tmp_path / "series")
    np.testing.assert_array_equal(study.images[0], images[0])
    assert geometry.mismatch(study.geometry) is None and study.notes == [] and study.warnings == []
