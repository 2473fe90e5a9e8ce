"""Checkpoints: atomic torch.save of tensors/primitives only, loadable with weights_only=True.

The owner of the checkpoint format (`checkpoint_<kind>.pt`): its name, the keys a writer must put in,
the keys a reader needs to predict, the writer and the single reader. Training (resume, pretrained
weights), inference (load_model) and export (package checks) all read through `load_checkpoint`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segkit.errors import UserError
from segkit.jsonio import atomic_path

FORMAT = "segkit-checkpoint-1"
REQUIRED_KEYS = ("format", "network_state", "architecture", "in_channels", "num_outputs", "configuration",
                 "plans_sha256", "epoch")
# What a reader needs to rebuild and run the network; imported and older checkpoints may lack the rest.
READ_KEYS = ("format", "network_state", "architecture", "in_channels", "num_outputs")


def _numpy_state_to_lists(state: tuple) -> dict:
    """numpy's legacy RNG state as primitives."""
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": [int(k) for k in keys], "pos": int(pos), "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached)}


def _python_state_to_lists(state: tuple) -> dict:
    """python random's state as primitives."""
    version, internal, gauss_next = state
    return {"version": version, "internal": list(internal), "gauss_next": gauss_next}


def rng_state() -> dict:
    """torch, numpy (legacy global) and python random states as tensors/primitives."""
    # get_state(legacy=True) always returns the tuple; numpy's stub returns the union with the dict form
    numpy_state = _numpy_state_to_lists(np.random.get_state(legacy=True))  # type: ignore[arg-type]
    return {"torch": torch.get_rng_state(), "numpy": numpy_state,
            "python": _python_state_to_lists(random.getstate()),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    """Restore what rng_state() returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint atomically (temp file, then rename)."""
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"checkpoint lacks required keys {missing}")
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)


def load_weights_only(path: str | Path, map_location: str | torch.device = "cpu",
                      safe_globals: Sequence[Any] = ()) -> Any:
    """torch.load without pickle's code execution (weights_only), allowing exactly `safe_globals` beyond torch's own.

    The one place segkit calls torch.load: segkit checkpoints here, nnU-Net's through
    segkit.models.nnunet_checkpoint (numpy scalars/dtypes allowlisted). Errors propagate to the caller.
    """
    if not safe_globals:
        return torch.load(path, map_location=map_location, weights_only=True)
    with torch.serialization.safe_globals(list(safe_globals)):
        return torch.load(path, map_location=map_location, weights_only=True)


def load_checkpoint(path: str | Path, expected_sha: str | None = None, map_location: str | torch.device = "cpu",
                    required: tuple[str, ...] = READ_KEYS) -> dict:
    """Load a checkpoint safely; a corrupt file, a missing key or one from another plan is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError("checkpoint not found", path)
    try:
        payload = load_weights_only(path, map_location)
    except Exception as err:  # torch raises many types for a damaged or foreign file
        raise UserError(f"cannot read checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:200]})", path) from None
    if not isinstance(payload, dict) or "format" not in payload:
        raise UserError(f"not a segkit checkpoint (expected format {FORMAT!r})", path)
    if payload["format"] != FORMAT:
        raise UserError(f"unsupported checkpoint format {payload['format']!r} (expected {FORMAT!r})", path)
    missing = [key for key in required if key not in payload]
    if missing:
        raise UserError(f"not a segkit checkpoint (lacks keys {', '.join(missing)})", path)
    if expected_sha is not None and payload.get("plans_sha256") != expected_sha:
        raise UserError("checkpoint was trained with a different plan (plans_sha256 mismatch); "
                        "use a fresh fold folder or the matching plans.json", path)
    return payload
