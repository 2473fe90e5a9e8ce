"""File jobs of `segkit convert`: label values read exactly, float label maps only when integral."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from convert_data import assert_fails

from segkit.io.convert import convert_dataset
from segkit.io.image import read_image, write_image


def test_float_brats_seg_is_accepted_only_when_integral(source_copy, tmp_path, capsys):
    source = source_copy("brats2021")
    seg = source / "BraTS2021_00001" / "BraTS2021_00001_seg.nii.gz"
    image = read_image(seg)
    write_image(image.array.astype(np.float64), image.geometry, seg)
    convert_dataset(source, tmp_path / "ok")
    stored = nib.load(tmp_path / "ok" / "labelsTr" / "BraTS2021_00001.nii.gz")
    assert stored.get_data_dtype() == np.uint8
    assert np.array_equal(np.asarray(stored.dataobj), np.where(nib.load(seg).get_fdata() == 4, 3, nib.load(seg).get_fdata()))
    write_image(image.array.astype(np.float32) + 0.25, image.geometry, seg)
    assert_fails(capsys, source, tmp_path / "bad", "non-integer", "BraTS2021_00001_seg.nii.gz")


@pytest.mark.parametrize("values", [[3, 1, 1, 0], [-128, 127, 0], [0, 100000, 7], [4]])
def test_present_values_matches_unique(values):
    from segkit.io.convert_files import present_values
    dtype = np.int8 if min(values) < 0 else np.int64
    array = np.array(values, dtype=dtype)
    assert present_values(array).tolist() == np.unique(array).tolist()
