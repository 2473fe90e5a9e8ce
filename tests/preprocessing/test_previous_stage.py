"""A cascade stage's extra input: previous-stage labels into the case's preprocessed grid, and their one-hot."""

from __future__ import annotations

import numpy as np
import pytest
from preprocessing_helpers import make_plans

from segkit.phantom import PhantomSpec, make_case
from segkit.plans import Plans
from segkit.preprocessing import preprocess_arrays
from segkit.preprocessing.previous_stage import one_hot_previous, previous_labels_into

OBLIQUE = PhantomSpec(shape=(12, 40, 36), spacing=(5.0, 1.1, 1.1), oblique_degrees=30.0)


def test_labels_on_the_original_grid_land_where_preprocessing_puts_the_training_labels():
    """Reorientation, crop and resampling as preprocess_arrays applies them to the ground truth."""
    images, labels, geometry = make_case(3, OBLIQUE)
    direction = (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0)    # stored with permuted, flipped axes
    plans = Plans.from_json(make_plans(target_spacing=(1.4, 0.9, 4.0)) | {"canonical_orientation": "LPS"})
    _, seg, properties = preprocess_arrays(images, labels, geometry.array_spacing, plans, "3d_fullres",
                                           direction=direction)
    assert properties["orientation"]["permutation"] != [0, 1, 2]
    moved = previous_labels_into(labels, properties)
    assert moved.dtype == np.int16 and moved.shape == seg.shape
    inside = seg >= 0                                  # preprocessing marks outside the nonzero mask -1
    assert np.array_equal(moved[inside], seg[inside]) and set(np.unique(moved[~inside])) <= {0}
    with pytest.raises(ValueError, match="do not fit"):
        previous_labels_into(labels[:-1], properties)


def test_one_hot_has_one_channel_per_class_or_region():
    labels = np.array([[0, 1, 2, 3]], dtype=np.int16)
    np.testing.assert_array_equal(one_hot_previous(labels, [[1], [2], [3]])[:, 0],
                                  [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    regions = one_hot_previous(labels, [[1, 2, 3], [1, 3], [3]])     # BraTS-like nested regions overlap
    assert regions.dtype == np.float32
    np.testing.assert_array_equal(regions[:, 0], [[0, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]])
