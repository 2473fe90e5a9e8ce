"""Per-epoch validation: whole cases through the prediction sliding window, so tile borders do not cost Dice."""

import contextlib

import numpy as np
import pytest
import torch

from segkit.inference.sliding_window import tile_slices
from segkit.training.loader import Case
from segkit.training.losses import build_loss
from segkit.training.validation import (
    dice_from_counts,
    estimate_validation_seconds,
    sampled_cases,
    validate,
    validation_tiles,
)

NUM_OUTPUTS = 3


class OneHotReader(torch.nn.Module):
    """'Predicts' the one-hot labels stored in the input channels, but calls the outer voxel shell of
    every tile it sees background: a network whose tile borders are unreliable (zero padding)."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        logits = 10.0 * x
        border = torch.ones_like(x[:, :1], dtype=torch.bool)
        border[(slice(None), slice(None)) + (slice(1, -1),) * (x.ndim - 2)] = False
        background = torch.zeros_like(logits)
        background[:, :1] = 10.0
        return [torch.where(border, background, logits)]     # a deep-supervision list, like the U-Nets


def _case(spatial_dims: int) -> Case:
    """Labels 0/1/2 with a block of class 1 crossing the middle of the volume and a class-2 block beside it;
    the data are the labels one-hot (z, y, x; 2D cases come with the slice axis first anyway)."""
    seg = np.zeros((12, 24, 24), np.int16)
    seg[3:9, 5:19, 6:18] = 1           # spans the tile border at y = x = 12 of non-overlapping 12-voxel tiles
    seg[3:9, 10:14, 19:22] = 2
    data = np.stack([seg == k for k in range(NUM_OUTPUTS)]).astype(np.float32)
    return Case("c0", data, seg)


@pytest.mark.parametrize("spatial_dims,patch", [(3, [6, 12, 12]), (2, [12, 12])])
def test_tile_borders_do_not_cut_structures(spatial_dims, patch):
    counts = validate(OneHotReader(), [_case(spatial_dims)], patch, spatial_dims, NUM_OUTPUTS, "softmax",
                      lambda seg: seg.astype(np.float32), build_loss("softmax", 1), torch.device("cpu"))
    dice = dice_from_counts(counts["tp"], counts["fp"], counts["fn"])
    # overlapping Gaussian-weighted tiles: every interior voxel is taken from a tile it is not at the border of
    assert dice == [1.0, 1.0]
    assert counts["cases"] == 1 and counts["loss"] < 0.1


def test_sparse_validation_counts_only_annotated_voxels():
    """With an ignore label, wrong predictions on unannotated voxels cost nothing; on annotated ones they do."""
    from segkit.training.targets import SegToTarget

    case = _case(3)
    predicted = case.seg.copy()
    predicted[:, :, :12] = 0                     # the network misses the left half of class 1
    case = Case("c0", np.stack([predicted == k for k in range(NUM_OUTPUTS)]).astype(np.float32), case.seg.copy())
    to_target = SegToTarget("softmax", ignore_label=3)
    dense = validate(OneHotReader(), [case], [6, 12, 12], 3, NUM_OUTPUTS, "softmax",
                     lambda seg: to_target(seg=seg)["target"], build_loss("softmax", 1), torch.device("cpu"))
    assert dice_from_counts(dense["tp"], dense["fp"], dense["fn"])[0] < 0.9
    case.seg[:, :, :12] = 3                      # the left half is not annotated
    sparse = validate(OneHotReader(), [case], [6, 12, 12], 3, NUM_OUTPUTS, "softmax",
                      lambda seg: to_target(seg=seg)["target"], build_loss("softmax", 1), torch.device("cpu"))
    assert dice_from_counts(sparse["tp"], sparse["fp"], sparse["fn"]) == [1.0, 1.0]
    assert sparse["fn"].sum() == 0 and np.isfinite(sparse["loss"])


def _large_case() -> Case:
    """A 40 x 48 x 48 case with one small block per class and its class_locations."""
    seg = np.zeros((40, 48, 48), np.int16)
    seg[2:6, 3:8, 3:8] = 1
    seg[30:36, 38:44, 40:45] = 2
    data = np.stack([seg == k for k in range(NUM_OUTPUTS)]).astype(np.float32)
    locations = {str(k): np.argwhere(seg == k)[:50].tolist() for k in (1, 2)}
    return Case("big", data, seg, {"class_locations": locations})


def test_sampled_regions_cover_every_class_and_cost_a_fraction_of_the_tiles():
    case, patch = _large_case(), [8, 8, 8]
    regions = sampled_cases([case], patch, 0.25, seed=0)
    again = sampled_cases([case], patch, 0.25, seed=0)
    assert len(again) == len(regions) and all(np.array_equal(a.seg, b.seg) for a, b in zip(regions, again))
    assert {1, 2} <= set(np.unique(np.concatenate([r.seg.ravel() for r in regions])))
    whole = validation_tiles([case], patch, 3)
    assert whole == len(tile_slices(case.seg.shape, patch, 0.5))
    assert 0.1 * whole <= validation_tiles(regions, patch, 3) <= 0.5 * whole
    assert len(sampled_cases([case], patch, 0.001, seed=0)) == 1          # at least one region per case
    assert sampled_cases([case], patch, 1.0, seed=0)[0] is case


def test_validation_cost_is_estimated_without_running_a_pass():
    case = _large_case()
    seconds = estimate_validation_seconds(OneHotReader(), [case], [8, 8, 8], 3, NUM_OUTPUTS, torch.device("cpu"),
                                          contextlib.nullcontext)
    assert seconds > 0
