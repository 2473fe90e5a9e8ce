"""The brain-structures phantom: seeded, twelve labelled structures in left/right pairs, written in the raw layout."""

from __future__ import annotations

import json

import numpy as np

from segkit.io.image import read_image
from segkit.phantom_structures import (
    LABEL_NAMES,
    SKULL,
    SPACING,
    WHITE,
    generate_structures_dataset,
    make_structures_case,
)

SMALL = (60, 75, 64)   # a smaller head than the default 80 x 100 x 85: same structures, less time


def test_cases_are_seeded_and_hold_every_structure_on_both_sides() -> None:
    image, label = make_structures_case(3, SMALL)
    again, same = make_structures_case(3, SMALL)
    assert np.array_equal(image, again) and np.array_equal(label, same)
    sizes = np.bincount(label.ravel(), minlength=13)[1:]
    assert image.dtype == np.float32 and label.dtype == np.uint8 and label.max() == 12
    assert sizes.min() >= 150 and sizes.max() <= 2000, sizes        # small structures, 200-1,400 voxels by design
    zs, ys, xs = np.nonzero(label == 1)
    zr, yr, xr = np.nonzero(label == 2)
    assert (xs.mean() - label.shape[2] / 2) * (xr.mean() - label.shape[2] / 2) < 0   # a pair sits on both sides


def test_a_small_head_keeps_its_intensities() -> None:
    # the bias field is segkit.phantom's smooth field: centred, it no longer scales a small volume by a large factor
    for seed in range(3):
        with np.errstate(over="raise"):
            image, _ = make_structures_case(seed, (20, 24, 24))
        assert 0.6 * WHITE < np.percentile(image, 99) < 1.5 * SKULL


def test_the_dataset_is_written_in_the_raw_layout(tmp_path) -> None:
    root = generate_structures_dataset(tmp_path / "d", num_cases=1, shape=(40, 50, 44))
    declared = json.loads((root / "dataset.json").read_text())
    assert list(declared["labels"])[1:] == LABEL_NAMES and declared["numTraining"] == 1
    image = read_image(root / "imagesTr" / "brain_001_0000.nii.gz")
    assert image.array.shape == (40, 50, 44) and image.spacing == (SPACING,) * 3
    assert (root / "labelsTr" / "brain_001.nii.gz").is_file()
