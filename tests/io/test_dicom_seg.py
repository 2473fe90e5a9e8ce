"""DICOM-SEG out: frames aligned with the source series, label values renumbered, region segments, coded segments, seg_problem."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from batch_data import LABELS, phantom
from dicom_data import frame_source_index

from segkit.io.dicom import read_dicom_study
from segkit.io.dicom_seg import segment_names, segments_from_labels, write_dicom_seg
from segkit.io.dicom_write import write_dicom_series


def test_dicom_seg_frames_align_with_the_source_series(tmp_path):
    images, label, geometry = phantom(seed=5, channels=1)
    write_dicom_series(images[0], geometry, tmp_path / "study", "T1")
    study = read_dicom_study(tmp_path / "study", 1)
    write_dicom_seg(label, study.reference, segments_from_labels(LABELS), tmp_path / "seg.dcm")
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    sources = [pydicom.dcmread(p) for p in study.reference.files]
    sop_to_index = {ds.SOPInstanceUID: k for k, ds in enumerate(sources)}
    assert seg.Modality == "SEG" and seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["necrosis", "edema", "enhancing"]
    referenced = {r.ReferencedSOPInstanceUID for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == set(sop_to_index)
    shared = seg.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose(shared.PlaneOrientationSequence[0].ImageOrientationPatient,
                               sources[0].ImageOrientationPatient, atol=1e-6)
    np.testing.assert_allclose(shared.PixelMeasuresSequence[0].PixelSpacing, sources[0].PixelSpacing)
    frames = seg.pixel_array
    assert frames.shape == (3 * label.shape[0],) + label.shape[1:]
    seen = set()
    for frame_index, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        k = frame_source_index(frame, sop_to_index)
        segment = frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        np.testing.assert_allclose(frame.PlanePositionSequence[0].ImagePositionPatient,
                                   sources[k].ImagePositionPatient, atol=1e-4)
        np.testing.assert_array_equal(frames[frame_index] > 0, label[k] == segment)
        seen.add((k, segment))
    assert len(seen) == 3 * label.shape[0]


def test_dicom_seg_renumbers_gapped_label_values(tmp_path):
    images, label, geometry = phantom(seed=6, channels=1)
    write_dicom_series(images[0], geometry, tmp_path / "study", "T1")
    study = read_dicom_study(tmp_path / "study", 1)
    brats2021 = np.where(label == 3, 4, label)
    segments = segments_from_labels({"background": 0, "necrosis": 1, "edema": 2, "enhancing": 4})
    write_dicom_seg(brats2021, study.reference, segments, tmp_path / "seg.dcm")
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert [(s.SegmentNumber, s.SegmentLabel) for s in seg.SegmentSequence] == [
        (1, "necrosis"), (2, "edema"), (3, "enhancing")]
    assert int((seg.pixel_array > 0).sum()) == int((brats2021 > 0).sum())


def test_region_segments_overlap_like_the_regions(tmp_path):
    images, label, geometry = phantom(seed=6, channels=1)
    write_dicom_series(images[0], geometry, tmp_path / "study", "T1")
    study = read_dicom_study(tmp_path / "study", 1)
    regions = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [1, 3], "enhancing tumor": [3]}
    write_dicom_seg(label, study.reference, segments_from_labels(regions), tmp_path / "seg.dcm")
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["whole tumor", "tumor core", "enhancing tumor"]
    sop_to_index = {pydicom.dcmread(p).SOPInstanceUID: k for k, p in enumerate(study.reference.files)}
    for index, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        k = frame_source_index(frame, sop_to_index)
        values = list(regions.values())[frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber]
        np.testing.assert_array_equal(seg.pixel_array[index] > 0, np.isin(label[k], values))


def test_segment_names_for_region_based_plans():
    labels = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}
    assert segment_names(labels, [1, 2, 3]) == {1: "whole tumor", 2: "tumor core", 3: "enhancing tumor"}


def test_seg_problem_refuses_a_truncated_seg_and_one_of_another_series(tmp_path):
    from segkit.io.dicom_seg import seg_matches_source, seg_problem

    images, label, geometry = phantom(seed=5, channels=1)
    write_dicom_series(images[0], geometry, tmp_path / "study", "T1")
    write_dicom_series(images[0], geometry, tmp_path / "other", "T1")       # same grid and pixels, other UIDs
    source = read_dicom_study(tmp_path / "study", 1).reference
    other = read_dicom_study(tmp_path / "other", 1).reference
    path = write_dicom_seg(label, source, segments_from_labels(LABELS), tmp_path / "seg.dcm")
    assert seg_problem(path, source) is None and seg_matches_source(path, source)
    assert "another study" in seg_problem(path, other)
    complete = path.read_bytes()
    path.write_bytes(complete[:-300])                # pydicom reads this without complaint
    assert "truncated" in seg_problem(path, source) and not seg_matches_source(path, source)
    path.write_bytes(complete[:2000])
    assert seg_problem(path, source) is not None
    assert "not a DICOM Segmentation" in seg_problem(source.files[0], source)


def test_seg_segments_carry_snomed_category_type_laterality_and_region(tmp_path):
    from segkit.io.segment_coding import segment_coding_for

    images, label, geometry = phantom(seed=5, channels=1)
    write_dicom_series(images[0], geometry, tmp_path / "study", "T1")
    study = read_dicom_study(tmp_path / "study", 1)
    labels = {"background": 0, "Left-Hippocampus": 1, "liver tumour": 2, "blob": 3}
    coding = segment_coding_for(labels, {"blob": {"type": "Edema", "region": "Brain", "laterality": "right"}})
    write_dicom_seg(label, study.reference, segments_from_labels(labels), tmp_path / "seg.dcm", coding=coding)
    segments = {s.SegmentLabel: s for s in pydicom.dcmread(tmp_path / "seg.dcm").SegmentSequence}

    def code(item):
        return item.CodingSchemeDesignator, item.CodeValue

    hippocampus = segments["Left-Hippocampus"]
    assert code(hippocampus.SegmentedPropertyCategoryCodeSequence[0]) == ("SCT", "91723000")   # anatomical structure
    assert code(hippocampus.SegmentedPropertyTypeCodeSequence[0]) == ("SCT", "5366008")        # hippocampus
    assert code(hippocampus.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0]) == (
        "SCT", "7771000")                                                                       # left
    tumour = segments["liver tumour"]
    assert code(tumour.SegmentedPropertyCategoryCodeSequence[0]) == ("SCT", "49755003")        # abnormal structure
    assert code(tumour.SegmentedPropertyTypeCodeSequence[0]) == ("SCT", "108369006")           # neoplasm
    assert code(tumour.AnatomicRegionSequence[0]) == ("SCT", "10200004")                       # in the liver
    blob = segments["blob"]
    assert code(blob.SegmentedPropertyTypeCodeSequence[0]) == ("SCT", "79654002")              # edema, as configured
    assert code(blob.AnatomicRegionSequence[0]) == ("SCT", "12738006")
    assert code(blob.AnatomicRegionSequence[0].AnatomicRegionModifierSequence[0]) == ("SCT", "24028007")  # right
    write_dicom_seg(label, study.reference, segments_from_labels(labels), tmp_path / "named.dcm")   # no plans coding
    unknown = {s.SegmentLabel: s for s in pydicom.dcmread(tmp_path / "named.dcm").SegmentSequence}["blob"]
    assert code(unknown.SegmentedPropertyTypeCodeSequence[0]) == ("SCT", "85756007")           # Tissue fallback


@pytest.mark.skipif(__import__("shutil").which("dciodvfy") is None,
                    reason="dicom3tools' dciodvfy is not installed (apt-get install dicom3tools; .ci/run installs it)")
@pytest.mark.parametrize("multiframe", [False, True], ids=["single_frame_source", "multiframe_source"])
def test_coded_segs_validate_with_dciodvfy(tmp_path, multiframe):
    from dicom_data import write_multiframe
    from pacs_helpers import dciodvfy_errors

    from segkit.io.segment_coding import segment_coding_for

    images, label, geometry = phantom(seed=5, channels=1)
    paths = write_dicom_series(images[0], geometry, tmp_path / "single", "T1")
    if multiframe:
        write_multiframe(tmp_path / "multi", paths)
    study = read_dicom_study(tmp_path / ("multi" if multiframe else "single"), 1)
    labels = {"background": 0, "Left-Hippocampus": 1, "liver tumour": 2, "blob": 3}
    coding = segment_coding_for(labels, {"blob": {"type": "Edema", "region": "Brain", "laterality": "right"}})
    path = write_dicom_seg(label, study.reference, segments_from_labels(labels), tmp_path / "seg.dcm",
                           frame_order=study.frame_order, coding=coding)
    assert dciodvfy_errors(path) == []
