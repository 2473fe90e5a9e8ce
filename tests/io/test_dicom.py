"""DICOM input (series choice, channel mapping, geometry) and DICOM-SEG output aligned with the source series."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from batch_data import phantom, write_dicom_case

from segkit.errors import UserError
from segkit.io.dicom import list_series, parse_channel_map, read_dicom_study
from segkit.io.dicom_write import write_dicom_series


def test_series_geometry_and_values_match_the_source_volume(tmp_path):
    images, _, geometry = phantom(seed=7, channels=1)
    write_dicom_series(images[0], geometry, tmp_path / "study", "T1 axial")
    study = read_dicom_study(tmp_path / "study", num_channels=1)
    assert geometry.mismatch(study.geometry) is None
    assert not np.allclose(np.reshape(geometry.direction, (3, 3)), np.eye(3))  # oblique on purpose
    np.testing.assert_array_equal(study.images[0], images[0])


def test_several_series_need_a_choice_listing_uids_and_descriptions(tmp_path):
    write_dicom_case(tmp_path, "study", seed=1, channels=2)
    series = list_series(tmp_path / "study")
    assert sorted(s.description for s in series) == ["FLAIR axial", "T1 axial"]
    with pytest.raises(UserError) as error:
        read_dicom_study(tmp_path / "study", num_channels=1)
    message = str(error.value)
    assert "--series-uid" in message and "study" in message
    assert all(s.uid in message and s.description in message for s in series)
    flair = next(s for s in series if s.description.startswith("FLAIR"))
    chosen = read_dicom_study(tmp_path / "study", num_channels=1, series_uid=flair.uid)
    assert chosen.reference.uid == flair.uid
    with pytest.raises(UserError, match="no series with UID 1.2.3"):
        read_dicom_study(tmp_path / "study", num_channels=1, series_uid="1.2.3")


def test_channel_map_matches_series_descriptions_in_channel_order(tmp_path):
    write_dicom_case(tmp_path, "study", seed=2, channels=2)
    images, _, geometry = phantom(seed=2, channels=2)
    study = read_dicom_study(tmp_path / "study", 2, parse_channel_map("0=flair*, 1=T1*"))
    assert [s.description for s in study.series] == ["FLAIR axial", "T1 axial"]
    np.testing.assert_array_equal(study.images, images[::-1])
    assert geometry.mismatch(study.geometry) is None
    with pytest.raises(UserError, match="channel 1: no series matches 'T2\\*'"):
        read_dicom_study(tmp_path / "study", 2, parse_channel_map("0=FLAIR*,1=T2*"))
    with pytest.raises(UserError, match="2 series match"):
        read_dicom_study(tmp_path / "study", 2, parse_channel_map("0=*axial,1=T1*"))


def test_channel_subfolders_by_index_or_channel_name(tmp_path):
    write_dicom_case(tmp_path, "by_index", seed=3, channels=2, subfolders=True)
    images, _, _ = phantom(seed=3, channels=2)
    study = read_dicom_study(tmp_path / "by_index", 2)
    np.testing.assert_array_equal(study.images, images)
    named = tmp_path / "by_name"
    (tmp_path / "by_index" / "0000").rename(named / "t1" if named.mkdir() is None else None)
    (tmp_path / "by_index" / "0001").rename(named / "Flair")
    study = read_dicom_study(named, 2, channel_names=["T1", "FLAIR"])
    np.testing.assert_array_equal(study.images, images)
    with pytest.raises(UserError, match="--channel-map"):
        read_dicom_study(named, 2, channel_names=["T2", "ADC"])


@pytest.mark.parametrize("text", ["0=T1*,2=FLAIR*", "T1", "0=", "x=T1"])
def test_bad_channel_maps_are_user_errors(text):
    with pytest.raises(UserError):
        parse_channel_map(text)


def test_empty_and_non_dicom_folders_name_the_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty.*empty folder"):
        read_dicom_study(tmp_path / "empty", 1)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("not dicom")
    with pytest.raises(UserError, match="junk: no readable DICOM series"):
        read_dicom_study(tmp_path / "junk", 1)


# GDCM drops a slice whose header (600 bytes kept) or pixel data (last 200 bytes cut) is damaged;
# segkit names the file instead of reading one slice fewer (at the end) or reporting a gap (middle).
@pytest.mark.parametrize("keep_bytes", [600, -200])
@pytest.mark.parametrize("where", [5, -1, 0])
def test_truncated_slice_is_refused_naming_the_file(tmp_path, keep_bytes, where):
    images, _, geometry = phantom(seed=4, channels=1)
    paths = write_dicom_series(images[0], geometry, tmp_path / "study", "T1")
    paths[where].write_bytes(paths[where].read_bytes()[:keep_bytes])
    if where == 0:   # a scanner export without suffix is checked too
        paths[where] = paths[where].rename(paths[where].with_suffix(""))
    with pytest.raises(UserError, match="unreadable DICOM file") as caught:
        read_dicom_study(tmp_path / "study", 1)
    assert Path(caught.value.path) == paths[where] and paths[where].name in str(caught.value)


def test_non_image_files_next_to_a_series_are_ignored(tmp_path):
    images, _, geometry = phantom(seed=4, channels=1)
    write_dicom_series(images[0], geometry, tmp_path / "study", "T1")
    (tmp_path / "study" / "notes.txt").write_text("reading notes")
    (tmp_path / "study" / "README").write_text("exported by the PACS")
    (tmp_path / "study" / "DICOMDIR").write_bytes(b"\0" * 200)
    assert read_dicom_study(tmp_path / "study", 1).images.shape[1] == images.shape[1]


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


# --- what a PACS feed contains (issue 28, item 7)

def test_sr_ko_and_presentation_state_beside_the_images_are_ignored_with_a_note(tmp_path):
    from dicom_data import write_non_image_objects

    images, _, geometry = phantom(seed=4, channels=1)
    paths = write_dicom_series(images[0], geometry, tmp_path / "study", "T1")
    objects = write_non_image_objects(tmp_path / "study", paths)
    study = read_dicom_study(tmp_path / "study", 1)
    np.testing.assert_array_equal(study.images[0], images[0])
    assert len(study.notes) == 1 and "ignored 3 non-image DICOM object(s)" in study.notes[0]
    for name, sop_class in ((objects["sr"].name, "Comprehensive 3D SR"), (objects["ko"].name, "Key Object Selection"),
                            (objects["pr"].name, "Grayscale Softcopy Presentation State")):
        assert f"{name} ({sop_class}" in study.notes[0]


def test_a_folder_of_only_non_image_objects_says_so(tmp_path):
    from dicom_data import write_non_image_objects

    images, _, geometry = phantom(seed=4, channels=1)
    paths = write_dicom_series(images[0], geometry, tmp_path / "images", "T1")
    write_non_image_objects(tmp_path / "reports", paths)
    with pytest.raises(UserError, match="no DICOM image series found, only non-image objects: ignored 3"):
        read_dicom_study(tmp_path / "reports", 1)


def test_an_exact_duplicate_file_is_dropped_with_a_note(tmp_path):
    import shutil

    images, _, geometry = phantom(seed=4, channels=1)
    paths = write_dicom_series(images[0], geometry, tmp_path / "study", "T1")
    shutil.copy(paths[5], tmp_path / "study" / "copy_of_5.dcm")       # the PACS sent slice 5 twice
    study = read_dicom_study(tmp_path / "study", 1)
    np.testing.assert_array_equal(study.images[0], images[0])
    assert len(study.reference.files) == len(paths)
    assert any("dropped 1 exact duplicate file(s)" in note and "copy_of_5.dcm" in note and paths[5].name in note
               for note in study.notes)


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
