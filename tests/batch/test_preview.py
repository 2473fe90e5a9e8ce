"""QC preview in the patient frame: the same image stored LPS, RAS or sagittally gives the same picture."""

from __future__ import annotations

import json

import numpy as np
import pytest
from batch_data import (
    SPEC_2CH,
    output_request,
    run_batch,
    threshold_predict,
    write_file_case,
)
from orientation_data import DIRECTIONS, LABELS, lateral_case, stored_as

from segkit.batch import preview as preview_module
from segkit.batch.cases import discover_cases
from segkit.batch.pipeline import RunOptions as BatchOptions
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


def test_preview_png_and_missing_matplotlib_warning(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "in"
    write_file_case(folder, "case_a", seed=5)
    out = tmp_path / "out"
    run_batch(discover_cases(folder), SPEC_2CH, output_request(out, preview=True), threshold_predict, BatchOptions(), folder)
    png = out / "case_a_preview.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image
    assert matplotlib.image.imread(png).shape[1] > 400
    monkeypatch.setattr("segkit.batch.pipeline.preview_available", lambda: False)
    out2 = tmp_path / "out2"
    run_batch(discover_cases(folder), SPEC_2CH, output_request(out2, preview=True), threshold_predict, BatchOptions(), folder)
    data = json.loads((out2 / "report.json").read_text())
    assert data["warnings"] == [preview_module.MISSING_MESSAGE]
    assert preview_module.MISSING_MESSAGE in capsys.readouterr().err
    assert data["cases"][0]["status"] == "ok" and "preview" not in data["cases"][0]["outputs"]
    assert not (out2 / "case_a_preview.png").exists()


def test_centre_slices_follow_the_structure():
    label = np.zeros((10, 12, 14), dtype=np.uint8)
    label[2:5, 8:11, 1:4] = 1
    assert preview_module.centre_slices(label) == (3, 9, 2)
    assert preview_module.centre_slices(np.zeros((4, 6, 8))) == (2, 3, 4)
