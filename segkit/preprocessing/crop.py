"""Crop to the nonzero region (union over channels) and paste results back into the full box."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from segkit.preprocessing.orientation import Reorientation

OUTSIDE_LABEL = -1


def nonzero_mask(images: np.ndarray) -> np.ndarray:
    """Voxels where any channel of a (C, z, y, x) array is nonzero."""
    return np.any(images != 0, axis=0)


def bounding_box(mask: np.ndarray) -> list[list[int]]:
    """[[start, stop], ...] per axis of the mask's True voxels; the whole array when the mask is empty."""
    box = []
    for axis in range(mask.ndim):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append([int(present[0]), int(present[-1]) + 1] if len(present) else [0, int(mask.shape[axis])])
    return box


def box_slices(box: Sequence[Sequence[int]]) -> tuple[slice, ...]:
    """Slices selecting a crop box."""
    return tuple(slice(int(start), int(stop)) for start, stop in box)


def crop_to_nonzero(images: np.ndarray, labels: np.ndarray | None = None,
                    reorientation: Reorientation | None = None) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Crop (C, z, y, x) images (and labels) to the nonzero box, optionally into the canonical frame.

    Returns the cropped images, a cropped int16 label map in which background voxels outside
    the (hole-filled) nonzero mask are OUTSIDE_LABEL (-1) -- a map of only 0/-1 when no labels
    are given -- and the crop box. With a reorientation the mask is found on the stored
    (contiguous) arrays, and the crop copy itself gathers the canonical order, so reorienting
    costs no extra pass over the data; the outputs and the box are then canonical.
    """
    mask = nonzero_mask(images)
    box = bounding_box(mask)
    # holes are enclosed, so filling inside the box equals filling the whole volume
    inside = ndimage.binary_fill_holes(mask[box_slices(box)])
    if reorientation is not None and not reorientation.is_identity:
        box = reorientation.box(box, mask.shape)
        images = reorientation.to_canonical(images)
        labels = None if labels is None else reorientation.to_canonical(np.asarray(labels))
        inside = reorientation.to_canonical(inside)
    region = box_slices(box)
    cropped = np.ascontiguousarray(images[(slice(None),) + region])
    if labels is None:
        seg = np.zeros(inside.shape, dtype=np.int16)
    else:
        seg = np.array(labels[region], dtype=np.int16, order="C")   # always a copy
    seg[(seg == 0) & ~inside] = OUTSIDE_LABEL
    return cropped, seg, box


def paste_into_box(cropped: np.ndarray, box: Sequence[Sequence[int]], full_shape: Sequence[int],
                   fill_values: Sequence[float]) -> np.ndarray:
    """Paste a (K, z, y, x) cropped array into a (K, full shape) array filled with one value per channel."""
    out = np.empty((cropped.shape[0],) + tuple(int(n) for n in full_shape), dtype=cropped.dtype)
    for channel, value in enumerate(fill_values):
        out[channel] = value
    out[(slice(None),) + box_slices(box)] = cropped
    return out
