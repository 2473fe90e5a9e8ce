"""Obliquely stored inputs: resampled onto the canonical axis-aligned grid, outputs mapped back exactly.

Reorientation (`segkit.preprocessing.orientation`) only permutes and flips axes, so an image
stored on a tilted grid keeps its residual rotation (up to 60.72 degrees on one axis) and the
network would see the anatomy rotated. When an input is more oblique than the model's
training images (`orientation.needs_axis_alignment`, limit recorded in plans.json as
``oblique_inputs.resample_above_degrees``), prediction first resamples it onto an
axis-aligned grid in the canonical frame (identity ITK direction, "LPS"): the given spacing
(the plan's target spacing, so preprocessing's own resampling is then the identity), covering
the whole physical extent of the input's voxels, outside the scanned volume filled with the
median of each channel's edge voxels, exactly 0 where the input was 0 (its nonzero region drives cropping and
normalisation). Network outputs on that grid are mapped back onto the input's own grid
(its size, spacing, origin and direction) by linear interpolation of the probabilities, one
slab of input rows at a time (`segkit.inference.revert.labels_from_aligned`).

SimpleITK does the resampling: it maps every output voxel through physical space with the two
grids' exact geometry (ITK's rule for a point within half a voxel of the border holds).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from segkit.io.image import Geometry

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
# plans' resampling.image_order -> SimpleITK interpolator (3: cubic B-spline, as preprocessing's image resampling)
INTERPOLATORS = {0: sitk.sitkNearestNeighbor, 1: sitk.sitkLinear, 3: sitk.sitkBSpline}


@dataclass(frozen=True)
class AxisAlignment:
    """An input resampled onto an axis-aligned grid: the input's grid, the network's grid, and why."""

    input_geometry: Geometry
    aligned_geometry: Geometry
    oblique_degrees: float
    limit_degrees: float

    def to_json(self) -> dict:
        """What report.json records about the resampling (array order z, y, x)."""
        return {"oblique_degrees": round(self.oblique_degrees, 3), "limit_degrees": round(self.limit_degrees, 3),
                "grid_spacing": [round(s, 6) for s in self.aligned_geometry.array_spacing],
                "grid_shape": list(self.aligned_geometry.array_shape)}


def voxel_corners(geometry: Geometry) -> np.ndarray:
    """Physical (x, y, z) positions of the 8 outer corners of the input's voxels (index -0.5 and size - 0.5)."""
    matrix = np.asarray(geometry.direction, dtype=float).reshape(3, 3) * np.asarray(geometry.spacing, dtype=float)
    corners = np.array(list(itertools.product(*[(-0.5, n - 0.5) for n in geometry.size])), dtype=float)
    return corners @ matrix.T + np.asarray(geometry.origin, dtype=float)


def aligned_grid(geometry: Geometry, array_spacing: Sequence[float]) -> Geometry:
    """The axis-aligned (identity direction) grid of this spacing (z, y, x) covering the input's whole extent."""
    spacing = np.asarray(tuple(reversed([float(s) for s in array_spacing])))   # (x, y, z)
    corners = voxel_corners(geometry)
    low, high = corners.min(axis=0), corners.max(axis=0)
    size = np.maximum(1, np.ceil((high - low) / spacing - 1e-6)).astype(int)
    # centre the grid on the extent: it overhangs by less than one voxel, split between both ends
    origin = (low + high) / 2 - (size - 1) * spacing / 2
    return Geometry(tuple(float(s) for s in spacing), tuple(float(v) for v in origin), IDENTITY,
                    tuple(int(n) for n in size))


def _sitk_image(volume: np.ndarray, geometry: Geometry) -> sitk.Image:
    """A (z, y, x) array as a SimpleITK image with this geometry."""
    return geometry.apply_to(sitk.GetImageFromArray(np.ascontiguousarray(volume)))


def resample_volume_onto(volume: np.ndarray | sitk.Image, source: Geometry, target: Geometry, order: int,
                         fill: float) -> np.ndarray:
    """A (z, y, x) volume on the source grid resampled onto the target grid (physical space), float32."""
    image = volume if isinstance(volume, sitk.Image) else _sitk_image(np.asarray(volume, dtype=np.float32), source)
    resampled = sitk.Resample(image, [int(n) for n in target.size], sitk.Transform(), INTERPOLATORS[order],
                              target.origin, target.spacing, target.direction, float(fill), sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled)


def border_voxels(volume: np.ndarray) -> np.ndarray:
    """The values on the six faces of a (z, y, x) volume."""
    return np.concatenate([np.moveaxis(volume, axis, 0)[index].ravel() for axis in range(3) for index in (0, -1)])


def images_onto_grid(images: np.ndarray, source: Geometry, target: Geometry, order: int) -> np.ndarray:
    """(C, z, y, x) images resampled onto the target grid, keeping the nonzero region's meaning.

    Preprocessing crops to, and z-score normalisation may be restricted to, the voxels where any
    channel is nonzero (nnU-Net's convention: a skull-stripped MR is exactly 0 outside the head).
    Spline interpolation rings a little into that zero background, so the input's nonzero region
    is carried separately (linearly, half-way boundary) and the target is exactly 0 outside it.
    Outside the scanned volume each channel gets the median of its own edge voxels (air on a CT,
    0 on such an MR).
    """
    if order not in INTERPOLATORS:
        raise ValueError(f"interpolation order must be one of {sorted(INTERPOLATORS)}, got {order}")
    images = np.asarray(images)
    nonzero = np.any(images != 0, axis=0)
    # outside the scan: what the input holds at its own edges (air on a CT, 0 on an MR), not its minimum,
    # which interpolation ringing or noise can drive far below the background
    edges = [np.median(border_voxels(np.asarray(channel, dtype=np.float32))) for channel in images]
    inside_scan = resample_volume_onto(np.ones(images.shape[1:], dtype=np.float32), source, target, 0, 0.0) > 0.5
    background = inside_scan & (resample_volume_onto(nonzero.astype(np.float32), source, target, 1, 0.0) < 0.5)
    out = np.empty((images.shape[0], *target.array_shape), dtype=np.float32)
    for channel in range(images.shape[0]):
        volume = np.asarray(images[channel], dtype=np.float32)
        outside = float(edges[channel])
        out[channel] = resample_volume_onto(volume, source, target, order, outside)
        out[channel][background] = 0.0
        out[channel][~inside_scan] = outside   # the same outside rule for every interpolator
    return out


def slab_geometry(geometry: Geometry, rows: slice) -> Geometry:
    """The sub-grid of array rows (z) `rows` of a grid: same spacing and direction, origin moved."""
    matrix = np.asarray(geometry.direction, dtype=float).reshape(3, 3)
    shift = matrix[:, 2] * geometry.spacing[2] * rows.start
    return Geometry(geometry.spacing, tuple(float(v) for v in np.asarray(geometry.origin) + shift),
                    geometry.direction, (geometry.size[0], geometry.size[1], rows.stop - rows.start))


def channel_images(volumes: np.ndarray, geometry: Geometry) -> list[sitk.Image]:
    """Each (z, y, x) channel of a (K, z, y, x) array as a SimpleITK image on this grid (for repeated resampling)."""
    return [_sitk_image(np.asarray(volumes[k], dtype=np.float32), geometry) for k in range(volumes.shape[0])]
