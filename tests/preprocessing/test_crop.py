"""Cropping to the nonzero region: the box is the union over channels."""

from __future__ import annotations

import numpy as np

from segkit.preprocessing.crop import crop_to_nonzero


def test_crop_box_is_the_union_of_nonzero_channels():
    images = np.zeros((2, 10, 12, 14), dtype=np.float32)
    images[0, 2:6, 3:9, 4:10] = 5.0
    images[1, 7, 1, 11] = -2.0                 # a lone nonzero voxel in another channel widens the box
    labels = np.zeros((10, 12, 14), dtype=np.int16)
    labels[3, 4, 5] = 2
    cropped, seg, box = crop_to_nonzero(images, labels)
    assert box == [[2, 8], [1, 9], [4, 12]]
    assert cropped.shape == (2, 6, 8, 8)
    np.testing.assert_array_equal(cropped, images[:, 2:8, 1:9, 4:12])
    assert seg[1, 3, 1] == 2                     # labels are kept
    assert seg[5, 0, 7] == 0 and seg[0, 0, 0] == -1   # nonzero voxel -> 0, zero background -> -1
