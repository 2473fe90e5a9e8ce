"""Slab-wise revert: bit-identical to reverting all class probabilities at once, with bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_fixtures import tiny_plans

from segkit.inference.predictor import probabilities_in_place
from segkit.inference.regions import labels_for_plans
from segkit.inference.revert import MemberOutput, labels_on_input_grid, slab_rows
from segkit.plans import Plans
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
    plans = Plans.from_json(plans)
    data, properties = preprocess_images(images, spacing, plans, "3d_fullres")
    probabilities = rng.random((plans.num_outputs, *data.shape[1:])).astype(np.float32)
    return MemberOutput(probabilities, properties, plans, "3d_fullres"), plans


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("region_based", [False, True])
def test_slabs_equal_the_whole_volume_revert(grid, region_based):
    member, plans = _member(0, *grid, region_based)
    full = revert_to_original(member.probabilities, member.properties, plans, "3d_fullres")
    expected = labels_for_plans(full, plans.label_coding)
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
    np.testing.assert_array_equal(labels, labels_for_plans(mean, plans.label_coding))


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


def test_outputs_on_the_aligned_grid_come_back_onto_the_tilted_input_grid():
    from orientation_data import WORST_SYMMETRIC

    from segkit.inference.revert import labels_from_aligned
    from segkit.io.image import Geometry
    from segkit.preprocessing.oblique import AxisAlignment, aligned_grid

    tilted = Geometry((1.0, 1.2, 2.0), (-10.0, 4.0, 30.0), WORST_SYMMETRIC, (20, 24, 14))
    grid = aligned_grid(tilted, (1.0, 1.0, 1.0))
    plans = Plans.from_json(tiny_plans(1))

    def points(geometry: Geometry) -> np.ndarray:
        index = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in geometry.size], indexing="ij"), axis=-1)
        matrix = np.reshape(geometry.direction, (3, 3)) * np.asarray(geometry.spacing)
        return np.transpose(index @ matrix.T + np.asarray(geometry.origin), (2, 1, 0, 3))

    centre = points(tilted).reshape(-1, 3).mean(axis=0)
    # softmax outputs on the aligned grid: a ball of label 1 inside a shell of label 2 (physical space)
    radius = np.linalg.norm(points(grid) - centre, axis=-1)
    one_hot = np.stack([radius >= 9, radius < 5, (radius >= 5) & (radius < 9)]).astype(np.float32)
    probabilities = np.concatenate([one_hot, np.zeros((plans.num_outputs - 3, *one_hot.shape[1:]), np.float32)])
    alignment = AxisAlignment(tilted, grid, 48.19, 5.0)
    labels, kept = labels_from_aligned(probabilities, alignment, plans.label_coding, np.float32)
    assert labels.shape == tilted.array_shape and kept.shape == (plans.num_outputs, *tilted.array_shape)
    np.testing.assert_allclose(kept.sum(axis=0), 1.0, atol=1e-5)
    expected = np.where(np.linalg.norm(points(tilted) - centre, axis=-1) < 5, 1, 0)
    expected[(np.linalg.norm(points(tilted) - centre, axis=-1) >= 5)
             & (np.linalg.norm(points(tilted) - centre, axis=-1) < 9)] = 2
    assert np.mean(labels == expected) > 0.97                     # only voxels on a boundary may differ
    small, _ = labels_from_aligned(probabilities, alignment, plans.label_coding, None, slab_bytes=4 * 8 * 24 * 20 * 3)
    np.testing.assert_array_equal(small, labels)                  # slab by slab = all at once
