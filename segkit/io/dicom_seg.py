"""Write a label map as a DICOM Segmentation (DICOM-SEG) that references its source series.

Needs the optional ``dicom`` extra (highdicom, pydicom). The label map must be in the
source series' array order (z, y, x): frame k of the label map lies on the source slice
file k as returned by SimpleITK's series reader (sorted along the slice normal), so each
SEG frame carries that slice's ImagePositionPatient and references its SOPInstanceUID.
One segment per non-background plan label, numbered 1..N in the plan's order and named by
it: a class is the voxels with its value, a region (e.g. BraTS 'whole tumor' = [1, 2, 3])
the voxels with any of its values, so region segments overlap as the regions do.

`seg_problem(path, source)` is the one check that a SEG on disk is a complete segmentation
of exactly this source series (``--continue`` and the DICOM node ask it before keeping one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segkit.errors import UserError
from segkit.io.dicom_series import SeriesIdentity, SeriesInfo, series_identity
from segkit.io.segment_coding import LATERALITIES, code_from_name
from segkit.jsonio import atomic_path
from segkit.version import __version__


def segment_names(labels: dict[str, int | list[int]], regions_class_order: list[int] | None = None) -> dict[int, str]:
    """Name of each foreground label value written to a label map (plan 'labels' + regions_class_order)."""
    names = {int(v): name for name, v in labels.items() if isinstance(v, int) and not isinstance(v, bool) and v != 0}
    regions = [name for name, v in labels.items() if isinstance(v, list) and v != [0]]
    for name, value in zip(regions, regions_class_order or []):
        names.setdefault(int(value), name)
    return dict(sorted(names.items()))


def segments_from_labels(labels: dict[str, int | list[int]]) -> dict[str, list[int]]:
    """Segment name -> label values, for every non-background plan label, in plan order."""
    segments = {}
    for name, value in labels.items():
        values = [int(v) for v in (value if isinstance(value, list) else [value])]
        if values != [0]:
            segments[name] = values
    return segments


def _import_highdicom():
    """Import highdicom/pydicom or explain which extra to install."""
    try:
        import highdicom
        import pydicom
    except ImportError:
        raise UserError("DICOM-SEG output needs the optional 'dicom' extra: pip install 'segkit-revmb[dicom]'") from None
    return highdicom, pydicom


def _concept(hd, code: dict[str, str]):
    """A highdicom CodedConcept from a {scheme, value, meaning} coding entry."""
    return hd.sr.CodedConcept(value=code["value"], scheme_designator=code["scheme"], meaning=code["meaning"])


def _segment_description(hd, number: int, name: str, coding: dict, algorithm):
    """One highdicom SegmentDescription coded by its segment_coding entry (laterality as a CID 244 modifier)."""
    from pydicom.sr.codedict import codes

    region = coding.get("region")
    description = hd.seg.SegmentDescription(
        segment_number=number, segment_label=name[:64],
        segmented_property_category=_concept(hd, coding["category"]),
        segmented_property_type=_concept(hd, coding["type"]),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
        anatomic_regions=[_concept(hd, region)] if region else None)
    laterality = coding.get("laterality")
    if laterality:
        side = hd.sr.CodedConcept.from_code(getattr(codes.SCT, LATERALITIES[laterality]))
        # the side qualifies the region a finding lies in, else the structure itself
        item = description.AnatomicRegionSequence[0] if region else description.SegmentedPropertyTypeCodeSequence[0]
        if region:
            item.AnatomicRegionModifierSequence = [side]
        else:
            item.SegmentedPropertyTypeModifierCodeSequence = [side]
    return description


def _segment_descriptions(hd, names: dict[int, str], precision: str | None = None,
                          coding: dict[str, dict] | None = None) -> list:
    """highdicom segment descriptions, one per segment number (the inference precision as an algorithm parameter),
    each coded from `coding` (plans.json segment_coding), else from its name (`segment_coding`)."""
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(name="segkit", family=codes.cid7162.ArtificialIntelligence,
                                                   version=__version__,
                                                   parameters={"precision": precision} if precision else None)
    coding = coding or {}
    return [_segment_description(hd, value, name, coding.get(name) or code_from_name(name), algorithm)
            for value, name in names.items()]


def content_description(precision: str | None) -> str:
    """ContentDescription (LO, at most 64 characters): what made the segmentation, with the inference precision."""
    return f"segkit {__version__} automatic segmentation" + (f", inference precision {precision}" if precision else "")


def build_dicom_seg(label: np.ndarray, source: SeriesInfo, segments: dict[str, list[int]], series_number: int = 300,
                    precision: str | None = None, frame_order: tuple[int, ...] = (),
                    coding: dict[str, dict] | None = None):
    """Build (not write) a highdicom Segmentation of a (z, y, x) label map over its source series.

    The inference precision (fp32, bf16, fp16) goes into ContentDescription and the algorithm's
    AlgorithmParameter (standard attributes, no private tags): bf16 and fp32 label maps of one model
    can differ in boundary voxels (docs/benchmarks.md, bf16 vs fp32), so a reader can tell them apart.
    A multi-frame source (one enhanced / legacy-converted file) gets its frames in the file's
    order: slice k of the label map lies on source frame frame_order[k] (read from the file
    when not given).
    """
    hd, pydicom = _import_highdicom()
    if source.multiframe:
        if not frame_order:
            from segkit.io.dicom_multiframe import read_multiframe

            frame_order = read_multiframe(source.files[0]).frame_order
        if label.shape[0] != len(frame_order):
            raise ValueError(f"label map has {label.shape[0]} slices, the multi-frame source {len(frame_order)} frames")
        label = label[np.argsort(np.asarray(frame_order))]     # back to the file's frame order
    elif label.shape[0] != len(source.files):
        raise ValueError(f"label map has {label.shape[0]} slices, source series {len(source.files)}")
    datasets = [pydicom.dcmread(path) for path in source.files]
    masks = np.stack([np.isin(label, values) for values in segments.values()], axis=-1)
    names = {number: name for number, name in enumerate(segments, start=1)}
    return hd.seg.Segmentation(
        source_images=datasets, pixel_array=masks,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_segment_descriptions(hd, names, precision, coding),
        content_description=content_description(precision)[:64],
        series_instance_uid=hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="segkit", manufacturer_model_name="segkit", software_versions=__version__,
        device_serial_number="0", series_description="segkit segmentation", omit_empty_frames=False)


def write_dicom_seg(label: np.ndarray, source: SeriesInfo, segments: dict[str, list[int]], path: str | Path,
                    precision: str | None = None, frame_order: tuple[int, ...] = (),
                    coding: dict[str, dict] | None = None) -> Path:
    """Write a DICOM-SEG of a (z, y, x) label map over its source series atomically; return the path."""
    path = Path(path)
    if not segments:
        raise UserError("the plan declares no foreground labels to write as DICOM-SEG segments", path)
    seg = build_dicom_seg(label, source, segments, precision=precision, frame_order=frame_order, coding=coding)
    with atomic_path(path, suffix=".dcm") as tmp:
        seg.save_as(tmp)
    return path


SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def _pixel_bytes_needed(seg) -> int:
    """Bytes the SEG's frames need: Rows x Columns x NumberOfFrames at BitsAllocated (1 for BINARY)."""
    bits = int(seg.Rows) * int(seg.Columns) * int(seg.get("NumberOfFrames", 1) or 1) * int(seg.BitsAllocated)
    return (bits + 7) // 8


