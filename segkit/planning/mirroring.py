"""Mirroring axes for augmentation and TTA. Across the patient's left/right axis a mirror turns a left
structure into a right one, so for lateralised labels that axis is mirrored only with the pairs
swapped: every lateralised label needs its partner (found from the names, `label_pairs`, written
to plans.json as `mirror_pairs`), and the configuration records the axis whose flip swaps them
(`mirror_swap_axis`). A lateralised label without a partner, or a region-based plan, keeps the
old rule: that axis is not mirrored at all.

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

import numpy as np

from segkit.io.segment_coding import split_side
from segkit.plans import (
    SWAP_KEY,
    Configuration,
    Plans,
    canonical_orientation_of,
    ignore_label_of,
    label_mode_of,
    labels_of,
    mirror_pairs_of,
    outputs_of,
)
from segkit.preprocessing.orientation import CANONICAL

LEFT_RIGHT_AXIS = 2   # array axis (z, y, x) of the patient's left/right in the canonical frame

PAIRS_KEY = "mirror_pairs"          # plans: [[left value, right value], ...] (read by segkit.plans.mirror_pairs_of)


def lateralised_labels(labels: dict) -> list[str]:
    """Label names that say left or right ("left", "Right", "hippocampus_l", "R_caudate", "lh.white", but not
    "lateral" or "rhombus"): the side words segment coding reads too (io.segment_coding.split_side)."""
    return [name for name in labels if split_side(name)[0] is not None]


def _side_and_structure(name: str) -> tuple[str, str] | None:
    """('left' or 'right', the name's other words) for a lateralised name, else None."""
    side, words = split_side(name)
    return None if side is None else (side, " ".join(words))


def label_pairs(labels: dict) -> tuple[list[list[int]], list[str]]:
    """Left/right label pairs ([left value, right value]) matched by name, and lateralised names left without one.

    "Left-Hippocampus" pairs with "Right-Hippocampus", "caudate_l" with "caudate_r", "lh.white" with
    "rh.white". A structure named twice on one side, or a value that is not one integer, pairs nothing.
    """
    sides: dict[str, dict[str, list[tuple[str, object]]]] = {}
    for name, value in labels.items():
        parsed = _side_and_structure(name)
        if parsed is not None:
            sides.setdefault(parsed[1], {"left": [], "right": []})[parsed[0]].append((str(name), value))
    pairs, unpaired = [], []
    for found in sides.values():
        left, right = found["left"], found["right"]
        if len(left) == 1 and len(right) == 1 and all(isinstance(v, int) for _, v in left + right):
            pairs.append([int(left[0][1]), int(right[0][1])])   # type: ignore[call-overload]
        else:
            unpaired += [name for name, _ in left + right]
    return sorted(pairs), unpaired


def value_swap_table(pairs: list[list[int]], max_value: int) -> np.ndarray:
    """Lookup table over label values 0..max_value that exchanges the two values of every pair."""
    table = np.arange(max_value + 1)
    for left, right in pairs:
        if max(left, right) <= max_value:
            table[left], table[right] = right, left
    return table


def output_swap_order(outputs: dict, pairs: list[list[int]], label_mode: str) -> list[int] | None:
    """Softmax output channel order after a left/right mirror (channel 0 background, then `outputs`), or None.

    None when the plan has no pairs or predicts regions (sigmoid outputs may combine both sides).
    """
    if not pairs or label_mode != "softmax":
        return None
    values = [list(v) if isinstance(v, (list, tuple)) else [v] for v in outputs.values()]
    channel_of = {int(v[0]): index + 1 for index, v in enumerate(values) if len(v) == 1}
    order = list(range(len(values) + 1))
    for left, right in pairs:
        if left in channel_of and right in channel_of:
            order[channel_of[left]], order[channel_of[right]] = channel_of[right], channel_of[left]
    return order


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


def _swap_note(pairs: list[list[int]]) -> str:
    """The note of a left/right mirror that swaps pairs."""
    return f"left/right mirrored with the {len(pairs)} left/right label pair(s) swapped"


def _unpaired_note(labels: dict, pairs_possible: bool) -> str:
    """Why a lateralised plan does not mirror left/right: unpaired names, or region outputs."""
    if not pairs_possible:
        return "region-based outputs may combine both sides, so pairs are not swapped"
    _, unpaired = label_pairs(labels)
    return f"no left/right partner found by name for {_name_list(unpaired)}"


def mirror_axes_for(labels: dict, directions: list[list[float]], slice_axis: int | None = None,
                    swap_pairs: bool = True) -> tuple[list[int], str | None, int | None]:
    """The configuration's mirror axes (its own numbering), why one is dropped or swapped, and the swap axis.

    swap_pairs: whether left/right pairs may be swapped (softmax outputs); when every lateralised
    label has its partner, the left/right axis is kept and its flip swaps the pairs.
    """
    axes = configuration_array_axes(slice_axis)
    lateral = lateralised_labels(labels)
    everything = list(range(len(axes)))
    if not lateral or not directions or any(len(d) != 9 for d in directions):
        return everything, None, None
    lr_axis = left_right_array_axis(directions)
    if lr_axis not in axes:
        return everything, None, None
    pairs, unpaired = label_pairs(labels)
    if swap_pairs and pairs and not unpaired:
        return everything, f"{_swap_note(pairs)} (array axis {lr_axis})", axes.index(lr_axis)
    kept = [i for i, a in enumerate(axes) if a != lr_axis]
    note = (f"not mirrored along array axis {lr_axis} (patient left/right): labels are lateralised "
            f"({_name_list(lateral)}) and mirroring would swap them; {_unpaired_note(labels, swap_pairs)}")
    return kept, note, None


def anatomical_mirror_axes(plans: Plans, entry: Configuration) -> tuple[list[int], str, int | None]:
    """The configuration's axes to mirror under the anatomical policy (its own numbering), why, and the swap axis.

    Only a canonical plan knows which array axis is left/right; an as-stored (legacy or imported)
    plan keeps its planned axes (and swap). Lateralised labels are mirrored only when the plan
    pairs every one of them (`mirror_pairs`), and then the flip swaps the pairs.
    """
    planned = list(entry.mirror_axes)
    if canonical_orientation_of(plans) != CANONICAL:
        return (planned, "anatomical mirroring needs a canonical (LPS) plan: this one is as stored, planned axes kept",
                entry.mirror_swap_axis)
    axes = configuration_array_axes(entry.slice_axis)
    if LEFT_RIGHT_AXIS not in axes:
        return [], "anatomical mirroring: none (the left/right axis is the 2D slice axis)", None
    axis = axes.index(LEFT_RIGHT_AXIS)
    labels = labels_of(plans)
    lateral = lateralised_labels(labels)
    if not lateral:
        return [axis], "anatomical mirroring: left/right only (the body's plane of symmetry)", None
    pairs, unpaired = label_pairs(labels)
    if mirror_pairs_of(plans) and not unpaired and not entry.previous_stage:
        return [axis], f"anatomical mirroring: {_swap_note(pairs)}", axis
    if entry.previous_stage:
        why = "a cascade stage's one-hot input channels are not swapped"
    elif mirror_pairs_of(plans) is None and not unpaired and label_mode_of(plans) == "softmax":
        why = "the plan predates left/right pair swapping (no mirror_pairs): re-plan to mirror with swapped pairs"
    else:
        why = _unpaired_note(labels, label_mode_of(plans) == "softmax")
    return [], f"anatomical mirroring: none (labels are lateralised: {_name_list(lateral)}; {why})", None


def plan_mirror_pairs(labels: dict, label_mode: str) -> list[list[int]]:
    """plans.json's `mirror_pairs`: the left/right label pairs of a softmax plan ([] for regions)."""
    return label_pairs(labels)[0] if label_mode == "softmax" else []


def training_swap(plans: Plans, entry: Configuration) -> tuple[int, np.ndarray] | None:
    """(axis, label value table) when the configuration's flip along that axis swaps left/right pairs, else None."""
    axis, pairs = entry.mirror_swap_axis, mirror_pairs_of(plans) or []
    if axis is None or not pairs:
        return None
    largest = max([int(max(pair)) for pair in pairs] + [ignore_label_of(plans) or 0])
    return int(axis), value_swap_table(pairs, largest)


def inference_swap(plans: Plans, entry: Configuration) -> tuple[int, tuple[int, ...]] | None:
    """(axis, output channel order) for TTA when the configuration's flip along that axis swaps pairs, else None."""
    axis = entry.mirror_swap_axis
    order = output_swap_order(outputs_of(plans), mirror_pairs_of(plans) or [], label_mode_of(plans))
    if axis is None or order is None:
        return None
    return int(axis), tuple(order)


def without_pair_swap(entry: Configuration) -> tuple[Configuration, str | None]:
    """The configuration without its swapping left/right axis (the rule before pair swapping), and why; unchanged if none."""
    axis = entry.mirror_swap_axis
    if axis is None:
        return entry, None
    note = (f"left/right (axis {axis}) not mirrored: the labels are lateralised and the recipe does not swap "
            "the pairs (swap_pairs=false)")
    return entry.replace(drop=(SWAP_KEY,), mirror_axes=[a for a in entry.mirror_axes if a != axis],
                         mirror_note=note), note
