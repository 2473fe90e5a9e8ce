"""Average the saved probabilities of several prediction folders and write label maps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segkit.console import progress_bar
from segkit.errors import UserError
from segkit.inference import probabilities as probability_files_io
from segkit.inference.probabilities import load_probabilities, plans_view, read_metadata
from segkit.inference.regions import labels_for_plans
from segkit.inference.writing import write_label_like
from segkit.io.image import Geometry

COMPATIBLE_KEYS = ("label_mode", "outputs", "regions_class_order")


def probability_files(folder: Path) -> dict[str, Path]:
    """case id -> <CASE>.npz of a prediction folder."""
    if not folder.is_dir():
        raise UserError("prediction folder not found", folder)
    return {path.name[:-4]: path for path in sorted(folder.glob("*.npz")) if not path.name.startswith(".")}


def common_cases(folders: Sequence[Path]) -> list[str]:
    """Case ids present in every folder; UserError naming a folder that lacks some."""
    files = [probability_files(folder) for folder in folders]
    for folder, found in zip(folders, files):
        if not found:
            raise UserError("no <CASE>.npz probabilities (predict with --save-probabilities)", folder)
    every = set().union(*(set(found) for found in files))
    for folder, found in zip(folders, files):
        missing = sorted(every - set(found))
        if missing:   # name the folder that lacks them and the files it lacks, not a case that is there
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise UserError(f"{missing[0]}.npz{more} missing here (present in another folder); predict those "
                            f"cases with --save-probabilities, or ensemble only folders of the same cases", folder)
    return sorted(every)


def check_compatible(first: dict, other: dict, path: Path) -> None:
    """Refuse probabilities of different outputs or geometry from the first folder's."""
    for key in COMPATIBLE_KEYS:
        if first.get(key) != other.get(key):
            raise UserError(f"{key} differs from the first folder's ({other.get(key)!r} vs {first.get(key)!r})", path)
    problem = Geometry.from_json(first["geometry"]).mismatch(Geometry.from_json(other["geometry"]))
    if problem:
        raise UserError(f"geometry differs from the first folder's: {problem}", path)


def check_all_compatible(cases: Sequence[str], folders: Sequence[Path]) -> None:
    """Check every case's metadata across the folders before anything is written."""
    for case_id in cases:
        first = read_metadata(folders[0] / f"{case_id}.npz")
        for folder in folders[1:]:
            check_compatible(first, read_metadata(folder / f"{case_id}.npz"), folder / f"{case_id}.npz")


def ensemble_case(case_id: str, folders: Sequence[Path]) -> tuple[np.ndarray, dict]:
    """Mean probabilities of one case over the folders, and the first folder's metadata."""
    total: np.ndarray | None = None
    first: dict | None = None
    for folder in folders:
        path = folder / f"{case_id}.npz"
        probabilities, metadata = load_probabilities(path)
        if first is None:
            total, first = probabilities, metadata
        else:
            check_compatible(first, metadata, path)
            total += probabilities
    assert total is not None and first is not None             # callers pass at least two folders
    total /= len(folders)
    return total, first


def ensemble_folders(folders: Sequence[str | Path], output: str | Path, save_probabilities: bool = False,
                     show_progress: bool = True) -> list[Path]:
    """Average every case's probabilities over the folders; write label maps (and optionally the mean)."""
    paths = [Path(f) for f in folders]
    if len(paths) < 2:
        raise UserError("ensembling needs at least two prediction folders")
    output = Path(output)
    if output.resolve() in {f.resolve() for f in paths}:
        raise UserError("output folder must differ from the input folders", output)
    cases = common_cases(paths)
    check_all_compatible(cases, paths)
    written = []
    for case_id in progress_bar(cases, desc="ensemble", unit="case", show=None if show_progress else False):
        probabilities, metadata = ensemble_case(case_id, paths)
        geometry = Geometry.from_json(metadata["geometry"])
        labels = labels_for_plans(probabilities, plans_view(metadata))
        if save_probabilities:
            merged = {**metadata, "ensemble_of": [str(f) for f in paths]}
            probability_files_io.save_probabilities(output / f"{case_id}.npz", probabilities, merged)
        path = output / f"{case_id}{metadata['file_ending']}"
        written.append(write_label_like(labels, geometry, path, _reference(metadata, geometry)))
    return written


def _reference(metadata: dict, geometry: Geometry) -> Path | None:
    """The input image recorded in the metadata, when it still exists (for an exact header copy)."""
    reference = metadata.get("reference_image")
    if not reference or not Path(reference).is_file():
        return None
    return Path(reference)
