"""Write label maps whose header reproduces a reference image's geometry bit for bit.

SimpleITK derives a NIfTI's direction from its float32 sform and re-orthogonalises it, so
writing a read-back geometry again can move the direction by ~1e-9. When input and output
are both NIfTI, the output therefore reuses the reference's header (sform, qform, pixdim,
units) through nibabel. NRRD stores spacing times direction, so a read-back spacing of 0.9
becomes 0.9000000000000001: an attached-header .nrrd output reuses the reference's header
lines. Other formats go through `segkit.io.write_image` (MetaImage round-trips exactly).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from segkit.io.image import Geometry, image_suffix, write_image
from segkit.jsonio import atomic_path

if TYPE_CHECKING:
    import nibabel as nib

NIFTI_SUFFIXES = (".nii", ".nii.gz")
NRRD_TYPES = {np.dtype(np.uint8): "uint8", np.dtype(np.int16): "int16", np.dtype(np.int32): "int32"}
NRRD_REPLACED_FIELDS = ("type", "encoding", "endian", "data file", "datafile", "line skip", "byte skip")


def _nifti_like(labels: np.ndarray, reference: Path) -> nib.Nifti1Image | nib.Nifti2Image | None:
    """A nibabel image of (z, y, x) labels with the reference's geometry header, or None if not possible."""
    import nibabel as nib

    try:
        source = nib.load(str(reference))
    except Exception:  # an unreadable reference just means: fall back to the geometry
        return None
    if not isinstance(source, (nib.Nifti1Image, nib.Nifti2Image)) or tuple(source.shape[:3]) != labels.shape[::-1]:
        return None
    header = source.header.copy()
    data = np.ascontiguousarray(labels.transpose(2, 1, 0))
    header.set_data_dtype(data.dtype)
    image = type(source)(data, None, header=header)
    image.set_sform(source.header.get_sform(), int(source.header["sform_code"]))
    image.set_qform(source.header.get_qform(), int(source.header["qform_code"]))
    image.header.set_slope_inter(1.0, 0.0)
    image.header["cal_min"], image.header["cal_max"] = 0, 0
    return image


def _nrrd_header_like(labels: np.ndarray, reference: Path) -> list[str] | None:
    """The reference's NRRD header lines with the type/encoding of the labels, or None if not possible."""
    try:
        with open(reference, "rb") as handle:
            raw = handle.read(65536)
    except OSError:
        return None
    end = raw.find(b"\n\n")
    if not raw.startswith(b"NRRD") or end < 0 or labels.dtype not in NRRD_TYPES:
        return None
    lines = raw[:end].decode("latin-1").split("\n")
    fields = {line.split(":", 1)[0].strip().lower(): line for line in lines[1:] if ":" in line and not line.startswith("#")}
    sizes = fields.get("sizes", "").split(":", 1)[-1].split()
    if fields.get("dimension", "").split(":")[-1].strip() != "3" or [int(n) for n in sizes] != list(labels.shape[::-1]):
        return None
    kept = [line for line in lines[1:] if line.split(":", 1)[0].strip().lower() not in NRRD_REPLACED_FIELDS]
    return [lines[0], f"type: {NRRD_TYPES[labels.dtype]}", "encoding: gzip", "endian: little", *kept]


def _write_nrrd(labels: np.ndarray, header: list[str], path: Path) -> None:
    """Write an attached-header gzip NRRD atomically."""
    with atomic_path(path, suffix=".nrrd") as tmp:
        with open(tmp, "wb") as handle:
            handle.write(("\n".join(header) + "\n\n").encode("latin-1"))
            handle.write(gzip.compress(np.ascontiguousarray(labels).astype(labels.dtype.newbyteorder("<")).tobytes(),
                                       compresslevel=6))


def write_label_like(labels: np.ndarray, geometry: Geometry, path: str | Path,
                     reference: str | Path | None = None) -> Path:
    """Write a (z, y, x) label map atomically with the reference file's exact header when both are NIfTI."""
    path = Path(path)
    if reference is not None and image_suffix(path) in NIFTI_SUFFIXES and image_suffix(reference) in NIFTI_SUFFIXES:
        image = _nifti_like(labels, Path(reference))
        if image is not None:
            import nibabel as nib

            with atomic_path(path, suffix=image_suffix(path)) as tmp:
                nib.save(image, str(tmp))
            return path
    if reference is not None and image_suffix(path) == ".nrrd" and image_suffix(reference) == ".nrrd":
        header = _nrrd_header_like(labels, Path(reference))
        if header is not None:
            _write_nrrd(labels, header, path)
            return path
    return write_image(labels, geometry, path)
