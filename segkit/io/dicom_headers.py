"""What a DICOM file is, from its header alone (pydicom): image or not, its UIDs, frames, lossy compression.

A PACS export holds more than images: structured reports (SR), key object selections (KO),
presentation states (PR), segmentations, RT objects, encapsulated PDFs. They are valid DICOM
and must neither be read as slices nor fail a study as "damaged": `is_non_image` names them by
SOP class, and the reader ignores them with a note.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import UID

# SOP class roots (PS3.4 Annex B) of objects that are not image slices of a volume
NON_IMAGE_SOP_CLASS_ROOTS = (
    "1.2.840.10008.5.1.4.1.1.88.",    # structured reports, key object selection (88.59)
    "1.2.840.10008.5.1.4.1.1.11.",    # presentation states
    "1.2.840.10008.5.1.4.1.1.66",     # raw data, registrations, fiducials, segmentations, surfaces
    "1.2.840.10008.5.1.4.1.1.481.",   # RT structure sets, plans, doses, treatment records
    "1.2.840.10008.5.1.4.1.1.104.",   # encapsulated PDF / CDA / STL / OBJ
    "1.2.840.10008.5.1.4.1.1.9.",     # waveforms (ECG, audio, ...)
    "1.2.840.10008.5.1.4.1.1.4.2",    # MR spectroscopy
    "1.2.840.10008.5.1.4.1.1.200.",   # defined procedure protocols, protocol approval
)
NON_IMAGE_SOP_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.91.1",   # microscopy bulk simple annotations
})

# transfer syntaxes that are always lossy; JPEG 2000 (.91), JPEG-LS near-lossless (.81) and
# HTJ2K (.203) may be either, which LossyImageCompression (0028,2110) then says
LOSSY_TRANSFER_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101", "1.2.840.10008.1.2.4.102",
    "1.2.840.10008.1.2.4.103", "1.2.840.10008.1.2.4.104", "1.2.840.10008.1.2.4.105",
    "1.2.840.10008.1.2.4.106", "1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108",
})

_TAGS = ["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "NumberOfFrames",
         "LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod", "Modality", "SeriesDescription"]


@dataclass(frozen=True)
class DicomHeader:
    """The header facts the reader needs about one file."""

    path: Path
    sop_class: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    frames: int
    transfer_syntax: str
    lossy: str | None        # why the pixels are lossy-compressed, None when they are not known to be
    description: str = ""    # SeriesDescription

    @property
    def sop_class_name(self) -> str:
        """The SOP class's name ('Comprehensive 3D SR Storage'), else its UID."""
        name = UID(self.sop_class).name if self.sop_class else ""
        return name if name and name != self.sop_class else (self.sop_class or "no SOP class")


def is_non_image(sop_class: str) -> bool:
    """True for SOP classes that are not image slices of a volume (SR, KO, PR, SEG, RT, PDF, waveforms ...)."""
    return sop_class in NON_IMAGE_SOP_CLASSES or sop_class.startswith(NON_IMAGE_SOP_CLASS_ROOTS)


def _lossy_reason(header: pydicom.Dataset, transfer_syntax: str) -> str | None:
    """Why a file's pixels are lossy-compressed (the header's own flag or its transfer syntax), else None."""
    flag = str(header.get("LossyImageCompression", "")).strip()
    if flag == "00":
        return None
    if flag == "01":
        method = "\\".join(map(str, _as_list(header.get("LossyImageCompressionMethod"))))
        ratio = "\\".join(f"{float(v):g}" for v in _as_list(header.get("LossyImageCompressionRatio")))
        extra = ", ".join(filter(None, [method and f"method {method}", ratio and f"ratio {ratio}:1"]))
        return "LossyImageCompression (0028,2110) is 01" + (f" ({extra})" if extra else "")
    if transfer_syntax in LOSSY_TRANSFER_SYNTAXES:
        return f"transfer syntax {UID(transfer_syntax).name or transfer_syntax} is lossy"
    return None


def _as_list(value) -> list:
    """A DICOM value (None, single or multi-valued) as a list."""
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]


def read_header(path: Path) -> DicomHeader | None:
    """The header facts of a DICOM file, None when pydicom cannot parse it as DICOM."""
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    except Exception:  # not DICOM, or a header damaged beyond parsing: the caller decides what that means
        return None
    meta = getattr(header, "file_meta", None)
    transfer_syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    try:
        frames = int(header.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        frames = 1
    return DicomHeader(Path(path), str(header.get("SOPClassUID", "")), str(header.get("SOPInstanceUID", "")),
                       str(header.get("StudyInstanceUID", "")), str(header.get("SeriesInstanceUID", "")),
                       frames, transfer_syntax, _lossy_reason(header, transfer_syntax),
                       str(header.get("SeriesDescription", "") or "").strip())
