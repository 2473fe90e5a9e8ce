"""File-level conversion jobs (copy, split a 4D NIfTI into channels, remap a label map).

NIfTI files are handled with nibabel and keep their header (sform, qform, pixdim,
units) byte for byte, so every output has exactly the source's geometry. Going through
SimpleITK instead would re-derive the sform from a float64 direction and move it by
~1e-9, which is why SimpleITK is only the fallback for non-NIfTI sources.
"""

from __future__ import annotations

import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from segkit.errors import UserError
from segkit.io.image import image_suffix, read_sitk
from segkit.jsonio import atomic_path

NIFTI_SUFFIXES = (".nii.gz", ".nii")
# nibabel signals a broken file with any of these, depending on where the damage is
NIBABEL_ERRORS = (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError, zlib.error, MemoryError)


@dataclass(frozen=True)
class FileJob:
    """One conversion step: read src, write dests. kind: 'copy' | 'split' | 'label'."""

    kind: str
    src: str
    dests: tuple[str, ...]
    value_map: tuple[tuple[int, int], ...] = ()   # 'label': original value -> stored value
    label_format: str = ""                         # 'label': named in error messages


def run_job(job: FileJob) -> tuple[str, str] | None:
    """Execute one job; return (message, path) for a user error instead of raising."""
    try:
        if job.kind == "copy":
            copy_image(Path(job.src), Path(job.dests[0]))
        elif job.kind == "split":
            split_channels(Path(job.src), [Path(d) for d in job.dests])
        elif job.kind == "label":
            remap_label(Path(job.src), Path(job.dests[0]), dict(job.value_map), job.label_format)
        else:
            raise ValueError(f"unknown job kind {job.kind!r}")
    except UserError as err:
        message = str(err)
        prefix = f"{err.path}: "
        return (message[len(prefix):] if err.path and message.startswith(prefix) else message), err.path or job.src
    except OSError as err:   # unreadable source, full disk, no permission: still one line naming the file
        return f"cannot convert ({err.strerror or err})", err.filename or job.src
    return None


def load_nifti(path: Path) -> nib.Nifti1Image:
    """Open a NIfTI file (header only; voxels are read lazily), naming the file on failure."""
    if not path.is_file():
        raise UserError("file not found", path)
    try:
        image = nib.load(str(path))
    except NIBABEL_ERRORS as err:
        raise UserError(f"cannot read NIfTI header ({type(err).__name__}: {str(err)[:150]})", path) from None
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise UserError("is not a NIfTI image", path)
    return image


def read_voxels(image: nib.Nifti1Image, path: Path, scaled: bool = True) -> np.ndarray:
    """Read the voxel array (scaled: with scl_slope/scl_inter applied), naming the file on failure."""
    try:
        return np.asanyarray(image.dataobj) if scaled else np.asanyarray(image.dataobj.get_unscaled())  # type: ignore[attr-defined]  # a loaded file's dataobj is an ArrayProxy (typed ArrayLike)
    except NIBABEL_ERRORS as err:
        raise UserError(f"cannot read voxel data, file truncated or corrupt ({type(err).__name__})", path) from None


def _save_nifti(image: nib.Nifti1Image, dest: Path) -> None:
    """Save a nibabel image atomically."""
    with atomic_path(dest, suffix=image_suffix(dest)) as tmp:
        nib.save(image, str(tmp))


def _header_copy_image(data: np.ndarray, source: nib.Nifti1Image, slope: float = 1.0,
                       inter: float = 0.0) -> nib.Nifti1Image:
    """A new NIfTI image with the data and an exact copy of the source's geometry header fields."""
    header = source.header.copy()
    header.set_data_dtype(data.dtype)
    image = type(source)(data, None, header=header)
    image.set_sform(source.header.get_sform(), int(source.header["sform_code"]))
    image.set_qform(source.header.get_qform(), int(source.header["qform_code"]))
    image.header.set_slope_inter(slope, inter)
    return image


