"""Writing a volume as a DICOM series (segkit.io.dicom_write): slices that read back onto the same grid and values,
one study / series / frame of reference, fresh UIDs per instance."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from segkit.io.dicom_write import new_uid, write_dicom_series
from segkit.io.image import Geometry

COS, SIN = float(np.cos(np.radians(20))), float(np.sin(np.radians(20)))
GEOMETRY = Geometry((0.7, 0.9, 2.5), (-30.0, 12.0, 40.5), (COS, 0.0, SIN, 0.0, 1.0, 0.0, -SIN, 0.0, COS), (6, 5, 4))


def _volume() -> np.ndarray:
    """(z, y, x) = (4, 5, 6) values covering negative, fractional and out-of-int16 numbers."""
    volume = np.linspace(-100.4, 900.6, 120, dtype=np.float32).reshape(4, 5, 6)
    volume[0, 0, 0], volume[0, 0, 1] = 40000.0, -40000.0
    return volume


def test_the_series_reads_back_on_the_same_oblique_grid_with_rounded_int16_values(tmp_path):
    paths = write_dicom_series(_volume(), GEOMETRY, tmp_path / "s", "T1 axial", series_number=3)
    assert [p.name for p in paths] == [f"S003_{i:04d}.dcm" for i in range(4)]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path / "s")))
    image = reader.Execute()
    assert Geometry.of_sitk(image).mismatch(GEOMETRY) is None
    expected = np.round(_volume()).clip(-32768, 32767)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), expected)


def test_every_slice_shares_the_study_series_and_frame_and_has_its_own_instance(tmp_path):
    study, frame = new_uid(), new_uid()
    paths = write_dicom_series(_volume(), GEOMETRY, tmp_path, "FLAIR", study_uid=study, frame_of_reference_uid=frame,
                               modality="CT", patient_id="P7", series_number=2)
    slices = [pydicom.dcmread(p) for p in paths]
    assert {(s.StudyInstanceUID, s.FrameOfReferenceUID) for s in slices} == {(study, frame)}
    assert len({s.SeriesInstanceUID for s in slices}) == 1 and len({s.SOPInstanceUID for s in slices}) == 4
    assert [int(s.InstanceNumber) for s in slices] == [1, 2, 3, 4]
    first = slices[0]
    assert (first.Modality, first.SeriesDescription, first.PatientID, int(first.SeriesNumber)) == ("CT", "FLAIR", "P7", 2)
    assert float(first.RescaleSlope) == 1.0 and float(first.RescaleIntercept) == 0.0
    # positions step along the slice normal by the slice spacing
    positions = np.array([[float(v) for v in s.ImagePositionPatient] for s in slices])
    np.testing.assert_allclose(np.diff(positions, axis=0), [[2.5 * SIN, 0.0, 2.5 * COS]] * 3, atol=1e-6)


def test_uids_are_fresh_valid_and_a_non_3d_array_is_refused(tmp_path):
    uids = {new_uid() for _ in range(50)}
    assert len(uids) == 50
    assert all(uid.startswith("2.25.") and len(uid) <= 64 and uid.replace(".", "").isdigit() for uid in uids)
    with pytest.raises(ValueError, match=r"expected a 3D \(z, y, x\) array"):
        write_dicom_series(np.zeros((5, 6), np.float32), GEOMETRY, tmp_path)
    assert not any(tmp_path.iterdir())
