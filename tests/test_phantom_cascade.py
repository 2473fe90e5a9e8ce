"""The cascade benchmark's phantom: seeded, and each lesion's label is the organ half it lies in."""

from __future__ import annotations

import json

import numpy as np
from scipy import ndimage

from segkit.phantom_cascade import generate_cascade_dataset, make_cascade_case

SMALL = (24, 80, 96)


def test_cases_are_seeded_and_lesion_labels_follow_the_organ_half():
    image, label = make_cascade_case(4, SMALL)
    again, same = make_cascade_case(4, SMALL)
    assert np.array_equal(image, again) and np.array_equal(label, same)
    assert not np.array_equal(label, make_cascade_case(5, SMALL)[1])
    assert image.dtype == np.float32 and label.shape == SMALL and set(np.unique(label)) <= {0, 1, 2, 3}
    organ_x = np.argwhere(label > 0)[:, 2].mean()
    for value, side in ((2, -1), (3, 1)):
        components, count = ndimage.label(label == value)
        for index in range(1, count + 1):
            centre_x = np.argwhere(components == index)[:, 2].mean()
            assert np.sign(centre_x - organ_x) == side
    assert (label == 2).any() or (label == 3).any()


def test_dataset_layout(tmp_path):
    root = generate_cascade_dataset(tmp_path / "C", 2, shape=SMALL)
    generate_cascade_dataset(root, 1, seed=1, shape=SMALL, prefix="test", folder="imagesTs", label_folder="labelsTs")
    assert sorted(p.name for p in (root / "imagesTr").iterdir()) == ["abdomen_001_0000.nii.gz", "abdomen_002_0000.nii.gz"]
    assert [p.name for p in (root / "labelsTs").iterdir()] == ["test_001.nii.gz"]
    dataset = json.loads((root / "dataset.json").read_text())
    assert dataset["labels"]["lesion_right_half"] == 3 and dataset["numTraining"] == 2
