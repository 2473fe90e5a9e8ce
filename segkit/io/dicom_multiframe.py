"""Read one enhanced or legacy-converted multi-frame DICOM image (MR, CT, PET ...) as a 3D volume.

Such a file holds every slice as a frame; its geometry is in the functional groups
(PS3.3 C.7.6.16): per frame (or shared) PlanePositionSequence > ImagePositionPatient,
PlaneOrientationSequence > ImageOrientationPatient, PixelMeasuresSequence > PixelSpacing and
PixelValueTransformationSequence > RescaleSlope/Intercept. The frames are sorted along the
slice normal (row x column direction cosines), as the series reader sorts single-frame slices,
and `MultiFrameVolume.frame_order[k]` is the source frame of volume slice k (a DICOM-SEG over
the file maps its frames back with it).

Refused with one message naming the file: frames at repeated positions (several echoes, time
points or b-values in one object: not one volume), frames with different orientations or
pixel spacings, positions off one line or not along the normal, and uneven spacing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from segkit.errors import UserError
from segkit.io.image import Geometry


@dataclass
class MultiFrameVolume:
    """A multi-frame file's frames as a (z, y, x) float32 volume, its geometry and frame order."""

    array: np.ndarray
    geometry: Geometry
    frame_order: tuple[int, ...]


def _item(dataset, sequence: str):
    """The single item of a functional group sequence, or None."""
    items = dataset.get(sequence)
    return items[0] if items else None


def _frame_value(shared, frame, sequence: str, keyword: str):
    """A functional group attribute for one frame: its per-frame value, else the shared one, else None."""
    for group in (frame, shared):
        item = _item(group, sequence) if group is not None else None
        if item is not None and keyword in item:
            return item.get(keyword)
    return None


def _per_frame(dataset, sequence: str, keyword: str, frames: int) -> list:
    """Every frame's value of a functional group attribute (None where absent)."""
    shared = _item(dataset, "SharedFunctionalGroupsSequence")
    per_frame = list(dataset.get("PerFrameFunctionalGroupsSequence", [])) or [None] * frames
    if len(per_frame) != frames:
        raise UserError(f"multi-frame image has {frames} frames but {len(per_frame)} per-frame functional groups",
                        dataset.filename)
    return [_frame_value(shared, frame, sequence, keyword) for frame in per_frame]


def _numbers(values: list, count: int, what: str, path: Path) -> np.ndarray:
    """A (frames, count) float array of a per-frame attribute; UserError naming what is missing."""
    if any(v is None for v in values):
        raise UserError(f"multi-frame image lacks {what} for some frames; cannot place its slices", path)
    array = np.array([[float(x) for x in (v if count > 1 else [v])] for v in values], dtype=np.float64)
    if array.shape != (len(values), count):
        raise UserError(f"multi-frame image has a malformed {what}", path)
    return array


