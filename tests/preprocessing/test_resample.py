"""Resampling: spline/linear equal scipy's, spacing -> shape, one-hot labels, separate-z."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from segkit.preprocessing.resample import (
    new_shape_for_spacing,
    resample_channels,
    resample_labels,
    resample_volume,
    separate_axis,
)


@pytest.mark.parametrize("new_shape", [(25, 40, 20), (13, 30, 31), (40, 15, 25)])
def test_separable_cubic_and_linear_equal_scipy_zoom(new_shape):
    volume = np.random.default_rng(0).random((20, 30, 25)).astype(np.float32)
    factors = np.array(new_shape) / volume.shape
    cubic_ref = ndimage.zoom(volume, factors, order=3, grid_mode=True, mode="mirror")
    linear_ref = ndimage.zoom(volume, factors, order=1, grid_mode=True, mode="nearest")
    np.testing.assert_allclose(resample_volume(volume, new_shape, 3), cubic_ref, atol=2e-6)
    np.testing.assert_allclose(resample_volume(volume, new_shape, 1), linear_ref, atol=2e-6)


def test_new_shape_follows_spacing_ratio():
    assert new_shape_for_spacing((30, 100, 80), (3.0, 0.8, 0.8), (1.5, 1.0, 1.0)) == (60, 80, 64)
    assert new_shape_for_spacing((1, 10, 10), (1.0, 1.0, 1.0), (5.0, 1.0, 1.0)) == (1, 10, 10)
    data = np.random.default_rng(1).random((2, 12, 20, 20)).astype(np.float32)
    out = resample_channels(data, new_shape_for_spacing(data.shape[1:], (3.0, 1.0, 1.0), (2.0, 1.25, 0.8)))
    assert out.shape == (2, 18, 16, 25) and out.dtype == np.float32


def test_separate_axis_rule():
    assert separate_axis((5.0, 1.0, 1.0), (5.0, 1.0, 1.0)) == 0
    assert separate_axis((1.0, 1.0, 4.0), (1.0, 1.0, 2.0)) == 2
    assert separate_axis((2.0, 1.0, 1.0), (2.0, 1.0, 1.0)) is None
    assert separate_axis((2.0, 1.0, 1.0), (6.5, 1.0, 1.0)) == 0   # anisotropic target decides too
    assert separate_axis((4.0, 4.0, 1.0), (4.0, 4.0, 1.0)) is None  # two coarse axes: no single axis
    assert separate_axis((5.0, 1.0, 1.0), (5.0, 1.0, 1.0), threshold=6.0) is None


def test_separate_z_uses_nearest_along_the_coarse_axis():
    # every slice constant and distinct: nearest along z keeps exactly the slice values,
    # while a cubic spline across 5 mm slices would blend (and overshoot) them
    slice_values = np.array([0, 10, 50, 20, 80, 30, 5, 60], dtype=np.float32)
    volume = np.broadcast_to(slice_values[:, None, None], (8, 12, 12)).copy()
    new_shape = new_shape_for_spacing(volume.shape, (5.0, 1.0, 1.0), (3.0, 0.8, 0.8))
    axis = separate_axis((5.0, 1.0, 1.0), (3.0, 0.8, 0.8))
    separated = resample_volume(volume, new_shape, 3, coarse_axis=axis)
    assert separated.shape == new_shape
    for z in range(new_shape[0]):
        assert np.allclose(separated[z], separated[z, 0, 0], atol=1e-4)
        assert np.min(np.abs(slice_values - separated[z, 0, 0])) < 1e-4
    blended = resample_volume(volume, new_shape, 3)
    assert np.max(np.min(np.abs(blended[:, 6, 6][:, None] - slice_values[None]), axis=1)) > 1.0


def test_labels_equal_onehot_linear_argmax_and_keep_a_thin_line():
    rng = np.random.default_rng(3)
    labels = np.zeros((20, 30, 30), dtype=np.int16)
    labels[2:18, 4:26, 4:26] = 1
    labels[ndimage.gaussian_filter(rng.random(labels.shape), 2) > 0.52] = -1
    labels[8, 3:27, 12] = 2          # a 1-voxel-thin line along y
    new_shape = (25, 36, 36)
    out = resample_labels(labels, new_shape)
    values = np.unique(labels)
    scores = np.stack([resample_volume((labels == v).astype(np.float32), new_shape, 1) for v in values])
    chosen = np.take_along_axis(scores, np.searchsorted(values, out)[None], 0)[0]
    assert out.shape == new_shape and out.dtype == labels.dtype
    assert set(np.unique(out)) <= set(values.tolist())
    np.testing.assert_allclose(chosen, scores.max(axis=0), atol=1e-6)   # an argmax (ties may pick either)
    line, count = ndimage.label(out == 2, structure=np.ones((3, 3, 3)))
    assert count == 1
    rows = np.flatnonzero((out == 2).any(axis=(0, 2)))
    assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1)) and len(rows) >= 26   # unbroken, ~24 * 36/30 long
    # resampling the label values themselves would invent classes along the line's edges
    naive = np.rint(resample_volume(labels.astype(np.float32), new_shape, 1))
    assert np.any((naive != out) & (out == 2))


def test_labels_with_separate_z_take_whole_slices():
    labels = np.zeros((6, 16, 16), dtype=np.int16)
    labels[1, 4:12, 4:12] = 3
    labels[4, 2:6, 2:6] = 1
    out = resample_labels(labels, (10, 20, 20), coarse_axis=0)
    inplane = resample_labels(labels, (6, 20, 20))
    for z in range(10):
        assert any(np.array_equal(out[z], inplane[k]) for k in range(6))
    assert np.count_nonzero(out == 3) > 0 and np.count_nonzero(out == 1) > 0
