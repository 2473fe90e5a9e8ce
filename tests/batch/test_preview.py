"""QC preview in the patient frame: the same image stored LPS, RAS or sagittally gives the same picture."""

from __future__ import annotations

import numpy as np
import pytest
from orientation_data import DIRECTIONS, LABELS, lateral_case, stored_as

from segkit.batch.preview import EDGE_LETTERS, display_panels, label_volumes_ml, write_preview

pytest.importorskip("matplotlib")
NAMES = {value: name for name, value in LABELS.items() if value}


def test_the_same_image_stored_three_ways_gives_identical_preview_pixels(tmp_path):
    from matplotlib.image import imread

    images, labels, geometry = lateral_case()
    pictures = {}
    for code, direction in DIRECTIONS.items():
        stored_images, stored_labels, stored_geometry = stored_as(images, labels, geometry, direction)
        path = write_preview(stored_images[0], stored_labels, stored_geometry, NAMES, tmp_path / f"{code}.png",
                             title="case")
        pictures[code] = imread(path)
    assert pictures["LPS"].std() > 0
    np.testing.assert_array_equal(pictures["RAS"], pictures["LPS"])
    np.testing.assert_array_equal(pictures["AIL"], pictures["LPS"])


def test_panels_follow_the_radiological_convention():
    images, labels, geometry = lateral_case()
    stored_images, stored_labels, stored_geometry = stored_as(images, labels, geometry, DIRECTIONS["RAS"])
    panels, _ = display_panels(stored_images[0], stored_labels, stored_geometry)
    by_name = {name: (plane, lab) for name, plane, lab, _ in panels}
    axial = by_name["axial"][1]
    # the patient's left (Left-Blob, 1) is on the picture's right, under the "L" letter
    assert np.argwhere(axial == 1)[:, 1].mean() > axial.shape[1] / 2 > np.argwhere(axial == 2)[:, 1].mean()
    assert EDGE_LETTERS["axial"][:2] == ("R", "L") and EDGE_LETTERS["coronal"][2:] == ("S", "I")
    # superior at the top of the coronal panel: the canonical top slice is row 0
    z_top = by_name["coronal"][0][0]
    canonical_top = images[0][-1, int(np.argwhere(labels > 0)[:, 1].mean().round()), :]
    np.testing.assert_array_equal(z_top != 0, canonical_top != 0)


def test_legend_volumes_in_ml():
    images, labels, geometry = lateral_case()
    volumes = label_volumes_ml(labels, geometry, [1, 2])
    voxel_ml = 3.0 * 1.0 * 1.2 / 1000
    assert volumes[1] == pytest.approx(np.sum(labels == 1) * voxel_ml)
    assert volumes[2] == pytest.approx(np.sum(labels == 2) * voxel_ml)
