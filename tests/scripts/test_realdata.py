"""scripts/realdata.py's CT / lesion builders: a warped copy keeps the anatomy, its sides and CT's air outside."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import realdata  # noqa: E402


def _subject() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 40^3 CT-like subject at 2 mm (LPS affine): soft tissue body, a 'left' block (x < 20) and a 'right' one."""
    image = np.full((40, 40, 40), -1000.0, dtype=np.float32)
    image[5:35, 5:35, 5:35] = 40.0
    classes = np.zeros((40, 40, 40), dtype=np.uint8)
    classes[8:16, 10:30, 10:30] = 1     # x 8..16: one side, brighter than the other side's block
    image[8:16, 10:30, 10:30] = 200.0
    classes[24:32, 10:30, 10:30] = 2    # the other side
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-40.0, -40.0, -40.0)
    return image, classes, affine


def test_swap_sides_exchanges_only_left_right_pairs() -> None:
    names = ["liver", "autochthon_left", "autochthon_right"]
    classes = np.array([0, 1, 2, 3], dtype=np.uint8)
    assert realdata._swap_sides(classes, names).tolist() == [0, 1, 3, 2]


def test_warped_copy_keeps_structures_sides_and_air(tmp_path) -> None:
    names = ["block_left", "block_right"]
    subject = _subject()
    realdata.build_warped_copy(subject, "plain", np.full(3, 2.0), 0, False, -1024.0, names, tmp_path)
    realdata.build_warped_copy(subject, "mirror", np.full(3, 2.0), 1, True, -1024.0, names, tmp_path)
    for case, class_1_intensity in (("plain", 200.0), ("mirror", 40.0)):
        labels = np.asarray(nib.load(tmp_path / "labelsTr" / f"{case}.nii.gz").dataobj)
        image = np.asarray(nib.load(tmp_path / "imagesTr" / f"{case}_0000.nii.gz").dataobj)
        # the image is mirrored (the bright block changes side) but class 1 stays on its side: the pair is swapped
        assert np.argwhere(labels == 1)[:, 0].mean() < np.argwhere(labels == 2)[:, 0].mean()
        assert abs(np.median(image[labels == 1]) - class_1_intensity) < 10
        for value in (1, 2):                    # volume kept within the +-8 % scaling (cubed) and the field
            assert 0.6 * 8 * 20 * 20 < (labels == value).sum() < 1.4 * 8 * 20 * 20
        # air outside the body, the other block's tissue under class 2
        assert image[0, 0, 0] < -900 and abs(np.median(image[labels == 2]) - (240.0 - class_1_intensity)) < 10
