"""Saved probabilities: `<CASE>.npz` with float16 `probabilities` (K, z, y, x) and a JSON `metadata` string.

No pickle: the metadata is a 0-d unicode array, so `np.load(path, allow_pickle=False)` reads
everything. The metadata carries what ensembling needs to write label maps on its own:
the geometry (ITK order), label mode, outputs, regions_class_order, the file ending.

This module owns the format: its name, the metadata keys, the writer and the one place that opens a
`.npz` (`_open_npz`); ensembling (`load_probabilities`, `read_metadata`) and find-best
(`load_cv_probabilities`, lenient about metadata so other tools' CV probabilities work) read through it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from segkit.errors import UserError
from segkit.io.image import Geometry
from segkit.jsonio import atomic_path
from segkit.plans import LabelCoding, Plans, label_mode_of, outputs_of, regions_class_order_of

PROBABILITY_FORMAT = "segkit-probabilities-1"
METADATA_KEYS = ("format", "case_id", "geometry", "label_mode", "outputs", "regions_class_order", "file_ending")


def probability_metadata(case_id: str, geometry: Geometry, plans: Plans, file_ending: str, **extra) -> dict:
    """The metadata stored next to a case's probabilities."""
    return {"format": PROBABILITY_FORMAT, "case_id": case_id, "geometry": geometry.to_json(),
            "label_mode": label_mode_of(plans), "outputs": outputs_of(plans),
            "regions_class_order": regions_class_order_of(plans), "file_ending": file_ending, **extra}


def save_probabilities(path: str | Path, probabilities: np.ndarray, metadata: dict) -> Path:
    """Write probabilities as float16 plus the JSON metadata into one .npz, atomically."""
    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, probabilities=np.asarray(probabilities, dtype=np.float16),
                     metadata=np.array(json.dumps(metadata)))
    return path


def _open_npz(path: Path, with_probabilities: bool) -> tuple[np.ndarray | None, dict | None]:
    """(float32 probabilities or None, the metadata dict or None when absent) of one .npz; UserError if unreadable.

    The probabilities array is `probabilities`, or the only array of a file from another tool.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            metadata = json.loads(str(data["metadata"])) if "metadata" in data.files else None
            if not with_probabilities:
                return None, metadata
            key = "probabilities" if "probabilities" in data.files else (data.files[0] if len(data.files) == 1 else None)
            if key is None:
                raise UserError(f"has no 'probabilities' array (found {data.files})", path)
            return np.asarray(data[key], dtype=np.float32), metadata
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise UserError(f"not a segkit probability file ({str(err)[:200]})", path) from None


def _open_probabilities(path: Path) -> tuple[np.ndarray, dict | None]:
    """The float32 probabilities (always present, or a UserError) and the optional metadata of one .npz."""
    probabilities, metadata = _open_npz(path, with_probabilities=True)
    assert probabilities is not None   # _open_npz raises when there is no probabilities array
    return probabilities, metadata


def _checked_metadata(metadata: dict | None, path: Path) -> dict:
    """The metadata if it holds every METADATA_KEYS entry; UserError otherwise."""
    if not isinstance(metadata, dict) or any(key not in metadata for key in METADATA_KEYS):
        raise UserError(f"probability metadata lacks {', '.join(METADATA_KEYS)}", path)
    return metadata


def read_metadata(path: str | Path) -> dict:
    """Only the metadata of a .npz written by save_probabilities (the probabilities are not read)."""
    path = Path(path)
    return _checked_metadata(_open_npz(path, with_probabilities=False)[1], path)


def load_probabilities(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read a .npz written by save_probabilities: float32 (K, z, y, x) and the metadata dict."""
    path = Path(path)
    probabilities, raw_metadata = _open_probabilities(path)
    metadata = _checked_metadata(raw_metadata, path)
    geometry = Geometry.from_json(metadata["geometry"])
    if probabilities.ndim != 4 or probabilities.shape[1:] != geometry.array_shape:
        raise UserError(f"probabilities of shape {probabilities.shape} do not match the stored geometry "
                        f"{geometry.array_shape}", path)
    return probabilities, metadata


def load_cv_probabilities(path: str | Path, num_outputs: int, shape: tuple[int, ...],
                          geometry: Geometry | None = None) -> np.ndarray:
    """The (num_outputs, *shape) float32 probabilities of one CV case; metadata optional (other tools' files).

    When the file carries segkit metadata with a geometry and `geometry` (the reference's) is given,
    they must match: a prediction of another case or grid is refused.
    """
    path = Path(path)
    probs, metadata = _open_probabilities(path)
    if probs.shape != (num_outputs, *shape):
        raise UserError(f"probabilities have shape {probs.shape}, expected {(num_outputs, *shape)} "
                        "(outputs, z, y, x of the reference label map)", path)
    stored = metadata.get("geometry") if isinstance(metadata, dict) else None
    if geometry is not None and isinstance(stored, dict):
        try:
            problem = geometry.mismatch(Geometry.from_json(stored))
        except (KeyError, TypeError, ValueError):
            raise UserError("probability metadata has a malformed geometry", path) from None
        if problem:
            raise UserError(f"geometry does not match the reference label map: {problem}", path)
    return probs


def plans_view(metadata: dict) -> LabelCoding:
    """The plan's label coding, as the probability metadata records it."""
    return LabelCoding.from_json({key: metadata[key] for key in ("label_mode", "outputs", "regions_class_order")})
