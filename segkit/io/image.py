"""Read and write medical images with their full geometry.

Axis order: every array in segkit is in SimpleITK's ``GetArrayFromImage`` order,
i.e. (z, y, x) for 3D, and every per-axis quantity inside segkit (``Image.spacing``,
target spacing, patch size, strides) follows that array order. ``Geometry`` keeps
ITK's physical convention (x, y, z) for origin, spacing and direction so that an
output can be written back with the input's exact geometry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from segkit.errors import UserError
from segkit.io.integrity import check_complete
from segkit.jsonio import atomic_path

# The one list of image formats, for training data and prediction alike (docs/architecture.md, "Image formats").
# TIFF keeps only the in-plane spacing (no origin, direction or slice spacing).
SUPPORTED_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".tif", ".tiff")


@dataclass(frozen=True)
class Geometry:
    """Physical geometry of an image in ITK convention (x, y, z order)."""

    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    size: tuple[int, ...]

    @property
    def array_spacing(self) -> tuple[float, ...]:
        """Spacing in array axis order (z, y, x)."""
        return tuple(reversed(self.spacing))

    @property
    def array_shape(self) -> tuple[int, ...]:
        """Shape of the array this geometry describes (z, y, x)."""
        return tuple(reversed(self.size))

    def mismatch(self, other: Geometry, rel_tol: float = 1e-4, abs_tol_mm: float = 1e-3) -> str | None:
        """Describe the first difference from another geometry, or None when they match."""
        if self.size != other.size:
            return f"shape {other.array_shape} differs from {self.array_shape}"
        if not np.allclose(self.spacing, other.spacing, rtol=rel_tol, atol=0):
            return f"spacing {other.array_spacing} differs from {self.array_spacing}"
        scale = max(1.0, float(np.max(np.abs(self.origin))))
        if not np.allclose(self.origin, other.origin, rtol=0, atol=max(abs_tol_mm, rel_tol * scale)):
            return f"origin {other.origin} differs from {self.origin}"
        if not np.allclose(self.direction, other.direction, rtol=0, atol=rel_tol * 10):
            return f"direction {other.direction} differs from {self.direction}"
        return None

    def to_json(self) -> dict:
        """Geometry as a JSON-serialisable dict."""
        return {"spacing": list(self.spacing), "origin": list(self.origin),
                "direction": list(self.direction), "size": list(self.size)}

    @classmethod
    def from_json(cls, data: dict) -> Geometry:
        """Inverse of to_json."""
        return cls(tuple(float(v) for v in data["spacing"]), tuple(float(v) for v in data["origin"]),
                   tuple(float(v) for v in data["direction"]), tuple(int(v) for v in data["size"]))

    @classmethod
    def of_sitk(cls, image: sitk.Image) -> Geometry:
        """Geometry of a SimpleITK image."""
        return cls(tuple(image.GetSpacing()), tuple(image.GetOrigin()), tuple(image.GetDirection()),
                   tuple(image.GetSize()))

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Copy spacing, origin and direction onto a SimpleITK image."""
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image


@dataclass
class Image:
    """A numpy array in (z, y, x) order plus its geometry."""

    array: np.ndarray
    geometry: Geometry

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel spacing in array order (z, y, x), in mm."""
        return self.geometry.array_spacing


def image_suffix(path: str | Path) -> str:
    """Return the recognised image suffix of a path ('.nii.gz', '.nrrd', ...) or ''."""
    name = str(path).lower()
    for suffix in SUPPORTED_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return ""


def read_sitk(path: str | Path) -> sitk.Image:
    """Read an image with SimpleITK, turning any failure into a UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError("file not found", path)
    try:
        check_complete(path)  # ITK zero-fills truncated NIfTI files without an error
    except UserError as err:
        raise UserError(f"cannot read image ({err.message})", path) from None
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as err:
        reason = str(err).strip().splitlines()
        detail = next((line for line in reason if "rror" in line or "xception" in line), reason[-1] if reason else "")
        raise UserError(f"cannot read image ({detail.strip()[:200]})", path) from None


def read_image(path: str | Path, dtype: npt.DTypeLike | None = None) -> Image:
    """Read a 2D/3D scalar image (any SUPPORTED_SUFFIXES format) as an Image in (z, y, x) order."""
    sitk_image = read_sitk(path)
    if sitk_image.GetNumberOfComponentsPerPixel() != 1:
        raise UserError(f"has {sitk_image.GetNumberOfComponentsPerPixel()} components per voxel; "
                        "expected one channel per file", path)
    try:
        array = sitk.GetArrayFromImage(sitk_image)
    except RuntimeError as err:
        raise UserError(f"cannot read voxel data ({str(err).strip()[:200]})", path) from None
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return Image(array, Geometry.of_sitk(sitk_image))


def to_sitk(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    """Build a SimpleITK image from a (z, y, x) array and a geometry."""
    if tuple(reversed(array.shape)) != geometry.size:
        raise ValueError(f"array shape {array.shape} does not match geometry size {geometry.array_shape}")
    return geometry.apply_to(sitk.GetImageFromArray(array))


def write_image(array: np.ndarray, geometry: Geometry, path: str | Path, compress: bool = True) -> Path:
    """Write a (z, y, x) array with the given geometry atomically; the format follows the suffix."""
    path = Path(path)
    suffix = image_suffix(path)
    if not suffix:
        raise UserError(f"unsupported output format; use one of {', '.join(SUPPORTED_SUFFIXES)}", path)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype == np.int64:
        array = array.astype(np.int32)
    with atomic_path(path, suffix=suffix) as tmp:
        sitk.WriteImage(to_sitk(array, geometry), str(tmp), compress)
    return path


def read_label_map(path: Path) -> Image:
    """Read a label map, refusing non-integer voxel values."""
    image = read_image(path)
    if not np.issubdtype(image.array.dtype, np.integer):
        if not np.all(np.isfinite(image.array)) or not np.array_equal(image.array, np.round(image.array)):
            raise UserError("label map holds non-integer values", path)
        image.array = image.array.astype(np.int64)
    return image
