"""Detect truncated image files that ITK would otherwise read silently (zero-filled voxels).

ITK's NIfTI reader accepts a .nii.gz whose gzip stream ends early and returns the missing
voxels as zeros; a hospital batch must refuse such a file instead of segmenting half a scan.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from segkit.errors import UserError

_CHUNK = 1 << 20


def _gzip_payload_size(path: Path) -> int:
    """Decompressed size of a complete gzip file; UserError when the stream is cut or corrupt."""
    decompressor = zlib.decompressobj(wbits=31)
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            try:
                size += len(decompressor.decompress(chunk))
            except zlib.error as err:
                raise UserError(f"corrupt gzip data ({err})", path) from None
            # a finished member may be followed by another one (concatenated gzip)
            while decompressor.eof and decompressor.unused_data:
                rest = decompressor.unused_data
                decompressor = zlib.decompressobj(wbits=31)
                size += len(decompressor.decompress(rest))
    if not decompressor.eof:
        raise UserError("truncated file: the gzip stream ends before its end marker", path)
    return size


def _nifti_expected_size(path: Path) -> int | None:
    """Bytes a NIfTI file needs (header offset + voxel data), from its header; None when not NIfTI."""
    import nibabel as nib

    try:
        header: Any = nib.load(str(path)).header    # any spatial header: vox_offset/dtype/shape
    except Exception:  # not parseable as NIfTI by nibabel: leave the verdict to ITK
        return None
    offset = int(header.get("vox_offset", 0))
    itemsize = np.dtype(header.get_data_dtype()).itemsize
    return offset + int(np.prod(header.get_data_shape(), dtype=np.int64)) * itemsize


def _gzip_trailer_size(path: Path) -> int | None:
    """The uncompressed size (mod 2**32) a gzip file's trailer claims; None when too short."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        if handle.tell() < 18:
            return None
        handle.seek(-4, 2)
        return int.from_bytes(handle.read(4), "little")


def check_complete(path: str | Path) -> None:
    """Raise a UserError when a (.nii/.nii.gz/any .gz) image file is truncated."""
    path = Path(path)
    name = path.name.lower()
    if not (name.endswith(".gz") or name.endswith(".nii")):
        return
    if name.endswith(".nii.gz"):
        # Fast path: a complete single-member file ends with its uncompressed size; a cut file
        # ends inside the deflate stream, which matches the expected size only by coincidence.
        expected = _nifti_expected_size(path)
        if expected is not None and _gzip_trailer_size(path) == expected % 2 ** 32:
            return
    size = _gzip_payload_size(path) if name.endswith(".gz") else path.stat().st_size
    if name.endswith((".nii", ".nii.gz")):
        expected = _nifti_expected_size(path)
        if expected is not None and size < expected:
            raise UserError(f"truncated file: {size} bytes of image data, the header needs {expected}", path)
