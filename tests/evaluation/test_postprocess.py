"""`segkit postprocess` on a folder: the decision applied to each label map, geometry kept; bad inputs refused."""

from __future__ import annotations

import numpy as np
import pytest

from segkit.errors import UserError
from segkit.evaluation.postprocess import postprocess_folder
from segkit.io.image import Geometry, read_image, write_image

GEOMETRY = Geometry((1.0, 1.0, 2.0), (5.0, -3.0, 1.5), tuple(np.eye(3).ravel()), (8, 8, 4))


def test_the_largest_foreground_component_is_kept_in_every_file(tmp_path) -> None:
    labels = np.zeros(GEOMETRY.array_shape, dtype=np.uint8)
    labels[0:2, 0:4, 0:4] = 1
    labels[3, 7, 7] = 2                                  # a stray voxel, not connected
    for name in ("a.nii.gz", "b.nii.gz"):
        write_image(labels, GEOMETRY, tmp_path / "in" / name)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    written = postprocess_folder(tmp_path / "in", tmp_path / "out", {"foreground_lcc": True, "lcc_classes": {}})
    assert [p.name for p in written] == ["a.nii.gz", "b.nii.gz"]
    out = read_image(tmp_path / "out" / "a.nii.gz")
    assert out.array[3, 7, 7] == 0 and int((out.array == 1).sum()) == 32
    assert GEOMETRY.mismatch(out.geometry) is None


def test_missing_empty_or_non_integer_inputs_are_user_errors(tmp_path) -> None:
    decision = {"foreground_lcc": True, "lcc_classes": {}}
    with pytest.raises(UserError, match="input folder not found"):
        postprocess_folder(tmp_path / "none", tmp_path / "out", decision)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no label maps found"):
        postprocess_folder(tmp_path / "empty", tmp_path / "out", decision)
    write_image(np.zeros(GEOMETRY.array_shape, np.float32), GEOMETRY, tmp_path / "soft" / "c.nii.gz")
    with pytest.raises(UserError, match="non-integer voxel type float32"):
        postprocess_folder(tmp_path / "soft", tmp_path / "out2", decision)
    assert not (tmp_path / "out2" / "c.nii.gz").exists()
