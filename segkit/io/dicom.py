"""Read DICOM studies (one folder per study) as multi-channel volumes with their geometry.

Which series feeds which channel is `segkit.io.dicom_series`'s (scanning, choosing, channel maps).
All channels must share one geometry; the first channel's series is the reference that a
DICOM-SEG output points back to. Origin, spacing and direction come from the series
(ImagePositionPatient / ImageOrientationPatient / PixelSpacing) via SimpleITK.

- enhanced and legacy-converted multi-frame images (one file, one frame per slice) are read
  with their per-frame functional groups (`dicom_multiframe`);
- lossy-compressed pixels (LossyImageCompression (0028,2110) = 01, or a lossy transfer syntax)
  are read and flagged in `DicomStudy.warnings`; what the native decoders print while reading
  (GDCM's 12-bit JPEG codec prints lines per slice) is kept off stderr (`native_stderr`).

Series integrity (each failure is one UserError naming the offending files): every slice must
share one ImageOrientationPatient, the slice positions must lie on one line along the slice
normal (no gantry tilt or shear, which ITK would silently ignore) with even spacing (a gap
names the files on either side), and two different slices may not share a position.

For other callers (the DICOM node): `read_series_folder(folder)` reads the one series of a
folder into a `DicomStudy`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from segkit.errors import UserError
from segkit.io.dicom_multiframe import read_multiframe
from segkit.io.dicom_series import SeriesInfo, map_channels, name_files, scan_study
from segkit.io.image import Geometry, Image
from segkit.io.native_stderr import captured_native_stderr, summarise


@dataclass
class DicomStudy:
    """The channels of one study, stacked (C, z, y, x), plus the series each came from."""

    images: np.ndarray
    geometry: Geometry
    series: tuple[SeriesInfo, ...]
    notes: list[str] = field(default_factory=list)      # what was ignored or dropped, and why (report.json)
    warnings: list[str] = field(default_factory=list)   # what may lower the result's quality (lossy source)
    frame_order: tuple[int, ...] = ()                   # multi-frame reference: source frame of each slice

    @property
    def reference(self) -> SeriesInfo:
        """The series a derived segmentation refers to (channel 0)."""
        return self.series[0]


def _slice_values(reader: sitk.ImageSeriesReader, tag: str, count: int) -> np.ndarray | None:
    """A numeric multi-valued tag of every slice as a (slices, count) array; None when a slice lacks it."""
    rows = []
    for index in range(len(reader.GetFileNames())):
        if not reader.HasMetaDataKey(index, tag):
            return None
        try:
            values = [float(v) for v in reader.GetMetaData(index, tag).split("\\")]
        except ValueError:
            return None
        if len(values) != count:
            return None
        rows.append(values)
    return np.array(rows)


def _orientation_problem(reader: sitk.ImageSeriesReader, files: tuple[Path, ...]) -> tuple[str, list[Path]] | None:
    """Slices whose ImageOrientationPatient differs from the first slice's (message, offending files)."""
    orientations = _slice_values(reader, "0020|0037", 6)
    if orientations is None:
        return None
    differs = np.flatnonzero(np.max(np.abs(orientations - orientations[0]), axis=1) > 1e-3)
    if differs.size == 0:
        return None
    bad = [files[i] for i in differs]
    first = "\\".join(f"{v:g}" for v in orientations[0])
    return (f"slices do not share one orientation: ImageOrientationPatient of {name_files(bad)} differs from "
            f"{files[0].name}'s ({first})", bad)


def _position_problem(reader: sitk.ImageSeriesReader, image: sitk.Image, files: tuple[Path, ...]
                      ) -> tuple[str, list[Path]] | None:
    """Slice positions off the line through the first and last slice, or a line not along the slice normal."""
    positions = _slice_values(reader, "0020|0032", 3)
    if positions is None or len(positions) < 2:
        return None
    along = positions[-1] - positions[0]
    length = float(np.linalg.norm(along))
    if length == 0:
        return None
    unit = along / length
    offsets = positions - positions[0]
    distances = np.linalg.norm(offsets - np.outer(offsets @ unit, unit), axis=1)
    tolerance = max(0.01, 0.05 * min(image.GetSpacing()[:2]))
    off_line = np.flatnonzero(distances > tolerance)
    if off_line.size:
        bad = [files[i] for i in off_line[np.argsort(-distances[off_line])]]
        return (f"slice positions are not on one line: {name_files(bad)} lie up to {distances.max():.3g} mm "
                f"off the line through {files[0].name} and {files[-1].name}", bad)
    normal = np.reshape(image.GetDirection(), (3, 3))[:, 2]
    angle = float(np.degrees(np.arccos(min(1.0, abs(float(unit @ normal))))))
    if angle > 0.5:
        return (f"slice positions run at {angle:.1f} degrees to the slice normal (gantry tilt or a sheared stack, "
                f"which would be read with a wrong geometry); resample the series to an orthogonal grid first",
                [files[-1]])
    return None


