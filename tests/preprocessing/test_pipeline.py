"""Crop box, normalisation schemes, class locations and the inference round trip."""

from __future__ import annotations

import numpy as np
import pytest
from preprocessing_helpers import make_plan_view

from segkit.errors import UserError
from segkit.phantom import PhantomSpec, make_case
from segkit.preprocessing import preprocess_arrays, preprocess_images, revert_to_original, sample_class_locations
from segkit.preprocessing.crop import crop_to_nonzero

ANISOTROPIC = PhantomSpec(shape=(12, 40, 36), spacing=(5.0, 1.1, 1.1), oblique_degrees=20.0)


def test_crop_of_a_phantom_matches_its_nonzero_extent():
    images, labels, _ = make_case(5, ANISOTROPIC)
    cropped, seg, box = crop_to_nonzero(images, labels)
    nonzero = np.argwhere(np.any(images != 0, axis=0))
    assert box == [[int(lo), int(hi) + 1] for lo, hi in zip(nonzero.min(0), nonzero.max(0))]
    assert seg.dtype == np.int16 and cropped.shape[1:] == seg.shape
    assert np.array_equal(seg > 0, labels[tuple(slice(a, b) for a, b in box)] > 0)


def test_roundtrip_on_anisotropic_oblique_phantom_is_exact_in_shape():
    images, labels, geometry = make_case(7, ANISOTROPIC)
    assert not np.allclose(np.reshape(geometry.direction, (3, 3)), np.eye(3))
    spacing = geometry.array_spacing
    plans = make_plan_view(target_spacing=(4.0, 1.4, 0.9))
    data, seg, properties = preprocess_arrays(images, labels, spacing, plans, "3d_fullres")
    assert properties["separate_axis"] == 0
    assert list(data.shape[1:]) == properties["shape_after_resample"] == list(seg.shape)
    assert data.dtype == np.float32 and data.shape[0] == 4
    only_images, image_properties = preprocess_images(images, spacing, plans, "3d_fullres")
    np.testing.assert_array_equal(only_images, data)
    assert image_properties["crop_box"] == properties["crop_box"]

    onehot = np.stack([(seg == value) for value in range(4)]).astype(np.float32)
    reverted = revert_to_original(onehot, properties, plans, "3d_fullres")
    assert reverted.shape == (4,) + images.shape[1:]
    outside = np.ones(images.shape[1:], dtype=bool)
    outside[tuple(slice(a, b) for a, b in properties["crop_box"])] = False
    assert np.all(reverted[0][outside] == 1) and np.all(reverted[1:][:, outside] == 0)
    recovered = reverted.argmax(axis=0)
    for value in (1, 2, 3):
        overlap = np.count_nonzero((recovered == value) & (labels == value))
        dice = 2 * overlap / (np.count_nonzero(recovered == value) + np.count_nonzero(labels == value))
        assert dice > 0.8, (value, dice)


def test_revert_checks_the_shape_and_sigmoid_fills_zero():
    images, labels, geometry = make_case(2, PhantomSpec(shape=(10, 20, 20), spacing=(3.0, 1.2, 1.2)))
    plans = make_plan_view(target_spacing=(2.5, 1.5, 1.5), label_mode="sigmoid")
    data, properties = preprocess_images(images, geometry.array_spacing, plans, "3d_fullres")
    outputs = np.full((3,) + data.shape[1:], 0.7, dtype=np.float32)
    reverted = revert_to_original(outputs, properties, plans, "3d_fullres")
    assert reverted.shape == (3, 10, 20, 20) and reverted.min() == 0 and np.isclose(reverted.max(), 0.7)
    with pytest.raises(ValueError):
        revert_to_original(outputs[:, 1:], properties, plans, "3d_fullres")


def test_class_locations_per_class_and_per_region():
    seg = np.zeros((20, 30, 30), dtype=np.int16)
    seg[2:18, 2:28, 2:28] = 2          # 16 * 26 * 26 = 10816 voxels: above the cap
    seg[5:8, 5:8, 5:8] = 3
    seg[10, 10, 10] = 1
    softmax = sample_class_locations(seg, make_plan_view(), seed=3)
    assert sorted(softmax) == ["1", "2", "3"]
    assert len(softmax["2"]) == 10000 and len(softmax["3"]) == 27 and softmax["1"] == [[10, 10, 10]]
    assert all(seg[tuple(p)] == 2 for p in softmax["2"][::97])
    assert sample_class_locations(seg, make_plan_view(), seed=3) == softmax
    regions = sample_class_locations(seg, make_plan_view(label_mode="sigmoid"), seed=3)
    assert sorted(regions) == ["enhancing_tumor", "tumor_core", "whole_tumor"]
    assert len(regions["tumor_core"]) == 28
    assert all(seg[tuple(p)] in (1, 3) for p in regions["tumor_core"])


def test_unknown_configuration_and_bad_normalisation_are_user_errors():
    images, labels, geometry = make_case(1, PhantomSpec(shape=(8, 16, 16)))
    with pytest.raises(UserError, match="unknown configuration '2d'"):
        preprocess_images(images, geometry.array_spacing, make_plan_view(), "2d")
    with pytest.raises(UserError, match="one entry per channel"):
        preprocess_images(images[:2], geometry.array_spacing, make_plan_view(), "3d_fullres")
    plans = make_plan_view(normalization=[{"scheme": "magic"}] * 4)
    with pytest.raises(UserError, match="unknown scheme 'magic'"):
        preprocess_images(images, geometry.array_spacing, plans, "3d_fullres")
