"""Images with their geometry: written and read back exactly in each format; geometry differences named; bad files refused."""

from __future__ import annotations

import numpy as np
import pytest

from segkit.errors import UserError
from segkit.io.image import Geometry, read_image, read_label_map, write_image

TILTED = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)   # a permuted direction, not the identity


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_array_and_geometry_round_trip(tmp_path, suffix: str) -> None:
    geometry = Geometry((0.8, 0.9, 3.0), (-12.5, 40.0, 7.25), TILTED, (6, 5, 4))
    array = np.arange(120, dtype=np.int16).reshape(geometry.array_shape)
    image = read_image(write_image(array, geometry, tmp_path / f"c{suffix}"))
    np.testing.assert_array_equal(image.array, array)
    assert image.array.dtype == np.int16 and image.spacing == pytest.approx((3.0, 0.9, 0.8), rel=1e-6)  # NIfTI: float32
    assert geometry.mismatch(image.geometry) is None
    assert Geometry.from_json(geometry.to_json()) == geometry


def test_geometry_mismatch_names_the_first_difference() -> None:
    geometry = Geometry((1.0, 1.0, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()), (4, 5, 6))
    assert "shape (7, 5, 4) differs" in geometry.mismatch(Geometry(geometry.spacing, geometry.origin,
                                                                   geometry.direction, (4, 5, 7)))
    assert "spacing" in geometry.mismatch(Geometry((1.0, 1.0, 2.1), geometry.origin, geometry.direction,
                                                   geometry.size))
    assert geometry.mismatch(Geometry(geometry.spacing, (0.0, 0.0, 0.0005), geometry.direction,
                                      geometry.size)) is None      # within the 1 µm tolerance


def test_bad_files_are_user_errors_naming_the_file(tmp_path) -> None:
    geometry = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()), (3, 3, 3))
    with pytest.raises(UserError, match="unsupported output format"):
        write_image(np.zeros((3, 3, 3)), geometry, tmp_path / "c.png")
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not an image")
    with pytest.raises(UserError, match="cannot read image") as err:
        read_image(broken)
    assert err.value.path == str(broken)
    write_image(np.full((3, 3, 3), 1.5, dtype=np.float32), geometry, tmp_path / "soft.nii.gz")
    with pytest.raises(UserError, match="non-integer values"):
        read_label_map(tmp_path / "soft.nii.gz")
    write_image(np.full((3, 3, 3), 2.0, dtype=np.float32), geometry, tmp_path / "whole.nii.gz")
    assert read_label_map(tmp_path / "whole.nii.gz").array.dtype == np.int64