def copy_image(src: Path, dest: Path) -> None:
    """Copy an image; byte copy when the suffix is unchanged, else re-save keeping the header."""
    if not src.is_file():
        raise UserError("file not found", src)
    if image_suffix(src) == image_suffix(dest):
        with atomic_path(dest, suffix=image_suffix(dest)) as tmp:
            shutil.copyfile(src, tmp)
        return
    if image_suffix(src) in NIFTI_SUFFIXES and image_suffix(dest) in NIFTI_SUFFIXES:
        source = load_nifti(src)
        _save_nifti(_header_copy_image(read_voxels(source, src, scaled=False), source,
                                       source.dataobj.slope, source.dataobj.inter), dest)  # type: ignore[attr-defined]  # a loaded file's dataobj is an ArrayProxy (typed ArrayLike)
        return
    image = read_sitk(src)
    with atomic_path(dest, suffix=image_suffix(dest)) as tmp:
        sitk.WriteImage(image, str(tmp), True)


def split_channels(src: Path, dests: list[Path]) -> None:
    """Split a 4D image (x, y, z, channel) into one 3D file per channel with identical geometry."""
    if image_suffix(src) not in NIFTI_SUFFIXES:
        _split_channels_sitk(src, dests)
        return
    source = load_nifti(src)
    shape = source.shape
    if len(shape) == 3 and len(dests) == 1:
        copy_image(src, dests[0])
        return
    if len(shape) != 4 or shape[3] != len(dests):
        found = shape[3] if len(shape) == 4 else 1
        raise UserError(f"has {found} channel(s) (shape {tuple(shape)}); dataset.json declares {len(dests)}", src)
    data = read_voxels(source, src, scaled=False)   # stored values; the scaling is copied
    for channel, dest in enumerate(dests):
        _save_nifti(_header_copy_image(np.ascontiguousarray(data[..., channel]), source,
                                       source.dataobj.slope, source.dataobj.inter), dest)  # type: ignore[attr-defined]  # a loaded file's dataobj is an ArrayProxy (typed ArrayLike)


def _split_channels_sitk(src: Path, dests: list[Path]) -> None:
    """SimpleITK fallback of split_channels for 4D NRRD/MHA sources."""
    image = read_sitk(src)
    size = list(image.GetSize())
    if image.GetDimension() == 3 and len(dests) == 1:
        copy_image(src, dests[0])
        return
    if image.GetDimension() != 4 or size[3] != len(dests):
        raise UserError(f"has size {tuple(size)}; expected 4D with {len(dests)} channels", src)
    for channel, dest in enumerate(dests):
        collapse = sitk.ExtractImageFilter.DIRECTION_COLLAPSE_TO_SUBMATRIX  # type: ignore[attr-defined]  # stub lacks it
        volume = sitk.Extract(image, size[:3] + [0], [0, 0, 0, channel], collapse)
        with atomic_path(dest, suffix=image_suffix(dest)) as tmp:
            sitk.WriteImage(volume, str(tmp), True)


def integer_labels(data: np.ndarray, path: Path) -> np.ndarray:
    """The label array as int64, refusing fractional or non-finite values."""
    if np.issubdtype(data.dtype, np.floating):
        if not np.all(np.isfinite(data)):
            raise UserError("label map contains NaN or Inf", path)
        if np.any(data != np.round(data)):
            raise UserError("label map has non-integer values", path)
    elif not np.issubdtype(data.dtype, np.integer) and data.dtype != bool:
        raise UserError(f"label map has unsupported voxel type {data.dtype}", path)
    return data.astype(np.int64) if np.issubdtype(data.dtype, np.floating) or data.dtype == bool else data


def present_values(labels: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array (bincount: much faster than np.unique here)."""
    low, high = int(labels.min()), int(labels.max())
    if high - low > 65536:
        return np.unique(labels)
    shifted = (labels.astype(np.int64) - low) if low else labels
    counts = np.bincount(shifted.ravel(), minlength=high - low + 1)
    return np.flatnonzero(counts) + low


def remap_label(src: Path, dest: Path, value_map: dict[int, int], label_format: str) -> None:
    """Rewrite a label map as uint8 with values mapped through value_map, keeping the geometry."""
    source = load_nifti(src)
    if len(source.shape) != 3:
        raise UserError(f"label map has shape {tuple(source.shape)}; expected 3D", src)
    labels = integer_labels(read_voxels(source, src), src)
    found = present_values(labels)
    unknown = [int(v) for v in found if int(v) not in value_map]
    if unknown:
        raise UserError(f"label values {unknown} are not {label_format} labels {sorted(value_map)}", src)
    lookup = np.zeros(int(found.max()) + 1, dtype=np.uint8)
    for original, stored in value_map.items():
        if original < lookup.size:
            lookup[original] = stored
    _save_nifti(_header_copy_image(lookup[labels], source), dest)
