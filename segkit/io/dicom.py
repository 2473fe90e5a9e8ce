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

What a PACS export holds besides the images (each noted in `DicomStudy.notes`, which batch
prediction copies into report.json):

- non-image objects (SR, KO, presentation states, SEG, RT, PDF; `dicom_headers.is_non_image`)
  are ignored;
- an exact copy of a slice (the same SOPInstanceUID in two files) is dropped, keeping the first;
- enhanced and legacy-converted multi-frame images (one file, one frame per slice) are read
  with their per-frame functional groups (`dicom_multiframe`);
- lossy-compressed pixels (LossyImageCompression (0028,2110) = 01, or a lossy transfer syntax)
  are read and flagged in `DicomStudy.warnings`; what the native decoders print while reading
  (GDCM's 12-bit JPEG codec prints lines per slice) is kept off stderr (`native_stderr`).

Series integrity (each failure is one UserError naming the offending files): every slice must
share one ImageOrientationPatient, the slice positions must lie on one line along the slice
normal (no gantry tilt or shear, which ITK would silently ignore) with even spacing (a gap
names the files on either side), two different slices may not share a position, and a file
that looks like DICOM but is not part of any readable series (truncated or damaged; GDCM
silently drops such files) fails the study instead of being skipped.

For other callers (the DICOM node): `read_series_folder(folder)` reads the one series of a
folder into a `DicomStudy`; `series_identity` gives the UIDs an output must reference.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from segkit.errors import UserError
from segkit.io.dicom_headers import DicomHeader, is_non_image, read_header
from segkit.io.dicom_multiframe import read_multiframe
from segkit.io.image import Geometry, Image
from segkit.io.native_stderr import captured_native_stderr, summarise


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series: its UID, SeriesDescription, folder and slice files in slice order."""

    uid: str
    description: str
    folder: Path
    files: tuple[Path, ...]
    headers: tuple[DicomHeader | None, ...] = field(default=(), compare=False, repr=False)  # per file, from pydicom
    notes: tuple[str, ...] = field(default=(), compare=False)      # what the scan dropped (exact copies)

    @property
    def multiframe(self) -> bool:
        """True for a series of one enhanced / legacy-converted multi-frame image file."""
        return len(self.files) == 1 and bool(self.headers) and self.headers[0] is not None and \
            self.headers[0].frames > 1

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
    if info.headers and all(h is not None and h.sop_instance_uid and h.study_uid for h in info.headers):
        return SeriesIdentity(info.headers[0].study_uid, info.uid,   # type: ignore[union-attr]  # checked above
                              tuple(h.sop_instance_uid for h in info.headers))  # type: ignore[union-attr]
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
    notes: list[str] = field(default_factory=list)      # what was ignored or dropped, and why (report.json)
    warnings: list[str] = field(default_factory=list)   # what may lower the result's quality (lossy source)
    frame_order: tuple[int, ...] = ()                   # multi-frame reference: source frame of each slice

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


def _gdcm_series(folder: Path) -> list[tuple[str, list[Path]]]:
    """GDCM's series of a folder: (SeriesInstanceUID, files sorted along the slice normal)."""
    reader = sitk.ImageSeriesReader()
    # GDCM warns "No Series were found" on stderr for every folder without DICOM files.
    warnings_were_on = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        with captured_native_stderr():
            uids = reader.GetGDCMSeriesIDs(os.fspath(folder))
            return [(uid, [Path(f) for f in reader.GetGDCMSeriesFileNames(os.fspath(folder), uid)]) for uid in uids]
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings_were_on)


def _without_copies(files: list[Path], headers: list[DicomHeader | None]) -> tuple[list[int], str | None]:
    """Indices of the files to keep (the first of each SOPInstanceUID) and a note naming the dropped copies."""
    first: dict[str, Path] = {}
    keep, dropped = [], []
    for index, (path, header) in enumerate(zip(files, headers)):
        uid = header.sop_instance_uid if header is not None else ""
        if uid and uid in first:
            dropped.append(f"{path.name} (copy of {first[uid].name})")
            continue
        if uid:
            first[uid] = path
        keep.append(index)
    if not dropped:
        return keep, None
    shown = ", ".join(dropped[:5]) + (f" and {len(dropped) - 5} more" if len(dropped) > 5 else "")
    return keep, f"dropped {len(dropped)} exact duplicate file(s) (same SOPInstanceUID as another file): {shown}"


