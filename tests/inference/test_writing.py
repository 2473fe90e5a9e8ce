"""Label maps written with the reference image's header bit for bit (segkit.inference.writing): NIfTI through its
sform/qform/pixdim, attached-header NRRD through its header lines, anything else through the geometry."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from segkit.inference.writing import write_label_like
from segkit.io.image import Geometry, read_image, write_image

SHAPE = (5, 6, 7)   # (z, y, x)
COS, SIN = float(np.cos(0.3)), float(np.sin(0.3))


def _labels() -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint8)
    labels[1:4, 2:5, 1:6] = 2
    labels[2, 3, 3] = 1
    return labels


def _nifti_reference(path) -> None:
    """A float image whose affine carries an oblique direction and a spacing float32 cannot hold exactly."""
    affine = np.array([[0.9 * COS, -0.7 * SIN, 0.0, -31.3], [0.9 * SIN, 0.7 * COS, 0.0, 12.17],
                       [0.0, 0.0, 2.2, 40.01], [0, 0, 0, 1]])
    image = nib.Nifti1Image(np.random.default_rng(0).normal(size=SHAPE[::-1]).astype(np.float32), affine)
    image.set_qform(affine, 1)
    image.header.set_slope_inter(2.0, 5.0)   # an intensity scaling the label map must not inherit
    nib.save(image, str(path))


def test_a_nifti_output_keeps_the_references_sform_qform_and_pixdim_exactly(tmp_path):
    reference = tmp_path / "ref.nii.gz"
    _nifti_reference(reference)
    geometry = read_image(reference).geometry
    out = write_label_like(_labels(), geometry, tmp_path / "out.nii.gz", reference)
    written, source = nib.load(str(out)), nib.load(str(reference))
    assert np.array_equal(written.header.get_sform(), source.header.get_sform())
    assert np.array_equal(written.header.get_qform(), source.header.get_qform())
    assert np.array_equal(written.header["pixdim"], source.header["pixdim"])
    assert written.get_data_dtype() == np.uint8 and written.header.get_slope_inter() in ((1.0, 0.0), (None, None))
    np.testing.assert_array_equal(read_image(out).array, _labels())
    assert read_image(out).geometry == geometry
    assert not [p.name for p in tmp_path.iterdir() if p.name not in ("ref.nii.gz", "out.nii.gz")]


def test_an_nrrd_output_reuses_the_references_header_lines(tmp_path):
    reference = tmp_path / "ref.nrrd"
    spacing = (0.9, 0.7, 2.2)
    geometry = Geometry(spacing, (-31.3, 12.17, 40.01), (COS, -SIN, 0.0, SIN, COS, 0.0, 0.0, 0.0, 1.0), SHAPE[::-1])
    write_image(np.random.default_rng(0).normal(size=SHAPE).astype(np.float32), geometry, reference)
    out = write_label_like(_labels(), read_image(reference).geometry, tmp_path / "out.nrrd", reference)
    header = out.read_bytes().split(b"\n\n", 1)[0].decode("latin-1").split("\n")
    reference_header = reference.read_bytes().split(b"\n\n", 1)[0].decode("latin-1").split("\n")
    spatial = [line for line in reference_header if line.split(":")[0] in ("space directions", "space origin", "sizes")]
    assert all(line in header for line in spatial) and "type: uint8" in header and "encoding: gzip" in header
    data = gzip.decompress(out.read_bytes().split(b"\n\n", 1)[1])
    np.testing.assert_array_equal(np.frombuffer(data, np.uint8).reshape(SHAPE), _labels())
    image = sitk.ReadImage(str(out))
    assert Geometry.of_sitk(image) == read_image(reference).geometry


@pytest.mark.parametrize("reference_name, out_name", [(None, "out.nii.gz"), ("ref.nii.gz", "out.mha"),
                                                      ("ref.nii.gz", "wrong_shape.nii.gz")])
def test_otherwise_the_geometry_is_written(tmp_path, reference_name, out_name):
    reference = None
    if reference_name:
        reference = tmp_path / reference_name
        _nifti_reference(reference)
    geometry = Geometry((1.5, 1.0, 2.0), (3.0, -4.0, 5.0), tuple(np.eye(3).ravel()), SHAPE[::-1])
    labels = _labels() if out_name != "wrong_shape.nii.gz" else np.zeros((4, 4, 4), np.uint8)
    if out_name == "wrong_shape.nii.gz":
        geometry = Geometry(geometry.spacing, geometry.origin, geometry.direction, (4, 4, 4))
    out = write_label_like(labels, geometry, tmp_path / out_name, reference)
    stored = read_image(out)
    np.testing.assert_array_equal(stored.array, labels)
    assert stored.geometry.mismatch(geometry) is None
