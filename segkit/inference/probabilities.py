"""Saved probabilities: `<CASE>.npz` with float16 `probabilities` (K, z, y, x) and a JSON `metadata` string.

No pickle: the metadata is a 0-d unicode array, so `np.load(path, allow_pickle=False)` reads
everything. The metadata carries what ensembling needs to write label maps on its own:
the geometry (ITK order), label mode, outputs, regions_class_order, the file ending.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from segkit.errors import UserError
from segkit.io.image import Geometry
from segkit.jsonio import atomic_path

PROBABILITY_FORMAT = "segkit-probabilities-1"
METADATA_KEYS = ("format", "case_id", "geometry", "label_mode", "outputs", "regions_class_order", "file_ending")


def probability_metadata(case_id: str, geometry: Geometry, plans: dict, file_ending: str, **extra) -> dict:
    """The metadata stored next to a case's probabilities."""
    return {"format": PROBABILITY_FORMAT, "case_id": case_id, "geometry": geometry.to_json(),
            "label_mode": plans.get("label_mode", "softmax"), "outputs": plans.get("outputs") or {},
            "regions_class_order": plans.get("regions_class_order"), "file_ending": file_ending, **extra}


def save_probabilities(path: str | Path, probabilities: np.ndarray, metadata: dict) -> Path:
    """Write probabilities as float16 plus the JSON metadata into one .npz, atomically."""
    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, probabilities=np.asarray(probabilities, dtype=np.float16),
                     metadata=np.array(json.dumps(metadata)))
    return path


def read_metadata(path: str | Path) -> dict:
    """Only the metadata of a .npz written by save_probabilities (the probabilities are not read)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            metadata = json.loads(str(data["metadata"]))
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"not a segkit probability file ({str(err)[:200]})", path) from None
    if not isinstance(metadata, dict) or any(key not in metadata for key in METADATA_KEYS):
        raise UserError(f"probability metadata lacks {', '.join(METADATA_KEYS)}", path)
    return metadata


def load_probabilities(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read a .npz written by save_probabilities: float32 (K, z, y, x) and the metadata dict."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            probabilities = data["probabilities"].astype(np.float32)
            metadata = json.loads(str(data["metadata"]))
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"not a segkit probability file ({str(err)[:200]})", path) from None
    if not isinstance(metadata, dict) or any(key not in metadata for key in METADATA_KEYS):
        raise UserError(f"probability metadata lacks {', '.join(METADATA_KEYS)}", path)
    geometry = Geometry.from_json(metadata["geometry"])
    if probabilities.ndim != 4 or probabilities.shape[1:] != geometry.array_shape:
        raise UserError(f"probabilities of shape {probabilities.shape} do not match the stored geometry "
                        f"{geometry.array_shape}", path)
    return probabilities, metadata


def plans_view(metadata: dict) -> dict:
    """The plans fields that label conversion reads, taken from probability metadata."""
    return {key: metadata[key] for key in ("label_mode", "outputs", "regions_class_order")}
