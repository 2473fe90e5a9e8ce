"""Write a (z, y, x) volume as a DICOM series, one file per slice, with full geometry tags.

Used to build DICOM test studies and demo data from NIfTI phantoms. Each slice carries
ImagePositionPatient (the slice's first voxel in physical space), ImageOrientationPatient
(the first two direction columns), PixelSpacing, SliceThickness and shared Study/Series/
FrameOfReference UIDs, so that reading the folder back with SimpleITK's series reader
reproduces the input geometry.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from segkit.io.image import Geometry, to_sitk

# 2.25 is the UID root SimpleITK's own examples use for generated UIDs (derived from a UUID).
_UID_PREFIX = "2.25."


def new_uid() -> str:
    """A fresh DICOM UID derived from a random UUID (the 2.25 root needs no registration)."""
    import uuid

    return _UID_PREFIX + str(uuid.uuid4().int)


def _series_tags(geometry: Geometry, description: str, series_uid: str, study_uid: str,
                 frame_uid: str, modality: str, patient_id: str, series_number: int) -> list[tuple[str, str]]:
    """Tags shared by every slice of the series."""
    d = geometry.direction
    orientation = (d[0], d[3], d[6], d[1], d[4], d[7])
    return [
        ("0008|0008", "DERIVED\\SECONDARY"),
        ("0008|0060", modality),
        ("0008|103e", description),
        ("0010|0010", patient_id + "^"),
        ("0010|0020", patient_id),
        ("0020|000d", study_uid),
        ("0020|000e", series_uid),
        ("0020|0011", str(series_number)),
        ("0020|0052", frame_uid),
        ("0020|0037", "\\".join(f"{v:.10g}" for v in orientation)),
        ("0018|0050", f"{geometry.spacing[2]:.10g}"),
        # stored values are int16 = round(value); slope 1 keeps intensities as written
        ("0028|1052", "0"),
        ("0028|1053", "1"),
    ]


def write_dicom_series(array: np.ndarray, geometry: Geometry, folder: str | Path, description: str = "segkit",
                       *, series_uid: str | None = None, study_uid: str | None = None,
                       frame_of_reference_uid: str | None = None, modality: str = "MR",
                       patient_id: str = "ANON", series_number: int = 1) -> list[Path]:
    """Write a 3D (z, y, x) volume as int16 DICOM slices S<series>_<slice>.dcm into folder; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if array.ndim != 3:
        raise ValueError(f"expected a 3D (z, y, x) array, got shape {array.shape}")
    volume = to_sitk(np.round(array).clip(-32768, 32767).astype(np.int16), geometry)
    tags = _series_tags(geometry, description, series_uid or new_uid(), study_uid or new_uid(),
                        frame_of_reference_uid or new_uid(), modality, patient_id, series_number)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for index in range(array.shape[0]):
        image_slice = volume[:, :, index]
        for tag, value in tags:
            image_slice.SetMetaData(tag, value)
        position = volume.TransformIndexToPhysicalPoint((0, 0, index))
        image_slice.SetMetaData("0020|0032", "\\".join(f"{v:.10g}" for v in position))
        image_slice.SetMetaData("0020|0013", str(index + 1))
        image_slice.SetMetaData("0008|0018", new_uid())
        path = folder / f"S{series_number:03d}_{index:04d}.dcm"
        writer.SetFileName(os.fspath(path))
        writer.Execute(image_slice)
        paths.append(path)
    return paths
