"""Fingerprint: crop box, determinism, class volumes in physical units."""

from __future__ import annotations

import numpy as np

from segkit.fingerprint import compute_fingerprint, nonzero_box
from segkit.io.dataset import load_dataset, training_cases
from segkit.io.image import read_image


def test_nonzero_box_is_union_over_channels() -> None:
    images = np.zeros((2, 10, 12, 14), dtype=np.float32)
    images[0, 2:5, 3:4, 5:9] = 1
    images[1, 7, 1, 10] = -3
    assert nonzero_box(images) == ((2, 8), (1, 4), (5, 11))
    assert nonzero_box(np.zeros((1, 4, 5, 6))) == ((0, 4), (0, 5), (0, 6))


def test_fingerprint_measures_cases_and_is_deterministic(tiny_dataset) -> None:
    info = load_dataset(tiny_dataset)
    serial = compute_fingerprint(info, num_workers=1, progress=False)
    parallel = compute_fingerprint(info, num_workers=2, progress=False)
    assert serial == parallel
    assert serial["num_cases"] == 4
    case = serial["cases"][0]
    first = training_cases(info)[0]
    label = read_image(first.label)
    # spacing is reported in array order (z, y, x), i.e. the coarse 3 mm axis first
    assert case["spacing"] == [3.0, 1.5, 1.5]
    assert case["shape_before_crop"] == [16, 24, 24]
    assert all(a <= b for a, b in zip(case["shape_after_crop"], case["shape_before_crop"]))
    counts = np.bincount(label.array.ravel())
    for value in (1, 2, 3):
        assert case["class_voxels"][str(value)] == counts[value]
        assert abs(case["class_volume_ml"][str(value)] - counts[value] * 3.0 * 1.5 * 1.5 / 1000) < 1e-5
    stats = serial["foreground_intensity_statistics"]["2"]
    assert stats["name"] == "T1ce"
    assert stats["min"] <= stats["percentile_0.5"] <= stats["percentile_50.0"] <= stats["percentile_99.5"] <= stats["max"]
    assert stats["std"] > 0


def test_sparse_labels_count_annotated_voxels_and_sample_annotated_foreground(tiny_dataset, tmp_path) -> None:
    """With an ignore label: annotated voxels are counted and foreground intensities come from annotated voxels."""
    from segkit.cli import main
    from segkit.fingerprint import fingerprint_case

    sparse = tmp_path / "Sparse"
    assert main(["sparsify", str(tiny_dataset), str(sparse), "--slices", "2", "--axes", "0"]) == 0
    info = load_dataset(sparse)
    fingerprint = compute_fingerprint(info, progress=False)
    assert fingerprint["ignore_label"] == 4 and 0.4 < fingerprint["annotated_fraction"] < 0.6
    case = training_cases(info)[0]
    images = np.stack([read_image(path).array for path in case.images])
    crop = tuple(slice(*bounds) for bounds in nonzero_box(images))
    label, image = read_image(case.label).array[crop], images[0][crop]
    measured = fingerprint_case(case, 10**9, ignore_label=4)
    assert measured["annotated_voxels"] == int((label != 4).sum()) < label.size
    assert sorted(measured["intensity_samples"][0]) == sorted(image[(label > 0) & (label != 4)].astype(np.float32))
