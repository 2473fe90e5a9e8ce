"""Targets from label maps: outside-mask voxels, region unions, downsampling (max-pooled regions, the ignore rule)."""

import numpy as np

from segkit.training.losses import (
    IGNORE_TARGET,
)
from segkit.training.targets import SegToTarget, downsample_target


def test_outside_mask_label_becomes_background_and_regions_are_unions():
    seg = np.array([[-1, 0, 1, 2, 3]], dtype=np.float32).reshape(1, 1, 1, 1, 5)
    softmax = SegToTarget("softmax")(seg=seg.copy())["target"]
    assert softmax.ravel().tolist() == [0, 0, 1, 2, 3]
    regions = SegToTarget("sigmoid", [[1, 2, 3], [1, 3], [3]])(seg=seg.copy())["target"]
    assert regions.shape == (1, 3, 1, 1, 5)
    assert regions[0, :, 0, 0].tolist() == [[0, 0, 1, 1, 1], [0, 0, 1, 0, 1], [0, 0, 0, 0, 1]]


def test_region_targets_are_max_pooled_and_labels_nearest_sampled():
    regions = np.zeros((1, 1, 4, 4, 4), dtype=np.float32)
    regions[0, 0, 3, 3, 3] = 1                   # one voxel of a small region survives max-pooling
    pooled = downsample_target(regions, [2, 2, 2], "sigmoid")
    assert pooled.shape == (1, 1, 2, 2, 2) and pooled[0, 0, 1, 1, 1] == 1 and pooled.sum() == 1
    labels = np.arange(16, dtype=np.float32).reshape(1, 1, 1, 4, 4)
    assert downsample_target(labels, [1, 2, 2], "softmax").ravel().tolist() == [0, 2, 8, 10]


def test_coarse_voxel_is_ignored_only_when_all_its_fine_voxels_are():
    fine = np.full((1, 1, 4, 4, 4), IGNORE_TARGET, dtype=np.float32)
    fine[0, 0, 1, 1, 1] = 2           # block (0,0,0): nearest sample (0,0,0) is ignored, one voxel annotated
    fine[0, 0, 2, 2, 2] = 3           # block (1,1,1): its nearest sample itself
    fine[0, 0, 0:2, 2:4, 0:2] = 0     # block (0,1,0): fully annotated background
    coarse = downsample_target(fine, [2, 2, 2], "softmax")
    assert coarse[0, 0, 0, 0, 0] == 2 and coarse[0, 0, 1, 1, 1] == 3 and coarse[0, 0, 0, 1, 0] == 0
    assert int((coarse == IGNORE_TARGET).sum()) == 8 - 3
    # anisotropic scale, uneven sizes: still the block rule
    fine = np.full((1, 1, 3, 6, 5), IGNORE_TARGET, dtype=np.float32)
    fine[0, 0, 2, 5, 4] = 1
    coarse = downsample_target(fine, [1, 2, 2], "softmax")
    assert coarse.shape == (1, 1, 3, 3, 3) and coarse[0, 0, 2, 2, 2] == 1 and (coarse == 1).sum() == 1
    # dense targets are untouched by the rule
    labels = np.arange(16, dtype=np.float32).reshape(1, 1, 1, 4, 4)
    assert downsample_target(labels, [1, 2, 2], "softmax").ravel().tolist() == [0, 2, 8, 10]
    # regions: the annotated channel is max-pooled, i.e. ignored only if all fine voxels are
    regions = np.zeros((1, 2, 2, 2, 2), dtype=np.float32)
    regions[0, 1, 1, 1, 1] = 1
    assert downsample_target(regions, [2, 2, 2], "sigmoid")[0, :, 0, 0, 0].tolist() == [0, 1]
