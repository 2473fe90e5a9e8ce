"""Find the cases of a prediction input and load one case as a (C, z, y, x) stack.

The input (`segkit predict -i`) is an image file (one case), a raw dataset (its imagesTs,
else imagesTr), or a folder, which may mix two kinds of case:

- NIfTI (or NRRD/MHA) files ``CASE_0000.nii.gz, CASE_0001.nii.gz, ...``, one per channel
  (the nnU-Net naming; a file without the ``_XXXX`` suffix is a one-channel case);
- sub-folders, each one DICOM study (see ``segkit.io.dicom_series`` for the channel rules).

A folder that directly holds DICOM files (and nothing above) is itself one study.

Cases are sorted by case id, which is what sharding (``--num-parts``) relies on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from segkit.batch.provenance import input_digest
from segkit.errors import UserError
from segkit.io.dataset import CHANNEL_SUFFIX
from segkit.io.dicom import read_dicom_study
from segkit.io.dicom_series import SeriesInfo, list_series, map_channels, series_in_folder
from segkit.io.image import SUPPORTED_SUFFIXES, Geometry, image_suffix, read_image
from segkit.io.integrity import check_complete


@dataclass(frozen=True)
class BatchCase:
    """One case of a batch: its id, kind ('files' or 'dicom') and sources (channel files or a study folder)."""

    case_id: str
    kind: str
    sources: tuple[Path, ...]
    channels: tuple[int, ...] = ()
    file_ending: str = ".nii.gz"


@dataclass(frozen=True)
class InputSpec:
    """What the model expects from each case, and how to map DICOM series to channels."""

    num_channels: int
    channel_names: tuple[str, ...] = ()
    channel_map: dict[int, str] | None = None
    series_uid: str | None = None


@dataclass
class LoadedCase:
    """A case's channels stacked (C, z, y, x) float32, its geometry, its DICOM series if any, and its input files."""

    images: np.ndarray | None                # None once preprocessed when no preview needs the raw channels
    geometry: Geometry
    dicom_reference: SeriesInfo | None = None
    extra: dict = field(default_factory=dict)
    dicom_series: tuple[SeriesInfo, ...] = ()   # every channel's series (channel 0 = dicom_reference)
    input_files: tuple[Path, ...] = ()           # the files read, in channel (and slice) order
    input_sha256: str = ""                       # their content digest (batch/provenance.py), taken when read
    notes: list[str] = field(default_factory=list)      # what the reader ignored or dropped (report.json "notes")
    warnings: list[str] = field(default_factory=list)   # what may lower quality, e.g. a lossy source (report + stderr)
    frame_order: tuple[int, ...] = ()                    # multi-frame DICOM reference: source frame of each slice


def input_folder(path: str | Path) -> Path:
    """The folder holding the cases: the input itself, or a raw dataset's imagesTs (else imagesTr)."""
    folder = Path(path)
    if folder.is_dir() and (folder / "dataset.json").is_file():
        for split in ("imagesTs", "imagesTr"):
            if (folder / split).is_dir() and any(image_suffix(p) for p in (folder / split).iterdir()):
                return folder / split
        raise UserError("dataset has no images in imagesTs or imagesTr", folder)
    return folder


def file_case(path: Path) -> BatchCase:
    """The one case of an image file given as input (CASE_XXXX<ending> or CASE<ending>)."""
    suffix = image_suffix(path)
    if not suffix:
        raise UserError(f"not a supported image file (formats: {', '.join(SUPPORTED_SUFFIXES)})", path)
    stem = path.name[: -len(suffix)]
    match = CHANNEL_SUFFIX.match(stem)
    case_id, channel = (match["case"], int(match["channel"])) if match else (stem, 0)
    return BatchCase(case_id, "files", (path,), (channel,), suffix)


