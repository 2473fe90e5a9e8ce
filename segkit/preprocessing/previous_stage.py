"""A cascade stage's extra input: the previous stage's label map, brought into this stage's preprocessed space.

The previous stage (`3d_lowres`) predicts a label map on the case's original voxel grid (its
cross-validation predictions in training, its prediction of the same case at inference). The
cascade stage (`3d_cascade_fullres`) gets it as extra input channels: the label map takes the
same reorientation, crop and resampling as the images did (`previous_labels_into`, with the
properties `preprocess_arrays` returned for this case), then becomes one-hot with one channel
per foreground class or region (`one_hot_previous`; `segkit.plans.previous_stage_classes`).
Training and prediction both go through these two functions, so the network sees the same
kind of input in both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segkit.preprocessing.crop import box_slices
from segkit.preprocessing.orientation import Reorientation
from segkit.preprocessing.resample import resample_labels


def previous_labels_into(labels: np.ndarray, properties: dict) -> np.ndarray:
    """A (z, y, x) label map on the original grid (stored order) -> int16 on this case's preprocessed grid."""
    labels = np.asarray(labels)
    expected = [int(n) for n in properties["shape_before_crop"]]
    orientation = properties.get("orientation")
    reorientation = Reorientation.from_json(orientation) if orientation else None
    canonical = reorientation.to_canonical(labels) if reorientation is not None else labels
    if list(canonical.shape) != expected:
        raise ValueError(f"previous-stage labels of shape {labels.shape} do not fit the case ({expected} canonical)")
    cropped = np.ascontiguousarray(canonical[box_slices(properties["crop_box"])], dtype=np.int16)
    return resample_labels(cropped, properties["shape_after_resample"], properties.get("separate_axis")).astype(
        np.int16, copy=False)


def one_hot_previous(labels: np.ndarray, classes: Sequence[Sequence[int]]) -> np.ndarray:
    """float32 (K, ...) masks of a label map: channel k is 1 where the label is one of classes[k]."""
    labels = np.asarray(labels)
    out = np.empty((len(classes), *labels.shape), dtype=np.float32)
    for channel, values in enumerate(classes):
        out[channel] = np.isin(labels, list(values))
    return out
