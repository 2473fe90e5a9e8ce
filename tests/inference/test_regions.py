"""Network outputs -> label maps: softmax channels to label values, regions painted in class order."""

from __future__ import annotations

import numpy as np
import pytest

from segkit.errors import UserError
from segkit.inference.regions import labels_to_regions, probabilities_to_labels, regions_to_labels


def test_region_probabilities_paint_in_class_order():
    probabilities = np.zeros((3, 2, 2, 2), dtype=np.float32)
    probabilities[0, 0] = 0.9          # whole tumour in the first z slice
    probabilities[1, 0, 0] = 0.8       # tumour core in its first row
    probabilities[2, 0, 0, 0] = 0.7    # enhancing in one voxel
    labels = regions_to_labels(probabilities, [2, 1, 3])
    assert labels.dtype == np.uint8
    assert labels[0, 0, 0] == 3 and labels[0, 0, 1] == 1 and labels[0, 1, 1] == 2 and labels[1].max() == 0
    regions = {"wt": [1, 2, 3], "tc": [1, 3], "et": [3]}
    np.testing.assert_array_equal(labels_to_regions(labels, regions), probabilities > 0.5)
    with pytest.raises(UserError):
        regions_to_labels(probabilities, [2, 1])


def test_softmax_probabilities_map_channels_to_label_values():
    probabilities = np.zeros((3, 1, 1, 3), dtype=np.float32)
    probabilities[0, ..., 0] = probabilities[1, ..., 1] = probabilities[2, ..., 2] = 1
    labels = probabilities_to_labels(probabilities, "softmax", {"liver": [1], "tumour": [5]})
    np.testing.assert_array_equal(labels[0, 0], [0, 1, 5])
