"""Largest-connected-component post-processing of label maps and its decision file.

A decision (the "postprocessing" entry of find_best.json) is
``{"foreground_lcc": bool, "lcc_classes": {NAME: [label values], ...}}``: first, when
``foreground_lcc`` is true, every foreground voxel outside the largest connected component of
the whole foreground is set to background; then, for each listed class or region (the union
of its label values), voxels outside that mask's largest component are set to background.
Components use full connectivity (26 neighbours in 3D); "largest" counts voxels (all voxels
of an image have the same volume).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
from scipy import ndimage

from segkit.errors import UserError
from segkit.io.image import image_suffix, read_image
from segkit.io.parallel import parallel_map
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


def _postprocess_file(paths: tuple[Path, Path], decision: dict) -> str | None:
    """Post-process one label file into its output path; returns an error message or None."""
    from segkit.inference.writing import write_label_like

    source, target = paths
    try:
        image = read_image(source)
        if not np.issubdtype(image.array.dtype, np.integer):
            raise UserError("label map holds non-integer voxel type " + str(image.array.dtype), source)
        # the input's own header is reused, so the output's geometry equals the input's bit for bit
        write_label_like(apply_postprocessing(image.array, decision), image.geometry, target, reference=source)
        return None
    except UserError as err:
        return str(err)


def postprocess_folder(input_dir: str | Path, output_dir: str | Path, decision: dict, num_workers: int = 1) -> list[Path]:
    """Apply a decision to every label map of a folder, writing each output atomically with its geometry."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise UserError("input folder not found", input_dir)
    sources = [p for p in sorted(input_dir.iterdir()) if p.is_file() and image_suffix(p) and not p.name.startswith(".")]
    if not sources:
        raise UserError("no label maps found", input_dir)
    pairs = [(source, output_dir / source.name) for source in sources]
    errors = [e for e in parallel_map(partial(_postprocess_file, decision=decision), pairs, num_workers,
                                      desc="postprocess") if e]
    if errors:
        more = f" (and {len(errors) - 1} more file(s) failed)" if len(errors) > 1 else ""
        raise UserError(errors[0] + more)
    return [target for _, target in pairs]
