"""A model's post-processing: the decision format (validated, read) and how it is applied to a label map.

A decision (the "postprocessing" entry of find_best.json) is
``{"foreground_lcc": bool, "lcc_classes": {NAME: [label values], ...}}``: first, when
``foreground_lcc`` is true, every foreground voxel outside the largest connected component of
the whole foreground is set to background; then, for each listed class or region (the union
of its label values), voxels outside that mask's largest component are set to background.
Components use full connectivity (26 neighbours in 3D); "largest" counts voxels (all voxels
of an image have the same volume).

Decided by `segkit.evaluation.find_best`, applied at prediction (`segkit.inference.predictor`) and
by `segkit postprocess` (`segkit.evaluation.postprocess.postprocess_folder`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from segkit.errors import UserError
from segkit.jsonio import read_json

NO_POSTPROCESSING = {"foreground_lcc": False, "lcc_classes": {}}


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest full-connectivity component of a binary mask (the mask itself when empty)."""
    mask = np.asarray(mask, dtype=bool)
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    components, count = ndimage.label(mask, structure=structure)
    if count <= 1:
        return mask
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == int(np.argmax(sizes))


def keep_largest_component(labels: np.ndarray, values: Sequence[int] | None = None) -> np.ndarray:
    """Set voxels of the mask (labels in values; all non-zero when None) outside its largest component to 0."""
    mask = labels != 0 if values is None else np.isin(labels, list(values))
    removed = mask & ~largest_component(mask)
    if not removed.any():
        return labels
    out = labels.copy()
    out[removed] = 0
    return out


def apply_postprocessing(labels: np.ndarray, decision: dict) -> np.ndarray:
    """Apply a decision: all-foreground LCC first (if chosen), then LCC per listed class or region."""
    if decision.get("foreground_lcc"):
        labels = keep_largest_component(labels)
    for values in (decision.get("lcc_classes") or {}).values():
        labels = keep_largest_component(labels, values)
    return labels


def check_decision(decision: object, path: str | Path | None = None) -> dict:
    """Validate a decision dict (or a find_best.json holding one under 'postprocessing')."""
    if isinstance(decision, dict) and "postprocessing" in decision:
        decision = decision["postprocessing"]
    if not isinstance(decision, dict) or not isinstance(decision.get("foreground_lcc", False), bool):
        raise UserError("post-processing decision must be an object with 'foreground_lcc' (true/false) "
                        "and 'lcc_classes' ({name: [label values]})", path)
    classes = decision.get("lcc_classes") or {}
    if not isinstance(classes, dict) or not all(
            isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool) and x != 0 for x in v)
            for v in classes.values()):
        raise UserError("'lcc_classes' must map each class name to a non-empty list of non-zero label values", path)
    return {"foreground_lcc": bool(decision.get("foreground_lcc", False)),
            "lcc_classes": {str(k): [int(x) for x in v] for k, v in classes.items()}}


def load_decision(path: str | Path) -> dict:
    """Read a decision from find_best.json (its 'postprocessing' entry) or a bare decision JSON."""
    return check_decision(read_json(path, "post-processing decision"), path)
