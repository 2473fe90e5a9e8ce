"""Mirroring axes for augmentation and TTA: never mirror across the patient's left/right axis when
labels are lateralised (left/right pairs), because mirroring would swap the two classes of a pair.

Two policies. The plan's (nnU-Net's) mirrors every axis but that one. The anatomical policy
(`Recipe.mirroring = "anatomical"`, the short CPU recipe's) mirrors only across the body's plane of
symmetry: left/right, and nothing for lateralised labels. A head upside down or back to front
never occurs in a canonical (LPS) image, and in a few thousand CPU steps learning those views
costs the network what it needs for the real one: on the real-image benchmark the anatomical
policy raised held-out Dice from 0.70 to 0.80 at 1000 steps (docs/benchmarks.md).

Axes are those of the arrays the network sees. With canonical plans (every image reoriented to
LPS, `segkit.preprocessing.orientation`) the planner passes identity directions, so the
left/right axis is array axis 2 (x) for every case; only legacy (as-stored) fingerprints use
the median stored direction, which is right only when all cases are stored alike.
"""

from __future__ import annotations

import re

import numpy as np

from segkit.preprocessing.orientation import CANONICAL, PLANS_KEY

LEFT_RIGHT_AXIS = 2   # array axis (z, y, x) of the patient's left/right in the canonical frame

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


def configuration_array_axes(slice_axis: int | None) -> list[int]:
    """The array axes (z, y, x) a configuration's axes stand for: all three, or the two in a 2D slice."""
    return [a for a in range(3) if a != slice_axis] if slice_axis is not None else [0, 1, 2]


def _name_list(names: list[str]) -> str:
    """The first four names, comma-separated, with ', ...' when there are more."""
    return ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")


def mirror_axes_for(labels: dict, directions: list[list[float]], slice_axis: int | None = None) -> tuple[list[int], str | None]:
    """The configuration's mirror axes (its own axis numbering) and, when one is dropped, why."""
    axes = configuration_array_axes(slice_axis)
    lateral = lateralised_labels(labels)
    if not lateral or not directions or any(len(d) != 9 for d in directions):
        return list(range(len(axes))), None
    lr_axis = left_right_array_axis(directions)
    if lr_axis not in axes:
        return list(range(len(axes))), None
    kept = [i for i, a in enumerate(axes) if a != lr_axis]
    note = (f"not mirrored along array axis {lr_axis} (patient left/right): labels are lateralised "
            f"({_name_list(lateral)}) and mirroring would swap them")
    return kept, note


def anatomical_mirror_axes(plans: dict, entry: dict) -> tuple[list[int], str]:
    """The configuration's axes to mirror under the anatomical policy (its own axis numbering), and why.

    Only a canonical plan knows which array axis is left/right; an as-stored (legacy or imported)
    plan keeps its planned axes.
    """
    planned = [int(a) for a in entry.get("mirror_axes", [])]
    if plans.get(PLANS_KEY) != CANONICAL:
        return planned, "anatomical mirroring needs a canonical (LPS) plan: this one is as stored, planned axes kept"
    lateral = lateralised_labels(plans.get("labels", {}))
    if lateral:
        return [], f"anatomical mirroring: none (labels are lateralised: {_name_list(lateral)})"
    axes = configuration_array_axes(entry.get("slice_axis"))
    if LEFT_RIGHT_AXIS not in axes:
        return [], "anatomical mirroring: none (the left/right axis is the 2D slice axis)"
    return [axes.index(LEFT_RIGHT_AXIS)], "anatomical mirroring: left/right only (the body's plane of symmetry)"