@dataclass
class FolderScan:
    """One folder's image series, the non-image objects ignored in it, and its unreadable DICOM files."""

    series: list[SeriesInfo]
    ignored: list[DicomHeader]
    unreadable: list[Path]


def scan_folder(folder: Path) -> FolderScan:
    """Every image series stored directly in a folder (not its sub-folders), plus what was ignored or unreadable."""
    headers: dict[Path, DicomHeader | None] = {}

    def header(path: Path) -> DicomHeader | None:
        if path not in headers:
            headers[path] = read_header(path)
        return headers[path]

    def non_image(path: Path) -> DicomHeader | None:
        found = header(path)
        return found if found is not None and is_non_image(found.sop_class) else None

    series: list[SeriesInfo] = []
    ignored: list[DicomHeader] = []
    listed: set[Path] = set()
    for uid, files in _gdcm_series(folder):
        listed |= {f.resolve() for f in files}
        images = [f for f in files if non_image(f) is None]
        ignored += [found for f in files if (found := non_image(f)) is not None]
        keep, note = _without_copies(images, [header(f) for f in images])
        if keep:
            kept = tuple(images[i] for i in keep)
            first = header(kept[0])
            description = first.description if first is not None else _description(kept[0])
            series.append(SeriesInfo(uid, description, folder, kept, tuple(header(f) for f in kept),
                                     (note,) if note else ()))
    candidates = [p for p in sorted(folder.iterdir()) if p.is_file() and p.resolve() not in listed and looks_like_dicom(p)]
    unreadable = []
    for path in candidates:
        found = non_image(path)
        if found is not None:
            ignored.append(found)
        elif not _readable_image(path):
            unreadable.append(path)
    return FolderScan(series, ignored, unreadable)


def series_in_folder(folder: Path) -> list[SeriesInfo]:
    """Every DICOM image series stored directly in a folder (not its sub-folders)."""
    return scan_folder(folder).series


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
    warnings_were_on = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        with captured_native_stderr():
            reader.Execute()
    except RuntimeError:
        return False
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings_were_on)
    return True


def unreadable_files(folder: Path) -> list[Path]:
    """DICOM-looking image files of a folder that no readable series holds (truncated or damaged files).

    Valid non-image objects (SR, KO, presentation states, ...) are not among them.
    """
    return scan_folder(folder).unreadable


def _name_files(paths: list[Path], limit: int = 5) -> str:
    """File names for a message (the first few, then a count)."""
    names = ", ".join(p.name for p in paths[:limit])
    return names + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


@dataclass
class StudyScan:
    """A study folder's image series (its sub-folders included) and the non-image objects ignored in it."""

    series: list[SeriesInfo]
    ignored: list[DicomHeader]

    def notes(self) -> list[str]:
        """A note naming the ignored non-image objects (none when there were none)."""
        if not self.ignored:
            return []
        shown = ", ".join(f"{h.path.name} ({h.sop_class_name})" for h in self.ignored[:5])
        more = f" and {len(self.ignored) - 5} more" if len(self.ignored) > 5 else ""
        return [f"ignored {len(self.ignored)} non-image DICOM object(s): {shown}{more}"]


def scan_study(study: str | Path) -> StudyScan:
    """Every image series in a study folder and its direct sub-folders; a UserError when there is none or a
    DICOM image file is unreadable."""
    study = Path(study)
    if not study.is_dir():
        raise UserError("DICOM study folder not found", study)
    folders = [study] + sorted(p for p in study.iterdir() if p.is_dir() and not p.name.startswith("."))
    scans = [scan_folder(folder) for folder in folders]
    found = [info for scan in scans for info in scan.series]
    ignored = [h for scan in scans for h in scan.ignored]
    if not found:
        has_files = any(p.is_file() for folder in folders for p in folder.iterdir())
        if ignored:
            raise UserError(f"no DICOM image series found, only non-image objects: {StudyScan([], ignored).notes()[0]}",
                            study)
        raise UserError("no readable DICOM series found" if has_files else "empty folder: no DICOM files", study)
    for scan in scans:
        bad = scan.unreadable
        if bad:
            others = f"; also {_name_files(bad[1:])}" if len(bad) > 1 else ""
            raise UserError(f"unreadable DICOM file (truncated or damaged; not part of any readable series){others}",
                            bad[0])
    return StudyScan(found, ignored)


def list_series(study: str | Path) -> list[SeriesInfo]:
    """Every series in a study folder and its direct sub-folders; a UserError when there is none or a file is unreadable."""
    return scan_study(study).series


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
