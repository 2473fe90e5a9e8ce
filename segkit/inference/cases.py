"""Find the cases to predict (a file, a folder of CASE_XXXX files, or a raw dataset) and load them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segkit.errors import UserError
from segkit.io.dataset import CHANNEL_SUFFIX
from segkit.io.image import Geometry, image_suffix, read_image


@dataclass(frozen=True)
class InputCase:
    """One case to predict: its id, channel files in channel order, and the file ending to write."""

    case_id: str
    images: tuple[Path, ...]
    file_ending: str


def _image_files(folder: Path) -> list[Path]:
    """Visible image files of a folder, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and image_suffix(p))


def _split_name(path: Path) -> tuple[str, int | None, str]:
    """(case id, channel index or None, file ending) of a CASE_XXXX<ending> or CASE<ending> file."""
    ending = image_suffix(path)
    stem = path.name[: -len(ending)]
    match = CHANNEL_SUFFIX.match(stem)
    return (match["case"], int(match["channel"]), ending) if match else (stem, None, ending)


def cases_in_folder(folder: Path, num_channels: int) -> list[InputCase]:
    """Group a folder's image files into cases; every case must have channels 0 .. num_channels-1."""
    by_case: dict[str, dict[int, Path]] = {}
    for path in _image_files(folder):
        case_id, channel, _ = _split_name(path)
        if channel is None:
            if num_channels != 1:
                raise UserError(f"file has no _XXXX channel suffix but the model needs {num_channels} channels", path)
            channel = 0
        channels = by_case.setdefault(case_id, {})
        if channel in channels:
            raise UserError(f"case {case_id!r} has two files for channel {channel}", path)
        channels[channel] = path
    cases = []
    for case_id, channels in sorted(by_case.items()):
        if sorted(channels) != list(range(num_channels)):
            raise UserError(f"case {case_id!r} has channels {sorted(channels)}, the model needs "
                            f"0..{num_channels - 1}", folder)
        files = tuple(channels[c] for c in range(num_channels))
        cases.append(InputCase(case_id, files, image_suffix(files[0])))
    return cases


def find_input_cases(input_path: str | Path, num_channels: int) -> list[InputCase]:
    """Cases of an input file (one-channel models), folder of case files, or raw dataset (imagesTs, else imagesTr)."""
    path = Path(input_path)
    if path.is_file():
        if num_channels != 1:
            raise UserError(f"the model needs {num_channels} channels per case; give a folder of "
                            "CASE_0000.. files instead of one file", path)
        if not image_suffix(path):
            raise UserError("not a supported image file", path)
        case_id, _, ending = _split_name(path)
        return [InputCase(case_id, (path,), ending)]
    if not path.is_dir():
        raise UserError("input not found", path)
    if (path / "dataset.json").is_file():
        for split in ("imagesTs", "imagesTr"):
            folder = path / split
            if folder.is_dir() and _image_files(folder):
                return cases_in_folder(folder, num_channels)
        raise UserError("dataset has no images in imagesTs or imagesTr", path)
    cases = cases_in_folder(path, num_channels)
    if not cases:
        raise UserError("no image files found", path)
    return cases


def load_case_images(case: InputCase) -> tuple[np.ndarray, Geometry]:
    """(C, z, y, x) float32 images of a case and its geometry; channels must share one geometry."""
    first = read_image(case.images[0], np.float32)
    arrays = [first.array]
    for path in case.images[1:]:
        image = read_image(path, np.float32)
        problem = first.geometry.mismatch(image.geometry)
        if problem:
            raise UserError(f"channel geometry differs from {case.images[0].name}: {problem}", path)
        arrays.append(image.array)
    if first.array.ndim != 3:
        raise UserError(f"expected a 3D image, got {first.array.ndim} dimensions", case.images[0])
    return np.stack(arrays), first.geometry
