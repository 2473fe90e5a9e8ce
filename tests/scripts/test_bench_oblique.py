"""scripts/bench_oblique.py's core: the tilted storages it builds and how it scores them (no training, no real data)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import SimpleITK as sitk
from script_loading import SCRIPTS, load_script

from segkit.preprocessing.orientation import is_rotation, oblique_degrees


@pytest.fixture(scope="module")
def bench():
    """The script as a module (scripts/ on the path for its own imports)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        yield load_script("bench_oblique")
    finally:
        sys.path.remove(str(SCRIPTS))


def labelled_volume() -> sitk.Image:
    """A small anisotropic label image (two ellipsoids and a slab) stored RAS like the NIfTI benchmark images."""
    z, y, x = np.mgrid[:18, :30, :26].astype(float)
    labels = np.zeros((18, 30, 26), dtype=np.uint8)
    labels[((x - 9) / 6) ** 2 + ((y - 12) / 8) ** 2 + ((z - 8) / 5) ** 2 <= 1] = 1
    labels[((x - 18) / 4) ** 2 + ((y - 19) / 5) ** 2 + ((z - 10) / 4) ** 2 <= 1] = 2
    labels[(z >= 13) & (z <= 15) & (x >= 4) & (x <= 21) & (y >= 5) & (y <= 24)] = 3
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing((1.2, 1.0, 2.5))
    image.SetDirection((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    image.SetOrigin((40.0, -12.0, 7.5))
    return image


@pytest.mark.parametrize("degrees", [20.0, 35.0, 48.19])
def test_tilted_storage_has_the_named_residual_rotation_and_keeps_the_anatomy(bench, degrees):
    direction = bench.tilted_direction(degrees)
    assert is_rotation(direction) and oblique_degrees(direction) == pytest.approx(degrees, abs=0.01)
    straight = labelled_volume()
    reference = bench.tilted_reference(straight, direction)
    assert reference.GetSpacing() == straight.GetSpacing()
    assert np.allclose(reference.GetDirection(), direction)
    # every voxel centre of the straight storage lies inside the tilted grid: nothing is cut off
    for index in np.ndindex(*[n for n in straight.GetSize()]):
        if index[0] in (0, straight.GetSize()[0] - 1) and index[1] in (0, straight.GetSize()[1] - 1):
            point = straight.TransformIndexToPhysicalPoint([int(i) for i in index])
            tilted = np.asarray(reference.TransformPhysicalPointToContinuousIndex(point))
            assert np.all(tilted >= -0.5) and np.all(tilted <= np.asarray(reference.GetSize()) - 0.5), index
    tilted_labels = bench.carried(straight, reference, True, sitk.sitkUInt8)
    back = sitk.GetArrayFromImage(bench.carried(tilted_labels, straight, True, sitk.sitkUInt8))
    truth = sitk.GetArrayFromImage(straight)
    # the storage alone (nearest there and back) costs a boundary layer, never a structure
    for value in (1, 2, 3):
        a, b = back == value, truth == value
        assert 2 * np.sum(a & b) / (a.sum() + b.sum()) > 0.75, value
    assert bench.mean_dice(back, truth) > 0.85


def test_scores_count_absent_classes_and_agreement_in_the_foreground_union(bench):
    truth = np.zeros((4, 4, 4), dtype=np.uint8)
    truth[0, :2] = 1                       # 8 voxels of class 1
    prediction = truth.copy()
    prediction[0, 0] = 2                   # 4 of them called class 2
    dice = bench.mean_dice(prediction, truth)
    per_class = [2 * 4 / 12, 0.0] + [1.0] * (bench.NUM_CLASSES - 2)   # absent from both: 1
    assert dice == pytest.approx(np.mean(per_class))
    foreground, alike = bench.agreement(prediction, truth)
    assert foreground == 1.0 and alike == pytest.approx(0.5)   # same foreground, half of it labelled alike
    empty = np.zeros_like(truth)
    assert bench.agreement(empty, truth)[0] == 0.0 and bench.agreement(empty, empty) == (0.0, 1.0)


def test_shift_control_moves_the_lattice_only(bench):
    image = labelled_volume()
    reference = bench.shifted_reference(image, 0.5)
    assert reference.GetDirection() == image.GetDirection() and reference.GetSpacing() == image.GetSpacing()
    assert list(reference.GetSize()) == [n + 2 for n in image.GetSize()]   # covers the image with a voxel to spare
    moved = np.asarray(reference.TransformIndexToPhysicalPoint([1, 1, 1]))
    assert np.allclose(moved, np.asarray(image.TransformIndexToPhysicalPoint([0, 0, 0])) + 0.5)


def sphere_probabilities(grid: sitk.Image, centre: np.ndarray, radius: float) -> np.ndarray:
    """(2, z, y, x) softmax-like probabilities of a ball on grid's voxel centres (soft edge about 1 mm wide)."""
    size = grid.GetSize()
    points = np.array([grid.TransformIndexToPhysicalPoint([int(i) for i in index])
                       for index in np.ndindex(*size)], dtype=float)   # x fastest in ITK index order: reorder below
    inside = 1 / (1 + np.exp((np.linalg.norm(points - centre, axis=1) - radius) / 0.4))
    inside = inside.reshape(size).transpose(2, 1, 0)   # (x, y, z) index order -> (z, y, x) array
    return np.stack([1 - inside, inside]).astype(np.float32)


def test_probabilities_carried_back_keep_the_boundary_where_nearest_labels_move_it(bench, tmp_path):
    from segkit.inference.probabilities import METADATA_KEYS, save_probabilities
    from segkit.io.image import Geometry

    straight = sitk.Image([20, 20, 20], sitk.sitkUInt8)
    straight.SetSpacing((1.5, 1.5, 1.5))
    centre, radius = np.array([14.3, 14.9, 13.7]), 6.0
    shifted = bench.shifted_reference(straight, 0.5)   # the same lattice moved 0.5 mm: nearest maps it back displaced
    probabilities = sphere_probabilities(shifted, centre, radius)
    geometry = Geometry.of_sitk(shifted)
    metadata = {key: None for key in METADATA_KEYS} | {"geometry": geometry.to_json()}
    save_probabilities(tmp_path / "case.npz", probabilities, metadata)
    truth = np.argmax(sphere_probabilities(straight, centre, radius), axis=0).astype(np.uint8)

    by_probabilities = bench.labels_from_probabilities(tmp_path / "case.npz", straight)
    labels = geometry.apply_to(sitk.GetImageFromArray(np.argmax(probabilities, axis=0).astype(np.uint8)))
    by_nearest = sitk.GetArrayFromImage(bench.carried(labels, straight, True, sitk.sitkUInt8))
    assert by_probabilities.shape == truth.shape == by_nearest.shape
    dice_probabilities, dice_nearest = bench.agreement(by_probabilities, truth)[0], bench.agreement(by_nearest, truth)[0]
    assert dice_probabilities > 0.96 and dice_probabilities > dice_nearest + 0.05, (dice_probabilities, dice_nearest)
    # on its own grid the carried probabilities give the prediction's own labels
    same = bench.labels_from_probabilities(tmp_path / "case.npz", labels)
    assert np.array_equal(same, np.argmax(probabilities, axis=0))
