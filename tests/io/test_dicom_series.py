"""segkit.io.dicom_series: which series feeds which channel (choice, channel maps, sub-folders) and what a PACS export
holds besides the images (non-image objects, exact copies, damaged files), read through `read_dicom_study`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from batch_data import phantom, write_dicom_case

from segkit.errors import UserError
from segkit.io.dicom import read_dicom_study
from segkit.io.dicom_series import list_series, parse_channel_map
from segkit.io.dicom_write import write_dicom_series


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
