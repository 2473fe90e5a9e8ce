"""Enhanced / legacy-converted multi-frame images read through their functional groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from batch_data import LABELS, phantom

from segkit.errors import UserError
from segkit.io.dicom import read_dicom_study
from segkit.io.dicom_seg import segments_from_labels, write_dicom_seg
from segkit.io.dicom_write import write_dicom_series


@pytest.mark.parametrize("enhanced", [False, True], ids=["legacy_converted", "enhanced_mr"])
def test_multiframe_mr_is_read_like_its_series_and_its_seg_aligns(tmp_path, enhanced):
    from dicom_data import slice_index_by_position, write_multiframe

    images, label, geometry = phantom(seed=5, channels=1)
    paths = write_dicom_series(images[0], geometry, tmp_path / "single", "T1")
    write_multiframe(tmp_path / "multi", paths, enhanced=enhanced)
    study = read_dicom_study(tmp_path / "multi", 1)
    assert study.reference.multiframe and geometry.mismatch(study.geometry) is None
    np.testing.assert_array_equal(study.images[0], images[0])
    assert any("multi-frame" in note for note in study.notes)
    assert sorted(study.frame_order) == list(range(len(paths))) and study.frame_order != tuple(range(len(paths)))
    path = write_dicom_seg(label, study.reference, segments_from_labels(LABELS), tmp_path / "seg.dcm",
                           frame_order=study.frame_order)
    seg = pydicom.dcmread(path)
    assert seg.NumberOfFrames == 3 * label.shape[0]
    for index, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        k = slice_index_by_position(study.geometry, frame.PlanePositionSequence[0].ImagePositionPatient)
        segment = frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        np.testing.assert_array_equal(seg.pixel_array[index] > 0, label[k] == segment)


def test_multiframe_with_several_frames_per_position_is_refused_saying_so(tmp_path):
    from dicom_data import write_multiframe

    images, _, geometry = phantom(seed=5, channels=1)
    paths = write_dicom_series(images[0], geometry, tmp_path / "single", "T1")
    for path in paths[8:]:                        # a second echo: the first 8 positions again
        other = pydicom.dcmread(path)
        other.ImagePositionPatient = pydicom.dcmread(paths[paths.index(path) - 8]).ImagePositionPatient
        other.save_as(path)
    mf = write_multiframe(tmp_path / "multi", paths)
    with pytest.raises(UserError, match="more than one frame per position are not supported") as caught:
        read_dicom_study(tmp_path / "multi", 1)
    assert Path(caught.value.path) == mf
