"""Per-case checks of `segkit verify` (run in worker processes): read every file of a case."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from segkit.errors import UserError
from segkit.io.convert_files import NIFTI_SUFFIXES, load_nifti, read_voxels
from segkit.io.image import Image, image_suffix, read_image


@dataclass(frozen=True, order=True)
class Problem:
    """One problem found in a dataset: which case, which file (relative to the dataset), what."""

    case: str
    file: str
    problem: str

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


def relative_name(root: str | Path, path: str | Path) -> str:
    """A path relative to the dataset root when inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def _read(path: Path, problems: list[str]) -> tuple[Image, np.ndarray] | None:
    """Read an image and its raw voxels, recording unreadable or missing files as a problem.

    The raw voxels of a NIfTI come from nibabel: SimpleITK zero-fills a truncated NIfTI
    and turns NaN/Inf into 0 without any error, which would hide both problems.
    """
    if not path.is_file():
        problems.append("missing file")
        return None
    try:
        voxels = nifti_voxels(path) if image_suffix(path) in NIFTI_SUFFIXES else None
        image = read_image(path)
        return image, image.array if voxels is None else voxels
    except UserError as err:
        message = str(err)
        problems.append(message.split(": ", 1)[1] if err.path and ": " in message else message)
        return None


def nifti_voxels(path: Path) -> np.ndarray:
    """A NIfTI file's voxels as stored (nibabel), raising a UserError if the data is truncated."""
    return read_voxels(load_nifti(path), path)


def _image_problems(image: Image, voxels: np.ndarray) -> list[str]:
    """Problems of one channel image on its own: dimension and non-finite values."""
    if image.array.ndim != 3:
        return [f"image is {image.array.ndim}D (shape {image.array.shape}); expected 3D"]
    if np.issubdtype(voxels.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(voxels)))
        if bad:
            return [f"image contains {bad} NaN/Inf voxel(s)"]
    return []


def _label_problems(array: np.ndarray, declared: tuple[int, ...] | None) -> list[str]:
    """Problems of a label map on its own: dimension, non-integer and undeclared values."""
    if array.ndim != 3:
        return [f"label map is {array.ndim}D (shape {array.shape}); expected 3D"]
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            return ["label map contains NaN/Inf"]
        fractional = array[array != np.round(array)]
        if fractional.size:
            return [f"non-integer label values (float label map with fractional values such as {float(fractional[0]):g})"]
    values = sorted(int(v) for v in np.unique(array))
    if declared is not None:
        undeclared = [v for v in values if v not in declared]
        if undeclared:
            return [f"label values {undeclared} are not declared in dataset.json (declared: {list(declared)})"]
    return []


def check_case(task: CaseCheck) -> list[Problem]:
    """Every problem of one case: unreadable/missing files, dimensions, NaN, geometry, label values."""
    root = Path(task.root)
    found: list[Problem] = []
    reference: tuple[str, Image] | None = None

    def report(path: str, messages: list[str]) -> None:
        found.extend(Problem(task.case_id, relative_name(root, path), m) for m in messages)

    for path in task.images:
        messages: list[str] = []
        read = _read(Path(path), messages)
        if read is not None:
            image = read[0]
            messages += _image_problems(*read)
            messages += _geometry_problem(reference, image)
            if reference is None and image.array.ndim == 3:
                reference = (relative_name(root, path), image)
        if messages and messages[0] == "missing file":
            messages[0] = "missing channel file"
        report(path, messages)
    if task.label is not None:
        messages = []
        read = _read(Path(task.label), messages)
        if read is not None:
            messages += _label_problems(read[1], task.label_values) + _geometry_problem(reference, read[0])
        if messages and messages[0] == "missing file":
            messages[0] = "missing label file"
        report(task.label, messages)
    return found


def _geometry_problem(reference: tuple[str, Image] | None, image: Image) -> list[str]:
    """A geometry mismatch against the case's first good channel, as a one-item list."""
    if reference is None or image.array.ndim != 3:
        return []
    difference = reference[1].geometry.mismatch(image.geometry)
    return [f"geometry differs from {reference[0]}: {difference}"] if difference else []
