"""Read DICOM studies (one folder per study) as multi-channel volumes with their geometry.

A study folder holds DICOM series, either directly or one sub-folder per channel.
Which series feeds which network channel:

- one channel, one series: that series;
- one channel, several series: the one named by ``series_uid``, else a UserError listing
  every series UID with its SeriesDescription;
- a channel map ``{0: "T1*", 1: "FLAIR*"}`` (``--channel-map '0=T1*,1=FLAIR*'``): each
  pattern (shell-style, case-insensitive) is matched against the SeriesDescription, the
  sub-folder name and the SeriesInstanceUID; exactly one series must match each channel;
- several channels, no map: sub-folders named ``0000``, ``0001``, ... or by the plan's
  channel names (case-insensitive).

All channels must share one geometry; the first channel's series is the reference that a
DICOM-SEG output points back to. Origin, spacing and direction come from the series
(ImagePositionPatient / ImageOrientationPatient / PixelSpacing) via SimpleITK.

Series integrity (each failure is one UserError naming the offending files): every slice must
share one ImageOrientationPatient, the slice positions must lie on one line along the slice
normal (no gantry tilt or shear, which ITK would silently ignore) with even spacing, and a file
that looks like DICOM but is not part of any readable series (truncated or damaged; GDCM
silently drops such files) fails the study instead of being skipped.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from segkit.errors import UserError
from segkit.io.image import Geometry, Image


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series: its UID, SeriesDescription, folder and slice files in slice order."""

    uid: str
    description: str
    folder: Path
    files: tuple[Path, ...]

    def label(self) -> str:
        """Human-readable identification for error messages."""
        return f"{self.uid} ({self.description or 'no description'}, {len(self.files)} files, in {self.folder.name})"


@dataclass(frozen=True)
class SeriesIdentity:
    """The UIDs an output derived from a series must reference: its study, the series and each slice's instance."""

    study_uid: str
    series_uid: str
    sop_instance_uids: tuple[str, ...]


def series_identity(info: SeriesInfo) -> SeriesIdentity:
    """Study, series and SOP Instance UIDs of a series' files (headers only); UserError naming a file without them."""
    tags = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]
    study, sops = "", []
    for path in info.files:
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags)
        except Exception as err:  # a damaged header is the user's file problem, whatever pydicom raised
            raise UserError(f"cannot read the DICOM header ({type(err).__name__})", path) from None
        if "SOPInstanceUID" not in header or "StudyInstanceUID" not in header:
            raise UserError("DICOM file lacks its SOPInstanceUID or StudyInstanceUID", path)
        study = study or str(header.StudyInstanceUID)
        sops.append(str(header.SOPInstanceUID))
    return SeriesIdentity(study, info.uid, tuple(sops))


@dataclass
class DicomStudy:
    """The channels of one study, stacked (C, z, y, x), plus the series each came from."""

    images: np.ndarray
    geometry: Geometry
    series: tuple[SeriesInfo, ...]

    @property
    def reference(self) -> SeriesInfo:
        """The series a derived segmentation refers to (channel 0)."""
        return self.series[0]


def parse_channel_map(text: str | None) -> dict[int, str] | None:
    """Parse '0=T1*,1=FLAIR*' into {0: 'T1*', 1: 'FLAIR*'}; None stays None."""
    if text is None or not text.strip():
        return None
    mapping: dict[int, str] = {}
    for item in text.split(","):
        key, sep, pattern = item.partition("=")
        if not sep or not key.strip().isdigit() or not pattern.strip():
            raise UserError(f"--channel-map entry {item!r} must look like '0=T1*'")
        mapping[int(key)] = pattern.strip()
    if sorted(mapping) != list(range(len(mapping))):
        raise UserError(f"--channel-map must cover channels 0..{len(mapping) - 1} without gaps, got {sorted(mapping)}")
    return mapping


