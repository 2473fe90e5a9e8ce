"""Canonical orientation: codes, lossless reorientation, exact inverse, canonical geometry."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import SimpleITK as sitk

from segkit.errors import UserError
from segkit.io.image import Geometry
from segkit.preprocessing.orientation import (AS_STORED, CANONICAL, LEGACY_WARNING, Reorientation, canonical_geometry,
                                              is_rotation, oblique_degrees, orientation_code, orientation_summary,
                                              orientation_warnings, plans_reorientation, reorientation_for)


def _rotation(degrees: float, axis: int) -> np.ndarray:
    """A rotation by degrees about one physical axis."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [a for a in range(3) if a != axis]
    matrix = np.eye(3)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def _signed_permutations() -> list[np.ndarray]:
    """All 48 axis-aligned ITK directions."""
    found = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            matrix = np.zeros((3, 3))
            for column, row in enumerate(perm):
                matrix[row, column] = signs[column]
            found.append(matrix)
    return found


@pytest.mark.parametrize("direction, code", [
    ((1, 0, 0, 0, 1, 0, 0, 0, 1), "LPS"),
    ((-1, 0, 0, 0, -1, 0, 0, 0, 1), "RAS"),
    # sagittal storage: i -> anterior, j -> superior... columns are (0,-1,0), (0,0,-1), (1,0,0)
    ((0, 0, 1, -1, 0, 0, 0, -1, 0), "AIL"),
    ((1, 0, 0, 0, 0, 1, 0, -1, 0), "LIP"),
])
def test_orientation_code_names_where_each_index_axis_points(direction, code):
    assert orientation_code(direction) == code


def test_2d_direction_codes():
    assert orientation_code((1, 0, 0, 1)) == "LP"
    assert orientation_code((-1, 0, 0, -1)) == "RA"
    assert reorientation_for((-1, 0, 0, 1)).flips == (False, True)


def _physical_points(geometry: Geometry, indices: np.ndarray) -> np.ndarray:
    """Physical points (ITK x, y, z) of (z, y, x) array indices."""
    image = sitk.Image([int(v) for v in geometry.size], sitk.sitkUInt8)
    geometry.apply_to(image)
    return np.array([image.TransformContinuousIndexToPhysicalPoint([float(v) for v in idx[::-1]]) for idx in indices])


@pytest.mark.parametrize("matrix", _signed_permutations()[::5] + [_rotation(20, 2) @ np.diag([-1, -1, 1])])
def test_canonical_arrays_hold_the_same_physical_voxels(matrix):
    rng = np.random.default_rng(0)
    geometry = Geometry((0.8, 1.1, 3.0), (10.0, -20.0, 5.0), tuple(matrix.flatten()), (5, 6, 4))
    stored = rng.normal(size=(2,) + geometry.array_shape).astype(np.float32)
    reorientation = reorientation_for(geometry.direction)
    canonical = reorientation.to_canonical(stored)
    target = canonical_geometry(geometry)
    assert canonical.shape[1:] == target.array_shape
    assert list(reversed(target.spacing)) == reorientation.values(geometry.array_spacing)
    # the canonical direction is the identity up to the residual (oblique) rotation, with a positive diagonal
    assert np.all(np.diag(np.reshape(target.direction, (3, 3))) > 0.7)
    stored_index = np.argwhere(np.ones(geometry.array_shape, bool))
    canonical_index = np.argwhere(np.ones(target.array_shape, bool))
    stored_points = _physical_points(geometry, stored_index)
    canonical_points = _physical_points(target, canonical_index)
    # each canonical voxel sits where the stored voxel with the same value sits
    lookup = {tuple(np.round(p, 4)): stored[:, i, j, k] for p, (i, j, k) in zip(stored_points, stored_index)}
    for point, (i, j, k) in zip(canonical_points, canonical_index):
        np.testing.assert_array_equal(lookup[tuple(np.round(point, 4))], canonical[:, i, j, k])
    np.testing.assert_array_equal(reorientation.from_canonical(canonical), stored)


def test_identity_and_json_round_trip():
    identity = reorientation_for((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert identity.is_identity and identity == Reorientation.identity()
    array = np.arange(24).reshape(2, 3, 4)
    assert identity.to_canonical(array) is array
    sagittal = reorientation_for((0, 0, 1, -1, 0, 0, 0, -1, 0))
    assert Reorientation.from_json(sagittal.to_json()) == sagittal
    assert sagittal.stored_values(sagittal.values([1, 2, 3])) == [1, 2, 3]


def test_oblique_image_keeps_its_residual_rotation():
    direction = tuple((_rotation(30, 2) @ np.diag([-1, -1, 1])).flatten())
    assert orientation_code(direction) == "RAS"
    assert oblique_degrees(direction) == pytest.approx(30.0, abs=1e-6)
    residual = np.reshape(canonical_geometry(Geometry((1, 1, 1), (0, 0, 0), direction, (2, 2, 2))).direction, (3, 3))
    np.testing.assert_allclose(residual, _rotation(30, 2), atol=1e-12)


def test_is_rotation():
    assert is_rotation((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    assert is_rotation((1, 0, 0, 0, 1, 0, 0, 0, -1))      # a reflection is still orthonormal
    assert not is_rotation((1, 0, 0, 0.5, 1, 0, 0, 0, 1))


def test_plans_decide_whether_to_reorient():
    ras = (-1, 0, 0, 0, -1, 0, 0, 0, 1)
    assert not plans_reorientation({"canonical_orientation": CANONICAL}, ras, 3).is_identity
    assert plans_reorientation({"canonical_orientation": CANONICAL}, None, 3).is_identity
    assert plans_reorientation({"canonical_orientation": AS_STORED}, ras, 3).is_identity
    assert plans_reorientation({}, ras, 3).is_identity
    with pytest.raises(UserError, match="canonical_orientation"):
        plans_reorientation({"canonical_orientation": "RAI"}, ras, 3)


def test_orientation_warnings():
    lps, ras = (1, 0, 0, 0, 1, 0, 0, 0, 1), (-1, 0, 0, 0, -1, 0, 0, 0, 1)
    oblique = tuple((_rotation(35, 0)).flatten())
    summary = orientation_summary([lps, ras, tuple(_rotation(5, 1).flatten())])
    assert summary == {"codes": {"LPS": 2, "RAS": 1}, "max_oblique_degrees": 5.0}
    assert orientation_warnings({}, lps) == [LEGACY_WARNING]
    canonical = {"canonical_orientation": CANONICAL, "training_orientations": summary}
    assert orientation_warnings(canonical, ras) == []
    assert orientation_warnings(canonical, (0, 0, 1, -1, 0, 0, 0, -1, 0)) == []   # handled by the reorientation
    assert "35.0 degrees oblique" in orientation_warnings(canonical, oblique)[0]
    stored = {"canonical_orientation": AS_STORED, "training_orientations": orientation_summary([lps])}
    assert orientation_warnings(stored, lps) == []
    assert "input stored RAS" in orientation_warnings(stored, ras)[0]