def _slice_gap_problem(reader: sitk.ImageSeriesReader, image: sitk.Image, files: tuple[Path, ...]
                       ) -> tuple[str, list[Path]] | None:
    """Two slices at one position, or missing / unevenly spaced slices (ITK only warns), naming the files."""
    normal = np.reshape(image.GetDirection(), (3, 3))[:, 2]
    positions = _slice_values(reader, "0020|0032", 3)
    if positions is None:
        return None
    along = positions @ normal
    # GDCM leaves files at a repeated position unsorted, so look for repeats in position order
    by_position = np.argsort(along, kind="stable")
    same = np.flatnonzero(np.abs(np.diff(along[by_position])) < 1e-3)
    if same.size:
        pairs = [f"{files[by_position[i]].name} and {files[by_position[i + 1]].name}" for i in same[:3]]
        return (f"{len(same)} pair(s) of different slices (their SOPInstanceUIDs differ) share one position: "
                f"{'; '.join(pairs)} (a repeated acquisition or two series mixed; keep one of each pair)",
                [files[by_position[int(same[0]) + 1]]])
    steps = np.diff(along)
    if steps.size == 0:
        return None
    typical = float(np.median(steps))
    worst = int(np.argmax(np.abs(steps - typical)))
    if abs(steps[worst] - typical) > 0.01 * abs(typical) + 1e-3:
        return (f"missing or unevenly spaced slices: gap of {steps[worst]:.3g} mm between {files[worst].name} and "
                f"{files[worst + 1].name} (typical {typical:.3g} mm)", [files[worst + 1]])
    return None


@dataclass
class SeriesVolume:
    """One series read: its image, notes (what was silenced), warnings (lossy source) and multi-frame order."""

    image: Image
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    frame_order: tuple[int, ...] = ()


def _lossy_warning(info: SeriesInfo) -> list[str]:
    """A warning when the series' pixels were lossy-compressed (header flag or transfer syntax)."""
    reasons = [h.lossy for h in info.headers if h is not None and h.lossy]
    if not reasons:
        return []
    return [f"series {info.uid} ({info.description or 'no description'}) is lossy-compressed "
            f"({reasons[0]}; {len(reasons)} of {len(info.files)} file(s)): compression artefacts may change the "
            f"segmentation; prefer an uncompressed or losslessly compressed export"]


def _read_multiframe_series(info: SeriesInfo) -> SeriesVolume:
    """A series of one multi-frame file, read with its functional groups (pydicom)."""
    with captured_native_stderr() as noise:
        volume = read_multiframe(info.files[0])
    notes = [f"multi-frame image read from its per-frame functional groups ({len(volume.frame_order)} frames)"]
    if noise:
        notes.append(f"the DICOM decoder's messages were kept off stderr: {summarise(noise)}")
    return SeriesVolume(Image(volume.array, volume.geometry), notes, _lossy_warning(info), volume.frame_order)


def read_series_volume(info: SeriesInfo) -> SeriesVolume:
    """Read one series into an Image (z, y, x) with its geometry, plus notes and warnings; UserError naming the file."""
    if info.multiframe:
        return _read_multiframe_series(info)
    if any(h is not None and h.frames > 1 for h in info.headers):
        raise UserError(f"series {info.uid} is split into {len(info.files)} multi-frame files: only a series of one "
                        "multi-frame file (or of single-frame slices) is supported", info.files[0])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([os.fspath(f) for f in info.files])
    reader.MetaDataDictionaryArrayUpdateOn()
    # ITK warns on stderr about uneven slices; the checks below say which file instead
    warnings_were_on = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        with captured_native_stderr() as noise:
            image = reader.Execute()
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise UserError(f"series {info.uid} has {image.GetNumberOfComponentsPerPixel()} components per voxel",
                            info.folder)
        array = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    except RuntimeError as err:
        detail = str(err).strip().splitlines()
        raise UserError(f"cannot read DICOM series {info.uid} ({(detail[-1] if detail else '')[:200]})",
                        info.folder) from None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings_were_on)
    if image.GetDimension() != 3 or array.ndim != 3 or array.shape[0] < 2:
        raise UserError(f"series {info.uid} is not a 3D volume (shape {array.shape})", info.folder)
    for check in (_orientation_problem(reader, info.files), _position_problem(reader, image, info.files),
                  _slice_gap_problem(reader, image, info.files)):
        if check is not None:
            message, bad = check
            raise UserError(f"series {info.uid}: {message}", bad[0])
    notes = list(info.notes)
    if noise:
        notes.append(f"the DICOM decoder's messages were kept off stderr: {summarise(noise)}")
    return SeriesVolume(Image(array, Geometry.of_sitk(image)), notes, _lossy_warning(info))


def read_series(info: SeriesInfo) -> Image:
    """Read one series into an Image (z, y, x) with the series' geometry; UserError naming the file or folder."""
    return read_series_volume(info).image


def read_dicom_study(study: str | Path, num_channels: int, channel_map: dict[int, str] | None = None,
                     channel_names: list[str] | None = None, series_uid: str | None = None) -> DicomStudy:
    """Read a study folder into a (C, z, y, x) float32 stack with the reference series' geometry."""
    study = Path(study)
    scan = scan_study(study)
    chosen = map_channels(scan.series, study, num_channels, channel_map, channel_names, series_uid)
    volumes = [read_series_volume(info) for info in chosen]
    for channel, volume in enumerate(volumes[1:], start=1):
        problem = volumes[0].image.geometry.mismatch(volume.image.geometry)
        if problem:
            raise UserError(f"channel {channel} series {chosen[channel].uid}: {problem} (channel 0)", study)
    notes = scan.notes() + [note for volume in volumes for note in volume.notes]
    warnings = [warning for volume in volumes for warning in volume.warnings]
    return DicomStudy(np.stack([volume.image.array for volume in volumes]), volumes[0].image.geometry, tuple(chosen),
                      notes, warnings, volumes[0].frame_order)


def read_series_folder(folder: str | Path, series_uid: str | None = None) -> DicomStudy:
    """The DICOM node's entry: read the one image series of a folder (or the one with series_uid) as a 1-channel study.

    Non-image objects beside it are ignored (noted), exact duplicate files dropped (noted), a
    multi-frame image read; anything else wrong is one UserError naming the file.
    """
    return read_dicom_study(folder, 1, series_uid=series_uid)