def _description(first_file: Path) -> str:
    """SeriesDescription of a slice file (empty when absent)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(os.fspath(first_file))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return ""
    return reader.GetMetaData("0008|103e").strip() if reader.HasMetaDataKey("0008|103e") else ""


def series_in_folder(folder: Path) -> list[SeriesInfo]:
    """Every DICOM series stored directly in a folder (not its sub-folders)."""
    reader = sitk.ImageSeriesReader()
    found = []
    # GDCM warns "No Series were found" on stderr for every folder without DICOM files.
    warnings_were_on = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        uids = reader.GetGDCMSeriesIDs(os.fspath(folder))
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings_were_on)
    for uid in uids:
        files = tuple(Path(f) for f in reader.GetGDCMSeriesFileNames(os.fspath(folder), uid))
        if files:
            found.append(SeriesInfo(uid, _description(files[0]), folder, files))
    return found


def looks_like_dicom(path: Path) -> bool:
    """True for a DICOM-ish file: a .dcm/.dicom/.ima suffix, 'DICM' at byte 128, or (no preamble) a first
    tag in group 0002/0008, as older scanner exports without a suffix have."""
    if path.name.upper() == "DICOMDIR" or path.name.startswith("."):
        return False
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM" or (not path.suffix and head[:2] in (b"\x02\x00", b"\x08\x00"))


def _readable_image(path: Path) -> bool:
    """True when SimpleITK reads the file as an image, header and pixel data."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(os.fspath(path))
    try:
        reader.Execute()
    except RuntimeError:
        return False
    return True


def unreadable_files(folder: Path, series: list[SeriesInfo]) -> list[Path]:
    """DICOM-looking files of a folder that no readable series holds (truncated or damaged files)."""
    listed = {f.resolve() for info in series for f in info.files}
    candidates = [p for p in sorted(folder.iterdir()) if p.is_file() and p.resolve() not in listed and looks_like_dicom(p)]
    warnings_were_on = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        return [p for p in candidates if not _readable_image(p)]
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings_were_on)


def _name_files(paths: list[Path], limit: int = 5) -> str:
    """File names for a message (the first few, then a count)."""
    names = ", ".join(p.name for p in paths[:limit])
    return names + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def list_series(study: str | Path) -> list[SeriesInfo]:
    """Every series in a study folder and its direct sub-folders; a UserError when there is none or a file is unreadable."""
    study = Path(study)
    if not study.is_dir():
        raise UserError("DICOM study folder not found", study)
    folders = [study] + sorted(p for p in study.iterdir() if p.is_dir() and not p.name.startswith("."))
    per_folder = [(folder, series_in_folder(folder)) for folder in folders]
    found = [info for _, series in per_folder for info in series]
    if not found:
        has_files = any(p.is_file() for folder in folders for p in folder.iterdir())
        raise UserError("no readable DICOM series found" if has_files else "empty folder: no DICOM files", study)
    for folder, series in per_folder:
        bad = unreadable_files(folder, series)
        if bad:
            others = f"; also {_name_files(bad[1:])}" if len(bad) > 1 else ""
            raise UserError(f"unreadable DICOM file (truncated or damaged; not part of any readable series){others}",
                            bad[0])
    return found


def _describe_all(series: list[SeriesInfo]) -> str:
    """List series for an error message."""
    return "; ".join(info.label() for info in series)


def choose_series(series: list[SeriesInfo], study: Path, series_uid: str | None = None) -> SeriesInfo:
    """Pick the single series (or the one with series_uid), else fail listing the candidates."""
    if series_uid is not None:
        matches = [info for info in series if info.uid == series_uid]
        if not matches:
            raise UserError(f"no series with UID {series_uid}; found: {_describe_all(series)}", study)
        return matches[0]
    if len(series) > 1:
        raise UserError(f"holds {len(series)} series; choose one with --series-uid or map channels with "
                        f"--channel-map: {_describe_all(series)}", study)
    return series[0]


def _matches(info: SeriesInfo, pattern: str) -> bool:
    """True when a channel-map pattern matches the series description, folder name or UID."""
    pattern = pattern.lower()
    return any(fnmatch.fnmatchcase(text.lower(), pattern) for text in (info.description, info.folder.name, info.uid))


def map_channels(series: list[SeriesInfo], study: Path, num_channels: int, channel_map: dict[int, str] | None,
                 channel_names: list[str] | None = None, series_uid: str | None = None) -> list[SeriesInfo]:
    """Assign exactly one series to each network channel (rules in the module docstring)."""
    if channel_map is None and num_channels == 1:
        return [choose_series(series, study, series_uid)]
    if channel_map is None:
        channel_map = _folder_channel_map(series, study, num_channels, channel_names)
    if len(channel_map) != num_channels:
        raise UserError(f"--channel-map names {len(channel_map)} channels but the model expects {num_channels}", study)
    chosen = []
    for channel in range(num_channels):
        matches = [info for info in series if _matches(info, channel_map[channel])]
        if len(matches) != 1:
            what = "no series matches" if not matches else f"{len(matches)} series match"
            raise UserError(f"channel {channel}: {what} {channel_map[channel]!r}; found: {_describe_all(series)}", study)
        chosen.append(matches[0])
    return chosen


