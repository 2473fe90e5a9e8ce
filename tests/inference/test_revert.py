"""Slab-wise revert: bit-identical to reverting all class probabilities at once, with bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_fixtures import tiny_plans

from segkit.inference.predictor import probabilities_in_place
from segkit.inference.regions import labels_for_plans
from segkit.inference.revert import MemberOutput, labels_on_input_grid, slab_rows
from segkit.preprocessing.pipeline import preprocess_images, revert_to_original

# (original spacing, shape, target spacing): down- and upsampling, a coarse (nearest) z axis, no resampling
GRIDS = [((3.3, 0.9, 1.1), (13, 27, 22), [2.5, 1.0, 1.0]), ((1.0, 1.0, 1.0), (20, 30, 25), [2.5, 1.0, 1.0]),
         ((5.0, 0.5, 0.5), (9, 40, 41), [1.0, 1.0, 1.0]), ((1.0, 1.0, 1.0), (17, 19, 23), [1.0, 1.0, 1.0]),
         ((0.6, 3.0, 0.6), (25, 8, 30), [0.6, 0.6, 0.6])]


def _member(seed: int, spacing, shape, target, region_based: bool) -> tuple[MemberOutput, dict]:
    """Random probabilities in the preprocessed space of a cropped image."""
    rng = np.random.default_rng(seed)
    plans = tiny_plans(1, region_based)
    plans["configurations"]["3d_fullres"]["target_spacing"] = target
    images = rng.normal(size=(1, *shape)).astype(np.float32)
    images[:, :2] = 0           # a crop box smaller than the image
    images[:, :, -3:] = 0
    data, properties = preprocess_images(images, spacing, plans, "3d_fullres")
    probabilities = rng.random((plans["num_outputs"], *data.shape[1:])).astype(np.float32)
    return MemberOutput(probabilities, properties, plans, "3d_fullres"), plans


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("region_based", [False, True])
def test_slabs_equal_the_whole_volume_revert(grid, region_based):
    member, plans = _member(0, *grid, region_based)
    full = revert_to_original(member.probabilities, member.properties, plans, "3d_fullres")
    expected = labels_for_plans(full, plans)
    for slab_bytes in (1, 20_000, 1 << 40):   # one row per slab, a few rows, everything at once
        labels, kept = labels_on_input_grid([member], plans, np.float32, slab_bytes)
        np.testing.assert_array_equal(labels, expected)
        np.testing.assert_array_equal(kept, full)
    labels, kept = labels_on_input_grid([member], plans, None, 1)
    assert kept is None and np.array_equal(labels, expected)


def test_members_are_averaged_on_the_input_grid():
    first, plans = _member(1, *GRIDS[0], False)
    second, _ = _member(2, *GRIDS[0], False)
    mean = (revert_to_original(first.probabilities, first.properties, plans, "3d_fullres")
            + revert_to_original(second.probabilities, second.properties, plans, "3d_fullres")) / 2
    labels, kept = labels_on_input_grid([first, second], plans, np.float32, 30_000)
    np.testing.assert_array_equal(kept, mean)
    np.testing.assert_array_equal(labels, labels_for_plans(mean, plans))


def test_slab_rows_bound_the_slab():
    assert slab_rows(14, (300, 512, 512), 128 * 1024 ** 2) == 9   # 9 x 14 x 512 x 512 x 4 bytes = 126 MiB
    assert slab_rows(14, (300, 4096, 4096), 1) == 1


@pytest.mark.parametrize("mode", ["softmax", "sigmoid"])
def test_in_place_probabilities_equal_torchs(mode, monkeypatch):
    monkeypatch.setattr("segkit.inference.predictor.SOFTMAX_CHUNK_VOXELS", 4096)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # torch's whole-volume softmax itself varies in the last bit with the thread split
    try:
        logits = torch.randn(14, 17, 23, 29, generator=torch.Generator().manual_seed(0)) * 4
        expected = torch.sigmoid(logits) if mode == "sigmoid" else torch.softmax(logits, dim=0)
        result = probabilities_in_place(logits.clone(), mode)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(result, expected)
