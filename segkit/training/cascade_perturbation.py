"""A cascade stage's input: the previous stage's labels as one-hot channels, perturbed in training as nnU-Net does.

Random morphology (dilation / erosion / closing / opening with a ball) and removal of small
connected components, so the refinement network does not trust its input blindly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from batchgenerators.transforms.abstract_transforms import AbstractTransform
from scipy import ndimage

from segkit.preprocessing.previous_stage import one_hot_previous

# nnU-Net's cascade perturbations of the previous stage's one-hot channels
MORPHOLOGY_P_PER_SAMPLE = 0.4
MORPHOLOGY_RADIUS = (1.0, 8.0)
MORPHOLOGY_OPERATIONS = ("dilation", "erosion", "closing", "opening")
COMPONENT_REMOVAL_P_PER_SAMPLE = 0.2
COMPONENT_MAX_FRACTION = 0.15


def ball(radius: float, dims: int) -> np.ndarray:
    """Boolean ball (disc in 2D) of a possibly fractional radius: the offsets within `radius` of the centre."""
    reach = int(math.floor(radius))
    grid = np.meshgrid(*[np.arange(-reach, reach + 1)] * dims, indexing="ij")
    squared = np.zeros(grid[0].shape, dtype=np.float64)
    for axis in grid:
        squared += axis.astype(np.float64) ** 2
    return squared <= radius ** 2


def morphology(mask: np.ndarray, operation: str, radius: float) -> np.ndarray:
    """Binary dilation / erosion / closing / opening with a ball, computed in the mask's box plus a margin.

    Outside that margin every operation's result is 0 (the mask is empty there and erosion
    treats the border as background), so the box gives the whole-volume result at a fraction
    of the cost.
    """
    structure = ball(radius, mask.ndim)
    margin = structure.shape[0] // 2 + 1
    present = np.nonzero(mask)
    box = tuple(slice(max(int(p.min()) - margin, 0), min(int(p.max()) + margin + 1, n))
                for p, n in zip(present, mask.shape))
    part = mask[box]
    operate = {"dilation": ndimage.binary_dilation, "erosion": ndimage.binary_erosion,
               "closing": ndimage.binary_closing, "opening": ndimage.binary_opening}[operation]
    out = np.zeros_like(mask)
    out[box] = operate(part, structure=structure, border_value=0)
    if operation == "closing":   # scipy's closing erodes the padded border: keep every original voxel
        out[box] |= part
    return out


class PreviousStageToData(AbstractTransform):
    """seg channel 1 (the previous stage's labels, moved like the labels) -> one-hot channels appended to data.

    A cascade stage's input. With `perturb` (training), nnU-Net's cascade augmentation follows, so
    the refinement network does not trust its input blindly: per sample with p 0.4 each channel,
    in random order, gets a random binary dilation / erosion / closing / opening with a ball of
    radius 1-8 voxels (voxels a channel gains are taken from the others); per sample with p 0.2
    each channel loses one random connected component among those under 15 % of the patch.
    Every draw comes from numpy's global generator (seeded per batch by the loader).
    """

    def __init__(self, classes: Sequence[Sequence[int]], perturb: bool = True):
        self.classes, self.perturb = [list(c) for c in classes], perturb

    def __call__(self, **data_dict):
        seg = data_dict["seg"]
        previous = np.rint(seg[:, 1]).astype(np.int16)
        data_dict["seg"] = np.ascontiguousarray(seg[:, :1])
        one_hot = np.ascontiguousarray(np.moveaxis(one_hot_previous(previous, self.classes), 0, 1))
        if self.perturb:
            for sample in one_hot:
                self._change_shapes(sample)
                self._remove_components(sample)
        data = data_dict["data"]
        data_dict["data"] = np.concatenate([data, one_hot.astype(data.dtype, copy=False)], 1)
        return data_dict

    def _change_shapes(self, sample: np.ndarray) -> None:
        """Random morphology per channel (p per sample), keeping the channels exclusive where one grows."""
        if np.random.uniform() >= MORPHOLOGY_P_PER_SAMPLE:
            return
        channels = list(np.random.permutation(len(sample)))
        for channel in channels:
            operation = MORPHOLOGY_OPERATIONS[int(np.random.randint(len(MORPHOLOGY_OPERATIONS)))]
            radius = float(np.random.uniform(*MORPHOLOGY_RADIUS))
            mask = sample[channel] > 0
            if not mask.any():
                continue
            changed = morphology(mask, operation, radius)
            sample[channel] = changed
            gained = changed & ~mask
            for other in channels:
                if other != channel:
                    sample[other][gained] = 0

    def _remove_components(self, sample: np.ndarray) -> None:
        """Drop one random small connected component per channel (p per sample)."""
        if np.random.uniform() >= COMPONENT_REMOVAL_P_PER_SAMPLE:
            return
        limit = COMPONENT_MAX_FRACTION * sample[0].size
        for channel in range(len(sample)):
            mask = sample[channel] > 0
            if not mask.any():
                continue
            labelled, count = ndimage.label(mask)
            sizes = np.bincount(labelled.ravel())[1:]
            small = [index + 1 for index in range(count) if sizes[index] < limit]
            if small:
                sample[channel][labelled == small[int(np.random.randint(len(small)))]] = 0