def _rescale(dataset, frames: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame rescale slope and intercept (functional groups, else the top-level attributes, else 1 and 0)."""
    slopes = _per_frame(dataset, "PixelValueTransformationSequence", "RescaleSlope", frames)
    intercepts = _per_frame(dataset, "PixelValueTransformationSequence", "RescaleIntercept", frames)
    slope = np.array([float(s) if s is not None else float(dataset.get("RescaleSlope", 1) or 1) for s in slopes])
    intercept = np.array([float(i) if i is not None else float(dataset.get("RescaleIntercept", 0) or 0)
                          for i in intercepts])
    return slope, intercept


def read_multiframe(path: str | Path) -> MultiFrameVolume:
    """Read a multi-frame image file into a volume sorted along the slice normal; UserError naming the file."""
    path = Path(path)
    try:
        dataset = pydicom.dcmread(path)
    except Exception as err:  # a damaged file is the user's problem, whatever pydicom raised
        raise UserError(f"cannot read the multi-frame DICOM file ({type(err).__name__})", path) from None
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames < 2:
        raise UserError("multi-frame image has a single frame: not a 3D volume", path)
    if int(dataset.get("SamplesPerPixel", 1) or 1) != 1:
        raise UserError(f"multi-frame image has {dataset.SamplesPerPixel} samples per pixel (colour); "
                        "a volume needs one", path)
    positions = _numbers(_per_frame(dataset, "PlanePositionSequence", "ImagePositionPatient", frames), 3,
                         "ImagePositionPatient (PlanePositionSequence)", path)
    orientations = _numbers(_per_frame(dataset, "PlaneOrientationSequence", "ImageOrientationPatient", frames), 6,
                            "ImageOrientationPatient (PlaneOrientationSequence)", path)
    spacings = _numbers(_per_frame(dataset, "PixelMeasuresSequence", "PixelSpacing", frames), 2,
                        "PixelSpacing (PixelMeasuresSequence)", path)
    for name, values, tolerance in (("orientation", orientations, 1e-3), ("pixel spacing", spacings, 1e-4)):
        differs = np.flatnonzero(np.max(np.abs(values - values[0]), axis=1) > tolerance)
        if differs.size:
            raise UserError(f"multi-frame image: frame {int(differs[0]) + 1} has another {name} than frame 1 "
                            "(not one volume)", path)
    row, column = orientations[0, :3], orientations[0, 3:]
    normal = np.cross(row, column)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    steps = np.diff(along[order])
    repeated = np.flatnonzero(np.abs(steps) < 1e-3)
    if repeated.size:
        count = len(np.unique(np.round(along, 3)))
        raise UserError(f"multi-frame image holds {frames} frames at only {count} slice positions (several echoes, "
                        "time points or b-values in one object): multi-frame images with more than one frame per "
                        "position are not supported; export one volume per series", path)
    sorted_positions = positions[order]
    _check_line(sorted_positions, normal, float(min(spacings[0])), path)
    typical = float(np.median(steps))
    worst = int(np.argmax(np.abs(steps - typical)))
    if abs(steps[worst] - typical) > 0.01 * abs(typical) + 1e-3:
        raise UserError(f"multi-frame image: missing or unevenly spaced frames: gap of {steps[worst]:.3g} mm between "
                        f"frames {int(order[worst]) + 1} and {int(order[worst + 1]) + 1} (typical {typical:.3g} mm)",
                        path)
    try:
        pixels = dataset.pixel_array
    except Exception as err:  # no decoder plugin for this transfer syntax, or damaged pixel data
        first = str(err).strip().splitlines()[0][:150] if str(err).strip() else ""
        raise UserError(f"cannot decode the multi-frame pixel data ({type(err).__name__}: {first})", path) from None
    stored = np.asarray(pixels).reshape(frames, int(dataset.Rows), int(dataset.Columns))
    slope, intercept = _rescale(dataset, frames, path)
    volume = (stored[order].astype(np.float32) * slope[order, None, None].astype(np.float32)
              + intercept[order, None, None].astype(np.float32))
    # ITK order: spacing (column spacing = x, row spacing = y, slice step), direction columns row/column/normal
    direction = np.stack([row, column, normal], axis=1)
    geometry = Geometry((float(spacings[0][1]), float(spacings[0][0]), typical), tuple(map(float, sorted_positions[0])),
                        tuple(float(v) for v in direction.reshape(-1)),
                        (int(dataset.Columns), int(dataset.Rows), frames))
    return MultiFrameVolume(volume, geometry, tuple(int(i) for i in order))


def _check_line(positions: np.ndarray, normal: np.ndarray, pixel: float, path: Path) -> None:
    """Refuse frame positions off one line, or a line not along the slice normal (gantry tilt, shear)."""
    along = positions[-1] - positions[0]
    unit = along / np.linalg.norm(along)
    offsets = positions - positions[0]
    distances = np.linalg.norm(offsets - np.outer(offsets @ unit, unit), axis=1)
    if distances.max() > max(0.01, 0.05 * pixel):
        raise UserError(f"multi-frame image: frame positions are not on one line (up to {distances.max():.3g} mm off)",
                        path)
    angle = float(np.degrees(np.arccos(min(1.0, abs(float(unit @ normal))))))
    if angle > 0.5:
        raise UserError(f"multi-frame image: frame positions run at {angle:.1f} degrees to the slice normal (gantry "
                        "tilt or a sheared stack); resample it to an orthogonal grid first", path)