def _folder_channel_map(series: list[SeriesInfo], study: Path, num_channels: int,
                        channel_names: list[str] | None) -> dict[int, str]:
    """Channel map from sub-folder names 0000, 0001, ... or the plan's channel names."""
    folder_names = {info.folder.name.lower() for info in series if info.folder != study}
    by_index = {c: f"{c:04d}" for c in range(num_channels)}
    if set(by_index.values()) <= folder_names:
        return by_index
    if channel_names and {name.lower() for name in channel_names} <= folder_names:
        return {c: name for c, name in enumerate(channel_names)}
    raise UserError(f"the model expects {num_channels} channels; put one sub-folder per channel "
                    f"(0000, 0001, ... or {channel_names}) or pass --channel-map; found: {_describe_all(series)}", study)


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
    return (f"slices do not share one orientation: ImageOrientationPatient of {_name_files(bad)} differs from "
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
        return (f"slice positions are not on one line: {_name_files(bad)} lie up to {distances.max():.3g} mm "
                f"off the line through {files[0].name} and {files[-1].name}", bad)
    normal = np.reshape(image.GetDirection(), (3, 3))[:, 2]
    angle = float(np.degrees(np.arccos(min(1.0, abs(float(unit @ normal))))))
    if angle > 0.5:
        return (f"slice positions run at {angle:.1f} degrees to the slice normal (gantry tilt or a sheared stack, "
                f"which would be read with a wrong geometry); resample the series to an orthogonal grid first",
                [files[-1]])
    return None


def _slice_gap_problem(reader: sitk.ImageSeriesReader, image: sitk.Image) -> str | None:
    """Describe missing or unevenly spaced slices (ITK only warns about them), else None."""
    normal = np.reshape(image.GetDirection(), (3, 3))[:, 2]
    positions = _slice_values(reader, "0020|0032", 3)
    if positions is None:
        return None
    steps = np.diff(positions @ normal)
    if steps.size == 0:
        return None
    typical = float(np.median(steps))
    worst = int(np.argmax(np.abs(steps - typical)))
    if abs(steps[worst] - typical) > 0.01 * abs(typical) + 1e-3:
        return (f"missing or unevenly spaced slices: gap of {steps[worst]:.3g} mm after slice {worst} "
                f"(typical {typical:.3g} mm)")
    return None


def read_series(info: SeriesInfo) -> Image:
    """Read one series into an Image (z, y, x) with the series' geometry; UserError naming its folder."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([os.fspath(f) for f in info.files])
    reader.MetaDataDictionaryArrayUpdateOn()
    # ITK warns on stderr about uneven slices; the checks below say which file instead
    warnings_were_on = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
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
    for check in (_orientation_problem(reader, info.files), _position_problem(reader, image, info.files)):
        if check is not None:
            message, bad = check
            raise UserError(f"series {info.uid}: {message}", bad[0])
    problem = _slice_gap_problem(reader, image)
    if problem:
        raise UserError(f"series {info.uid}: {problem}", info.folder)
    return Image(array, Geometry.of_sitk(image))


def read_dicom_study(study: str | Path, num_channels: int, channel_map: dict[int, str] | None = None,
                     channel_names: list[str] | None = None, series_uid: str | None = None) -> DicomStudy:
    """Read a study folder into a (C, z, y, x) float32 stack with the reference series' geometry."""
    study = Path(study)
    chosen = map_channels(list_series(study), study, num_channels, channel_map, channel_names, series_uid)
    images = [read_series(info) for info in chosen]
    for channel, image in enumerate(images[1:], start=1):
        problem = images[0].geometry.mismatch(image.geometry)
        if problem:
            raise UserError(f"channel {channel} series {chosen[channel].uid}: {problem} (channel 0)", study)
    return DicomStudy(np.stack([image.array for image in images]), images[0].geometry, tuple(chosen))
