"""`segkit postprocess`: a post-processing decision applied to every label map of a folder.

The decision format and the label-map operation are `segkit.models.postprocessing`'s.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from segkit.errors import UserError
from segkit.io.image import image_suffix, read_image
from segkit.io.parallel import parallel_map
from segkit.models.postprocessing import apply_postprocessing


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
