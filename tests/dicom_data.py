"""Real-shaped DICOM objects a PACS export holds besides image slices (SR, KO, presentation state),
lossy 12-bit JPEG series and multi-frame images, built with pydicom / highdicom for the reader tests."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from segkit.io.dicom_write import new_uid
from segkit.io.image import Geometry

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def _sources(paths: list[Path]) -> list[pydicom.Dataset]:
    """The written slices as datasets highdicom accepts as evidence (MR Image Storage)."""
    datasets = [pydicom.dcmread(p) for p in paths]
    for dataset in datasets:
        dataset.SOPClassUID = MR_IMAGE_STORAGE
        dataset.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    return datasets


def as_mr_image_storage(paths: list[Path]) -> list[pydicom.Dataset]:
    """Rewrite written slices as MR Image Storage (SimpleITK writes Secondary Capture); return them."""
    datasets = _sources(paths)
    for path, dataset in zip(paths, datasets):
        dataset.save_as(path)
    return datasets


def write_non_image_objects(folder: Path, slices: list[Path]) -> dict[str, Path]:
    """Write an SR (Comprehensive 3D), a KO and a grayscale presentation state referencing the slices."""
    import highdicom as hd

    sources = _sources(slices)
    folder.mkdir(parents=True, exist_ok=True)
    common = {"manufacturer": "PACS vendor", "series_number": 90, "instance_number": 1}
    observer = hd.sr.ObserverContext(observer_type=codes.DCM.Person,
                                     observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                                         name="Reader^Anne"))
    region = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.CIRCLE,
                               graphic_data=np.array([[10.0, 10.0], [14.0, 10.0]]),
                               source_image=hd.sr.SourceImageForRegion.from_source_image(sources[3]))
    roi = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=new_uid(), identifier="lesion 1"), referenced_region=region,
        measurements=[hd.sr.Measurement(name=codes.SCT.Diameter, value=8.0, unit=codes.UCUM.Millimeter)])
    report = hd.sr.MeasurementReport(observation_context=hd.sr.ObservationContext(observer_person_context=observer),
                                     procedure_reported=codes.LN.CTUnspecifiedBodyRegion, imaging_measurements=[roi],
                                     title=codes.DCM.ImagingMeasurementReport)
    sr = hd.sr.Comprehensive3DSR(evidence=sources, content=report, series_instance_uid=new_uid(),
                                 sop_instance_uid=new_uid(), **common)
    ko = hd.ko.KeyObjectSelectionDocument(
        evidence=sources, content=hd.ko.KeyObjectSelection(document_title=codes.DCM.Manifest,
                                                           referenced_objects=sources[:2]),
        series_instance_uid=new_uid(), series_number=91, sop_instance_uid=new_uid(), instance_number=1,
        manufacturer="PACS vendor")
    pr = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=sources, series_instance_uid=new_uid(), series_number=92, sop_instance_uid=new_uid(),
        instance_number=1, manufacturer="PACS vendor", manufacturer_model_name="viewer", software_versions="1",
        device_serial_number="1", content_label="KEY_VIEW")
    written = {"sr": folder / "report_sr.dcm", "ko": folder / "key_images_ko.dcm", "pr": folder / "window_pr.dcm"}
    for key, dataset in (("sr", sr), ("ko", ko), ("pr", pr)):
        dataset.save_as(written[key])
    return written


def write_lossy_jpeg_series(folder: Path, slices: int = 6) -> list[Path]:
    """A 12-bit lossy JPEG (JPEG Extended, 1.2.840.10008.1.2.4.51) MR series: pydicom's JPEG-lossy.dcm test
    frame (as a real scanner compressed it) on each slice, with axial geometry 3 mm apart."""
    from pydicom.data import get_testdata_file

    template = pydicom.dcmread(get_testdata_file("JPEG-lossy.dcm"))
    folder.mkdir(parents=True, exist_ok=True)
    series, study, frame = new_uid(), new_uid(), new_uid()
    paths = []
    for index in range(slices):
        dataset = copy.deepcopy(template)
        dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = new_uid()
        dataset.Modality = "MR"
        dataset.SeriesInstanceUID, dataset.StudyInstanceUID, dataset.FrameOfReferenceUID = series, study, frame
        dataset.ImagePositionPatient = [0.0, 0.0, 3.0 * index]
        dataset.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        dataset.InstanceNumber = index + 1
        paths.append(folder / f"IM{index:04d}.dcm")
        dataset.save_as(paths[-1])
    return paths


def write_multiframe(folder: Path, slices: list[Path], enhanced: bool = False) -> Path:
    """Convert single-frame slices into one legacy-converted enhanced MR file (highdicom); with enhanced the SOP
    class becomes Enhanced MR Image Storage (same functional groups)."""
    import highdicom as hd

    image = hd.legacy.LegacyConvertedEnhancedMRImage(_sources(slices), series_instance_uid=new_uid(), series_number=7,
                                                     sop_instance_uid=new_uid(), instance_number=1)
    if enhanced:
        image.SOPClassUID = image.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "multiframe.dcm"
    image.save_as(path)
    return path


def slice_index_by_position(geometry: Geometry, position) -> int:
    """The volume slice (z index) a patient-space position lies on."""
    direction = np.reshape(geometry.direction, (3, 3))
    offset = np.asarray(position, dtype=float) - np.asarray(geometry.origin)
    return int(round(float(offset @ direction[:, 2]) / geometry.spacing[2]))


def frame_source_index(frame, sop_to_index: dict[str, int]) -> int:
    """Index of the source slice a SEG frame references."""
    source = frame.DerivationImageSequence[0].SourceImageSequence[0]
    return sop_to_index[source.ReferencedSOPInstanceUID]