def seg_problem(path: str | Path, source: SeriesInfo | SeriesIdentity) -> str | None:
    """Why the DICOM-SEG at path is not a complete segmentation of this source series (None when it is).

    Reads the whole file: a SEG cut short (pydicom reads it silently, with fewer pixel bytes),
    another SOP class, or one that references another study, series or set of instances (for
    example a previous patient's series replaced in the same folder) is refused.
    """
    import pydicom

    path = Path(path)
    identity = series_identity(source) if isinstance(source, SeriesInfo) else source
    try:
        seg = pydicom.dcmread(path)
        pixel_bytes = len(seg.PixelData) if "PixelData" in seg else 0
        needed = _pixel_bytes_needed(seg) if "Rows" in seg else 1
        referenced = [(str(item.SeriesInstanceUID),
                       {str(i.ReferencedSOPInstanceUID) for i in item.get("ReferencedInstanceSequence", [])})
                      for item in seg.get("ReferencedSeriesSequence", [])]
        sop_class, study = str(seg.get("SOPClassUID", "")), str(seg.get("StudyInstanceUID", ""))
    except Exception as err:  # any parse failure means "not a valid SEG", never a crash
        return f"{path.name} is unreadable ({type(err).__name__})"
    if sop_class != SEGMENTATION_STORAGE:
        return f"{path.name} is not a DICOM Segmentation (SOP class {sop_class or 'missing'})"
    if pixel_bytes < needed:
        return f"{path.name} is truncated ({pixel_bytes} of {needed} pixel bytes)"
    if study != identity.study_uid:
        return f"{path.name} belongs to another study ({study}, the source is {identity.study_uid})"
    instances = {series: sops for series, sops in referenced}
    if identity.series_uid not in instances:
        return f"{path.name} references another series ({', '.join(instances) or 'none'}, the source is {identity.series_uid})"
    if instances[identity.series_uid] != set(identity.sop_instance_uids):
        return f"{path.name} references other instances than the source series' {len(identity.sop_instance_uids)} files"
    return None


def seg_matches_source(path: str | Path, source: SeriesInfo | SeriesIdentity) -> bool:
    """True when the DICOM-SEG at path is a complete segmentation of this source series (see seg_problem)."""
    return seg_problem(path, source) is None
