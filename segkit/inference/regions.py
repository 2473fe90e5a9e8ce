"""Network outputs -> label maps: argmax for softmax plans, painted regions for sigmoid plans."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segkit.errors import UserError
from segkit.plans import LabelCoding

REGION_THRESHOLD = 0.5


def label_dtype(max_value: int) -> np.dtype:
    """Smallest unsigned/signed type that holds label values up to max_value."""
    return np.dtype(np.uint8) if max_value < 256 else np.dtype(np.int16)


def softmax_channel_values(outputs: dict[str, list[int]]) -> list[int]:
    """Label value of each softmax output channel: background 0, then each output's value."""
    return [0] + [int(values[0]) for values in outputs.values()]


def regions_to_labels(region_probabilities: np.ndarray, regions_class_order: Sequence[int],
                      threshold: float = REGION_THRESHOLD) -> np.ndarray:
    """Paint (R, z, y, x) region probabilities > threshold, in order, with regions_class_order's values."""
    if len(regions_class_order) != region_probabilities.shape[0]:
        raise UserError(f"regions_class_order has {len(regions_class_order)} entries for "
                        f"{region_probabilities.shape[0]} region outputs")
    labels = np.zeros(region_probabilities.shape[1:], dtype=label_dtype(max(regions_class_order, default=0)))
    for probabilities, value in zip(region_probabilities, regions_class_order):
        labels[probabilities > threshold] = value
    return labels


def labels_to_regions(labels: np.ndarray, regions: dict[str, list[int]]) -> np.ndarray:
    """Boolean (R, z, y, x) region masks of a label map (a region is the union of its label values)."""
    return np.stack([np.isin(labels, values) for values in regions.values()])


def probabilities_to_labels(probabilities: np.ndarray, label_mode: str, outputs: dict[str, list[int]],
                            regions_class_order: Sequence[int] | None = None) -> np.ndarray:
    """(K, z, y, x) probabilities -> (z, y, x) label map in the dataset's label values."""
    if label_mode == "sigmoid":
        if not regions_class_order:
            raise UserError("region-based (sigmoid) model without regions_class_order")
        return regions_to_labels(probabilities, regions_class_order)
    values = softmax_channel_values(outputs)
    if len(values) != probabilities.shape[0]:
        raise UserError(f"model has {probabilities.shape[0]} outputs but its plans list {len(values)} classes")
    winner = np.argmax(probabilities, axis=0)
    lookup = np.asarray(values, dtype=label_dtype(max(values)))
    return lookup[winner]


def labels_for_plans(probabilities: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """probabilities_to_labels with a plan's label coding (`Plans.label_coding`, or a probability file's)."""
    return probabilities_to_labels(probabilities, coding.label_mode, coding.outputs, coding.regions_class_order)
