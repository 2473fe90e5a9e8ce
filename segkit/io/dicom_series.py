"""Find the series of a DICOM study (one folder per study) and choose which series feeds which channel.

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

What a PACS export holds besides the images (each noted, and batch prediction copies the notes
into report.json): non-image objects (SR, KO, presentation states, SEG, RT, PDF;
`dicom_headers.is_non_image`) are ignored; an exact copy of a slice (the same SOPInstanceUID in
two files) is dropped, keeping the first; a file that looks like DICOM but is not part of any
readable series (truncated or damaged; GDCM silently drops such files) fails the study instead of
being skipped. `series_identity` gives the UIDs an output must reference.
Reading the chosen series into volumes is `segkit.io.dicom`'s.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import SimpleITK as sitk

from segkit.errors import UserError
from segkit.io.dicom_headers import DicomHeader, is_non_image, read_header
from segkit.io.native_stderr import captured_native_stderr


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


def name_files(paths: list[Path], limit: int = 5) -> str:
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
            others = f"; also {name_files(bad[1:])}" if len(bad) > 1 else ""
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
