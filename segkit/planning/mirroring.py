"""Mirroring axes for augmentation and TTA: never mirror across the patient's left/right axis when
labels are lateralised (left/right pairs), because mirroring would swap the two classes of a pair.

Axes are those of the arrays the network sees. With canonical plans (every image reoriented to
LPS, `segkit.preprocessing.orientation`) the planner passes identity directions, so the
left/right axis is array axis 2 (x) for every case; only legacy (as-stored) fingerprints use
the median stored direction, which is right only when all cases are stored alike.
"""

from __future__ import annotations

import re

import numpy as np

# "left", "Right", "hippocampus_l", "R_caudate", "lh.white", "thalamus-rh" ... but not "lateral" or "rhombus"
LATERAL_NAME = re.compile(r"(?:^|[^a-z])(left|right|l|r|lh|rh)(?:$|[^a-z])", re.IGNORECASE)


def lateralised_labels(labels: dict) -> list[str]:
    """Label names that say left or right (word-ish boundaries, case-insensitive)."""
    return [name for name in labels if LATERAL_NAME.search(str(name).replace("_", " "))]


def left_right_array_axis(directions: list[list[float]]) -> int:
    """Array axis (z, y, x order) most aligned with the physical x (LPS left/right) axis, by median direction.

    ITK's direction is a row-major 3x3 matrix whose column i is the physical direction of index
    axis i; array axis a is ITK index axis 2 - a.
    """
    matrix = np.median(np.array(directions, dtype=float), axis=0).reshape(3, 3)
    index_axis = int(np.argmax(np.abs(matrix[0, :])))  # x component of each column
    return 2 - index_axis


def mirror_axes_for(labels: dict, directions: list[list[float]], slice_axis: int | None = None) -> tuple[list[int], str | None]:
    """The configuration's mirror axes (its own axis numbering) and, when one is dropped, why."""
    axes = [a for a in range(3) if a != slice_axis] if slice_axis is not None else [0, 1, 2]
    lateral = lateralised_labels(labels)
    if not lateral or not directions or any(len(d) != 9 for d in directions):
        return list(range(len(axes))), None
    lr_axis = left_right_array_axis(directions)
    if lr_axis not in axes:
        return list(range(len(axes))), None
    kept = [i for i, a in enumerate(axes) if a != lr_axis]
    note = (f"not mirrored along array axis {lr_axis} (patient left/right): labels are lateralised "
            f"({', '.join(lateral[:4])}{', ...' if len(lateral) > 4 else ''}) and mirroring would swap them")
    return kept, note