def discover_cases(input_dir: str | Path) -> list[BatchCase]:
    """List the cases of an input file, folder or raw dataset, sorted by case id; duplicate ids are a UserError."""
    input_dir = Path(input_dir)
    if input_dir.is_file():
        return [file_case(input_dir)]
    if not input_dir.is_dir():
        raise UserError("input not found", input_dir)
    input_dir = input_folder(input_dir)
    files: dict[str, dict[int, Path]] = {}
    studies: dict[str, Path] = {}
    for path in sorted(input_dir.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            studies[path.name] = path
            continue
        suffix = image_suffix(path)
        if not suffix:
            continue
        stem = path.name[: -len(suffix)]
        match = CHANNEL_SUFFIX.match(stem)
        case_id, channel = (match["case"], int(match["channel"])) if match else (stem, 0)
        if channel in files.setdefault(case_id, {}):
            raise UserError(f"case {case_id} has two files for channel {channel}", path)
        files[case_id][channel] = path
    if not files and not studies and series_in_folder(input_dir):
        return [BatchCase(input_dir.name, "dicom", (input_dir,))]  # the input is itself one study
    clash = sorted(set(files) & set(studies))
    if clash:
        raise UserError(f"case ids {clash} exist both as image files and as DICOM folders", input_dir)
    cases = [BatchCase(cid, "files", tuple(ch[c] for c in sorted(ch)), tuple(sorted(ch)), image_suffix(ch[min(ch)]))
             for cid, ch in files.items()]
    cases += [BatchCase(cid, "dicom", (folder,)) for cid, folder in studies.items()]
    if not cases:
        raise UserError("no input cases (image files CASE_0000.nii.gz ... or DICOM study folders)", input_dir)
    return sorted(cases, key=lambda case: case.case_id)


def _check_channels(case: BatchCase, spec: InputSpec) -> None:
    """Fail when a file case does not have exactly channels 0..C-1."""
    expected = tuple(range(spec.num_channels))
    if case.channels != expected:
        raise UserError(f"wrong channel count: the model expects {spec.num_channels} channel file(s) "
                        f"(_0000.._{spec.num_channels - 1:04d}), found channels {list(case.channels)}",
                        case.sources[0])


def load_case(case: BatchCase, spec: InputSpec) -> LoadedCase:
    """Read a case's channels into a (C, z, y, x) float32 stack; any problem is a UserError naming the file."""
    if case.kind == "dicom":
        study = read_dicom_study(case.sources[0], spec.num_channels, spec.channel_map,
                                 list(spec.channel_names) or None, spec.series_uid)
        files = tuple(f for info in study.series for f in info.files)
        return LoadedCase(study.images, study.geometry, study.reference, dicom_series=study.series,
                          input_files=files, input_sha256=input_digest(files), notes=study.notes,
                          warnings=study.warnings, frame_order=study.frame_order)
    _check_channels(case, spec)
    for path in case.sources:
        check_complete(path)
    images = [read_image(path, np.float32) for path in case.sources]
    for path, image in zip(case.sources[1:], images[1:]):
        problem = images[0].geometry.mismatch(image.geometry)
        if problem:
            raise UserError(f"{problem} (channel 0 {case.sources[0].name})", path)
    if images[0].array.ndim != 3:
        raise UserError(f"expected a 3D image, got shape {images[0].array.shape}", case.sources[0])
    return LoadedCase(np.stack([image.array for image in images]), images[0].geometry,
                      input_files=case.sources, input_sha256=input_digest(case.sources))


def case_series(case: BatchCase, spec: InputSpec) -> list[SeriesInfo]:
    """The series feeding each channel of a DICOM case (no pixel data read); [] for a file case."""
    if case.kind != "dicom":
        return []
    study = case.sources[0]
    return map_channels(list_series(study), study, spec.num_channels, spec.channel_map,
                        list(spec.channel_names) or None, spec.series_uid)


def input_files(case: BatchCase, spec: InputSpec) -> tuple[Path, ...]:
    """The files a case is read from, in channel (and slice) order: what its provenance digest covers."""
    if case.kind == "dicom":
        return tuple(f for info in case_series(case, spec) for f in info.files)
    return case.sources


def input_geometry(case: BatchCase, spec: InputSpec) -> Geometry:
    """The geometry a case's output must have (header only for files; the reference series for DICOM)."""
    if case.kind == "dicom":
        return read_dicom_study(case.sources[0], spec.num_channels, spec.channel_map,
                                list(spec.channel_names) or None, spec.series_uid).geometry
    reader = sitk.ImageFileReader()
    reader.SetFileName(os.fspath(case.sources[0]))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise UserError("cannot read image header", case.sources[0]) from None
    return Geometry(tuple(reader.GetSpacing()), tuple(reader.GetOrigin()), tuple(reader.GetDirection()),
                    tuple(reader.GetSize()))
