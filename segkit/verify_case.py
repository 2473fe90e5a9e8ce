"""Per-case checks of `segkit verify` (run in worker processes): read every file of a case."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from segkit.errors import UserError
from segkit.io.convert_files import NIFTI_SUFFIXES, load_nifti, present_values, read_voxels
from segkit.io.image import Geometry, image_suffix, read_image
from segkit.preprocessing.orientation import is_rotation, orientation_code

ORIENTATION_INFO = "orientation "   # per-case info row "orientation <code>", summarised by verify.py


@dataclass(frozen=True, order=True)
class Problem:
    """One problem found in a dataset: which case, which file (relative to the dataset), what."""

    case: str
    file: str
    problem: str
    severity: str = "error"   # "info": reported, but the dataset is usable

    def to_json(self) -> dict:
        """The problem as a JSON-serialisable dict."""
        return asdict(self)


@dataclass(frozen=True)
class CaseCheck:
    """What to check for one case: its files and what dataset.json declares."""

    root: str
    case_id: str
    images: tuple[str, ...]
    label: str | None
    label_values: tuple[int, ...] | None   # None: dataset.json unusable, skip the value check
    ignore_label: int | None = None        # the 'ignore' label value (sparse annotation), if declared


def relative_name(root: str | Path, path: str | Path) -> str:
    """A path relative to the dataset root when inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


@dataclass
class FileContent:
    """What the checks need of one file: its geometry, dimension and voxel values."""

    geometry: Geometry
    ndim: int
    voxels: np.ndarray


def _read(path: Path, problems: list[str]) -> FileContent | None:
    """Read an image's geometry and voxels, recording an unreadable or missing file as a problem."""
    if not path.is_file():
        problems.append("missing file")
        return None
    try:
        if image_suffix(path) in NIFTI_SUFFIXES:
            return _read_nifti(path)
        image = read_image(path)
        return FileContent(image.geometry, image.array.ndim, image.array)
    except UserError as err:
        message = str(err)
        problems.append(message.split(": ", 1)[1] if err.path and ": " in message else message)
        return None


def _read_nifti(path: Path) -> FileContent:
    """NIfTI voxels from nibabel, geometry from SimpleITK's header reader (as read_image sees it).

    SimpleITK zero-fills a truncated NIfTI and turns NaN/Inf into 0 without any error, so
    the voxels are checked as nibabel reads them (it verifies the data length).
    """
    voxels = read_voxels(load_nifti(path), path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise UserError(f"cannot read image header ({str(err).strip().splitlines()[-1][:150]})", path) from None
    if reader.GetNumberOfComponents() != 1:
        raise UserError(f"has {reader.GetNumberOfComponents()} components per voxel; expected one", path)
    geometry = Geometry(tuple(reader.GetSpacing()), tuple(reader.GetOrigin()), tuple(reader.GetDirection()),
                        tuple(reader.GetSize()))
    return FileContent(geometry, reader.GetDimension(), voxels)


def _image_problems(content: FileContent) -> list[str]:
    """Problems of one channel image on its own: dimension and non-finite values."""
    if content.ndim != 3:
        return [f"image is {content.ndim}D (size {content.geometry.size}); expected 3D"]
    if not is_rotation(content.geometry.direction):
        values = ", ".join(f"{v:.3g}" for v in content.geometry.direction)
        return [f"direction matrix is not a rotation (axes not orthonormal: {values}); fix the header"]
    if np.issubdtype(content.voxels.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(content.voxels)))
        if bad:
            return [f"image contains {bad} NaN/Inf voxel(s)"]
    return []


def _label_problems(content: FileContent, declared: tuple[int, ...] | None, ignore_label: int | None = None) -> list[str]:
    """Problems of a label map on its own: dimension, non-integer and undeclared values, no annotated voxel."""
    array = content.voxels
    if content.ndim != 3:
        return [f"label map is {content.ndim}D (size {content.geometry.size}); expected 3D"]
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            return ["label map contains NaN/Inf"]
        fractional = array[array != np.round(array)]
        if fractional.size:
            return [f"non-integer label values (float label map with fractional values such as {float(fractional[0]):g})"]
    values = [int(v) for v in present_values(array.astype(np.int64, copy=False))]
    if declared is not None:
        undeclared = [v for v in values if v not in declared]
        if undeclared:
            return [f"label values {undeclared} are not declared in dataset.json (declared: {list(declared)})"]
    if ignore_label is not None and values == [ignore_label]:
        return [f"every voxel is the ignore label ({ignore_label}): the case has no annotated voxel"]
    return []


def check_case(task: CaseCheck) -> list[Problem]:
    """Every problem of one case: unreadable/missing files, dimensions, NaN, geometry, label values."""
    root = Path(task.root)
    found: list[Problem] = []
    reference: tuple[str, Geometry] | None = None

    def report(path: str, messages: list[str]) -> None:
        found.extend(Problem(task.case_id, relative_name(root, path), m) for m in messages)

    for path in task.images:
        messages: list[str] = []
        content = _read(Path(path), messages)
        if content is not None:
            messages += _image_problems(content) + _geometry_problem(reference, content)
            if reference is None and content.ndim == 3:
                reference = (relative_name(root, path), content.geometry)
                if is_rotation(content.geometry.direction):
                    found.append(Problem(task.case_id, reference[0],
                                         ORIENTATION_INFO + orientation_code(content.geometry.direction), "info"))
        if messages and messages[0] == "missing file":
            messages[0] = "missing channel file"
        report(path, messages)
    if task.label is not None:
        messages = []
        content = _read(Path(task.label), messages)
        if content is not None:
            messages += _label_problems(content, task.label_values, task.ignore_label) + \
                _geometry_problem(reference, content)
        if messages and messages[0] == "missing file":
            messages[0] = "missing label file"
        report(task.label, messages)
    return found


def _geometry_problem(reference: tuple[str, Geometry] | None, content: FileContent) -> list[str]:
    """A geometry mismatch against the case's first 3D channel, as a one-item list."""
    if reference is None or content.ndim != 3:
        return []
    difference = reference[1].mismatch(content.geometry)
    return [f"geometry differs from {reference[0]}: {difference}"] if difference else []
