"""Oblique inputs onto the axis-aligned grid: the grid covers the input, values land at the right physical points."""

from __future__ import annotations

import numpy as np
import pytest
from orientation_data import WORST_SYMMETRIC, tilted_direction

from segkit.io.image import Geometry
from segkit.preprocessing.oblique import (
    IDENTITY,
    AxisAlignment,
    aligned_grid,
    images_onto_grid,
    resample_volume_onto,
    slab_geometry,
    voxel_corners,
)


def _physical_points(geometry: Geometry) -> np.ndarray:
    """(z, y, x, 3) physical (x, y, z) positions of every voxel centre of a grid."""
    index = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in geometry.size], indexing="ij"), axis=-1)
    matrix = np.reshape(geometry.direction, (3, 3)) * np.asarray(geometry.spacing)
    return np.transpose(index @ matrix.T + np.asarray(geometry.origin), (2, 1, 0, 3))


def _smooth(points: np.ndarray) -> np.ndarray:
    """A smooth positive function of physical position (mm), constant-free so misplacement shows."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    return (5 + np.sin(x / 9.0) + np.cos(y / 11.0) + 0.05 * z).astype(np.float32)


def _tilted(degrees: float, size=(20, 24, 14), spacing=(1.0, 1.2, 2.0)) -> Geometry:
    """A tilted grid (x, y, z size/spacing) with a residual rotation of `degrees`."""
    direction = WORST_SYMMETRIC if degrees > 48 else tilted_direction(degrees)
    return Geometry(spacing, (-10.0, 4.0, 30.0), direction, size)


@pytest.mark.parametrize("degrees", [20.0, 48.19])
def test_the_aligned_grid_covers_every_input_voxel_at_the_given_spacing(degrees):
    tilted = _tilted(degrees)
    grid = aligned_grid(tilted, (1.5, 1.1, 1.3))
    assert grid.direction == IDENTITY and grid.spacing == pytest.approx((1.3, 1.1, 1.5))   # (x, y, z)
    low = np.asarray(grid.origin) - np.asarray(grid.spacing) / 2
    high = low + np.asarray(grid.spacing) * np.asarray(grid.size)
    corners = voxel_corners(tilted)
    assert np.all(corners >= low - 1e-6) and np.all(corners <= high + 1e-6)
    assert np.all(high - low < corners.max(axis=0) - corners.min(axis=0) + np.asarray(grid.spacing) + 1e-6)


def test_tilted_images_land_at_their_physical_points():
    tilted = _tilted(35.0)
    values = _smooth(_physical_points(tilted))
    grid = aligned_grid(tilted, (1.0, 1.0, 1.0))
    aligned = images_onto_grid(values[None], tilted, grid, order=3)[0]
    expected = _smooth(_physical_points(grid))
    # voxels well inside the tilted volume: the interpolated value is the function at that physical point
    inside = resample_volume_onto(np.ones(values.shape, np.float32), tilted, grid, 0, 0.0) > 0
    inside = np.asarray(inside)
    from scipy import ndimage

    deep = ndimage.binary_erosion(inside, iterations=2)
    assert deep.sum() > 1000
    assert np.abs(aligned[deep] - expected[deep]).max() < 0.05
    # outside the scanned volume: the median of the input's edge voxels
    edges = np.concatenate([values[0].ravel(), values[-1].ravel(), values[:, 0].ravel(), values[:, -1].ravel(),
                            values[:, :, 0].ravel(), values[:, :, -1].ravel()])
    assert np.all(aligned[~inside] == pytest.approx(float(np.median(edges))))


def test_zero_background_stays_exactly_zero_and_outside_the_scan_gets_the_edge_value():
    tilted = _tilted(48.19)
    points = _physical_points(tilted)
    centre = points.reshape(-1, 3).mean(axis=0)
    head = np.linalg.norm(points - centre, axis=-1) < 9
    mr = np.where(head, 100 + _smooth(points), 0).astype(np.float32)           # skull-stripped: 0 outside
    mr[head & (points[..., 0] > centre[0] + 8.5)] = -50                         # an outlier (ringing) is no fill
    ct = np.where(head, 40.0, -1000.0).astype(np.float32)                       # CT: air, no zeros
    grid = aligned_grid(tilted, (1.0, 1.0, 1.0))
    # separate cases: the nonzero region is where any channel is nonzero
    aligned = [images_onto_grid(volume[None], tilted, grid, order=3)[0] for volume in (mr, ct)]
    grid_points = _physical_points(grid)
    far = np.linalg.norm(grid_points - centre, axis=-1) > 11
    inside_scan = resample_volume_onto(np.ones(mr.shape, np.float32), tilted, grid, 0, 0.0) > 0
    # spline ringing never leaks into the zero background (the nonzero region drives cropping and z-scores)
    assert np.all(aligned[0][far & inside_scan] == 0) and np.all(aligned[0][~inside_scan] == 0)
    assert np.all(aligned[1][~inside_scan] == -1000.0)
    near = np.linalg.norm(grid_points - centre, axis=-1) < 4
    assert np.median(aligned[1][near]) == pytest.approx(40.0, abs=3.0)   # (a cubic spline rings at a 1040 HU step)


def test_slabs_of_a_grid_resample_exactly_like_the_whole_grid():
    tilted = _tilted(20.0)
    grid = aligned_grid(tilted, (1.0, 1.0, 1.0))
    values = _smooth(_physical_points(grid))
    whole = resample_volume_onto(values, grid, tilted, 1, 0.0)
    rows = slice(3, 9)
    part = resample_volume_onto(values, grid, slab_geometry(tilted, rows), 1, 0.0)
    np.testing.assert_array_equal(part, whole[rows])


def test_the_report_record():
    tilted = _tilted(20.0)
    record = AxisAlignment(tilted, aligned_grid(tilted, (2.0, 1.0, 1.0)), 20.0, 5.0).to_json()
    assert record["oblique_degrees"] == 20.0 and record["limit_degrees"] == 5.0
    assert record["grid_spacing"] == [2.0, 1.0, 1.0] and len(record["grid_shape"]) == 3
