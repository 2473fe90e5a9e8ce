"""One canonical orientation for every array a network sees: lossless axis permutation + flips.

Naming. An orientation code names, for ITK index axes i, j, k (array axes x, y, z), the patient
direction each axis *increases towards*, in DICOM's patient frame: L(eft)/R(ight),
P(osterior)/A(nterior), S(uperior)/I(nferior). The identity ITK direction (what DICOM and ITK
call the LPS frame) is "LPS"; an image that NIfTI tools store "RAS" (nibabel's
``aff2axcodes`` naming, the same convention) has the ITK direction diag(-1, -1, 1) and code "RAS".
(ITK's own ``SpatialOrientation`` enum names axes by where they come *from*, so it calls the
identity "RAI"; segkit never uses that naming.)

Canonical frame ``CANONICAL = "LPS"``: arrays (z, y, x) with x increasing towards the patient's
left, y towards posterior, z towards superior, i.e. the ITK direction closest to the identity.
An image is brought there by permuting and reversing array axes only: nothing is resampled and
the inverse is exact. For an oblique image each index axis goes to the patient axis it is most
aligned with (largest absolute direction cosine, chosen jointly so it is a permutation); the
remaining rotation (``oblique_degrees``) stays in the canonical geometry. It is not bounded by
45 degrees: (1/3)[[2, -1, 2], [2, 2, -1], [-1, 2, 2]] leaves 48.19 degrees on every axis, and
because the three axes are assigned jointly one axis can be left up to ``MAX_RESIDUAL_DEGREES``
(60.72) off its patient axis. Preprocessing never resamples it away; prediction does, for an
input more oblique than the training images (``axis_alignment_limit``,
`segkit.preprocessing.oblique`).

Plans say which frame their networks were trained in (``plans["canonical_orientation"]``):
``"LPS"`` (reorient every image), ``"as_stored"`` (explicitly none, nnU-Net's convention) or
absent (a plan made before segkit reoriented: handled as stored, with ``LEGACY_WARNING``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segkit.errors import UserError
from segkit.io.image import Geometry
from segkit.plans import Plans, canonical_orientation_of, oblique_inputs_of, training_orientations_of

CANONICAL = "LPS"
AS_STORED = "as_stored"
PLANS_KEY = "canonical_orientation"
# Patient-axis letters for the + and - direction of physical axes x, y, z (DICOM/ITK LPS frame).
POSITIVE, NEGATIVE = "LPS", "RAI"
# An input more oblique than any training image by more than this is resampled onto the canonical
# axis-aligned grid at prediction (plans["oblique_inputs"]["resample_above_degrees"] is recorded as the
# training images' largest residual rotation plus this margin; a plan may set another limit).
OBLIQUE_MARGIN_DEGREES = 5.0
OBLIQUE_KEY = "oblique_inputs"
# Below this an input is axis-aligned: permuting/flipping it is exact, there is nothing to resample.
AXIS_ALIGNED_DEGREES = 0.01
# The largest residual rotation `oblique_degrees` can report (the supremum over all orthonormal
# directions of the jointly assigned axes' worst angle, found numerically: 60.7224 degrees, reached
# where the assignment trades one axis for the other two; tests/preprocessing/test_orientation.py checks it).
MAX_RESIDUAL_DEGREES = 60.73
LEGACY_WARNING = ("this model's plans.json has no 'canonical_orientation': it was planned before segkit reoriented "
                  "images, so its network saw arrays as stored and left/right are only right for inputs stored like "
                  "its training images. Re-run `segkit plan` (or `plan --force`), `segkit preprocess --force` and "
                  "`segkit train` to get an orientation-safe model")


def direction_matrix(direction: Sequence[float]) -> np.ndarray:
    """The ITK row-major direction (9 or 4 values) as an n x n matrix; column j = index axis j's direction."""
    values = np.asarray(direction, dtype=float)
    n = int(round(math.sqrt(values.size)))
    if n * n != values.size or n not in (2, 3):
        raise ValueError(f"direction must have 4 or 9 values, got {values.size}")
    return values.reshape(n, n)


def _best_assignment(matrix: np.ndarray) -> tuple[int, ...]:
    """perm[k] = index axis assigned to physical axis k, maximising the summed |cosines| (ties: lowest order)."""
    n = matrix.shape[0]
    best, best_score = tuple(range(n)), -1.0
    for perm in itertools.permutations(range(n)):
        score = sum(abs(matrix[k, perm[k]]) for k in range(n))
        if score > best_score + 1e-9:
            best, best_score = perm, score
    return best


def orientation_code(direction: Sequence[float]) -> str:
    """Where each index axis (i, j, k) points, e.g. 'LPS' for the identity, 'RAS' for diag(-1, -1, 1)."""
    matrix = direction_matrix(direction)
    perm = _best_assignment(matrix)
    letters = [""] * matrix.shape[0]
    for physical, index_axis in enumerate(perm):
        letters[index_axis] = (POSITIVE if matrix[physical, index_axis] >= 0 else NEGATIVE)[physical]
    return "".join(letters)


def is_rotation(direction: Sequence[float], tol: float = 1e-3) -> bool:
    """True when the direction matrix is orthonormal (a rotation, possibly with a reflection)."""
    matrix = direction_matrix(direction)
    return bool(np.allclose(matrix.T @ matrix, np.eye(matrix.shape[0]), atol=tol))


@dataclass(frozen=True)
class Reorientation:
    """How stored (..., z, y, x) arrays become canonical: canonical array axis a is stored axis ``axes[a]``,
    reversed when ``flips[a]``. ``code`` is the stored orientation code."""

    axes: tuple[int, ...]
    flips: tuple[bool, ...]
    code: str

    @property
    def is_identity(self) -> bool:
        """True when the stored arrays already are canonical."""
        return self.axes == tuple(range(len(self.axes))) and not any(self.flips)

    def _lead(self, array: np.ndarray) -> int:
        """Number of leading non-spatial axes (channels) of an array."""
        lead = array.ndim - len(self.axes)
        if lead < 0:
            raise ValueError(f"array of shape {array.shape} has fewer than {len(self.axes)} spatial axes")
        return lead

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        """Stored (..., z, y, x) array -> canonical (a view; no copy, no interpolation)."""
        if self.is_identity:
            return array
        lead = self._lead(array)
        view = np.transpose(array, tuple(range(lead)) + tuple(lead + a for a in self.axes))
        flipped = tuple(lead + a for a, flip in enumerate(self.flips) if flip)
        return np.flip(view, flipped) if flipped else view

    def from_canonical(self, array: np.ndarray) -> np.ndarray:
        """Exact inverse of to_canonical (a view)."""
        if self.is_identity:
            return array
        lead = self._lead(array)
        flipped = tuple(lead + a for a, flip in enumerate(self.flips) if flip)
        view = np.flip(array, flipped) if flipped else array
        inverse = np.argsort(self.axes)
        return np.transpose(view, tuple(range(lead)) + tuple(lead + int(a) for a in inverse))

    def values(self, per_axis: Sequence) -> list:
        """A per-axis quantity in stored array order (spacing, shape) -> canonical array order."""
        return [per_axis[a] for a in self.axes]

    def stored_values(self, per_axis: Sequence) -> list:
        """A per-axis quantity in canonical array order -> stored array order."""
        result = [None] * len(self.axes)
        for canonical_axis, stored_axis in enumerate(self.axes):
            result[stored_axis] = per_axis[canonical_axis]
        return result

    def box(self, box: Sequence[Sequence[int]], stored_shape: Sequence[int]) -> list[list[int]]:
        """A [start, stop) box over the stored array axes -> the same voxels' box over the canonical axes."""
        result = []
        for canonical_axis, stored_axis in enumerate(self.axes):
            start, stop = (int(v) for v in box[stored_axis])
            if self.flips[canonical_axis]:
                size = int(stored_shape[stored_axis])
                start, stop = size - stop, size - start
            result.append([start, stop])
        return result

    def to_json(self) -> dict:
        """JSON form (array-axis numbering, z, y, x)."""
        return {"code": self.code, "permutation": list(self.axes), "flips": [bool(f) for f in self.flips]}

    @classmethod
    def from_json(cls, data: dict) -> Reorientation:
        """Inverse of to_json."""
        return cls(tuple(int(a) for a in data["permutation"]), tuple(bool(f) for f in data["flips"]),
                   str(data.get("code", "")))

    @classmethod
    def identity(cls, ndim: int = 3) -> Reorientation:
        """No change (arrays already canonical)."""
        return cls(tuple(range(ndim)), (False,) * ndim, CANONICAL[:ndim])


def reorientation_for(direction: Sequence[float]) -> Reorientation:
    """The permutation + flips that bring arrays of an image with this ITK direction to the canonical frame."""
    matrix = direction_matrix(direction)
    n = matrix.shape[0]
    perm = _best_assignment(matrix)   # physical axis k <- index axis perm[k]
    # canonical index axis k is stored index axis perm[k]; array axis a is index axis n-1-a
    axes = tuple(n - 1 - perm[n - 1 - a] for a in range(n))
    flips = tuple(bool(matrix[n - 1 - a, perm[n - 1 - a]] < 0) for a in range(n))
    return Reorientation(axes, flips, orientation_code(direction))


def canonical_geometry(geometry: Geometry) -> Geometry:
    """The geometry of the canonical arrays: same physical voxels, permuted/reversed index axes."""
    matrix = direction_matrix(geometry.direction)
    n = matrix.shape[0]
    reorientation = reorientation_for(geometry.direction)
    origin = np.asarray(geometry.origin, dtype=float)
    columns, spacing, size = [], [], []
    for k in range(n):                      # canonical index axis k (array axis n-1-k)
        a = n - 1 - k
        stored_index = n - 1 - reorientation.axes[a]
        column = matrix[:, stored_index]
        step = geometry.spacing[stored_index]
        count = geometry.size[stored_index]
        if reorientation.flips[a]:
            origin = origin + column * step * (count - 1)
            column = -column
        columns.append(column)
        spacing.append(float(step))
        size.append(int(count))
    direction = np.stack(columns, axis=1)
    return Geometry(tuple(spacing), tuple(float(v) for v in origin), tuple(float(v) for v in direction.flatten()),
                    tuple(size))


def oblique_degrees(direction: Sequence[float]) -> float:
    """Largest angle (degrees) between an index axis and the patient axis it was assigned to."""
    matrix = direction_matrix(direction)
    perm = _best_assignment(matrix)
    cosines = [abs(matrix[k, perm[k]]) / max(np.linalg.norm(matrix[:, perm[k]]), 1e-12) for k in range(len(perm))]
    return float(math.degrees(math.acos(min(1.0, min(cosines)))))


def plans_orientation(plans: Plans) -> str | None:
    """The plans' canonical orientation: 'LPS', 'as_stored', or None for a plan made before orientation."""
    value = canonical_orientation_of(plans)
    if value is None:
        return None
    if value not in (CANONICAL, AS_STORED):
        raise UserError(f"plans.json: canonical_orientation must be {CANONICAL!r} or {AS_STORED!r}, got {value!r}")
    return str(value)


def plans_reorientation(plans: Plans, direction: Sequence[float] | None, ndim: int) -> Reorientation:
    """What preprocessing does for these plans and this image: canonical reorientation or identity.

    direction None means the caller's arrays are already in the canonical frame (the identity
    direction); plans without a canonical orientation (legacy, 'as_stored') never reorient.
    """
    if plans_orientation(plans) != CANONICAL or direction is None:
        return Reorientation.identity(ndim)
    if len(direction) != ndim * ndim:
        raise ValueError(f"direction has {len(direction)} values for {ndim} spatial axes")
    return reorientation_for(direction)


def orientation_summary(directions: Sequence[Sequence[float]]) -> dict:
    """What the training images looked like: count per orientation code and the range of their residual rotation."""
    codes: dict[str, int] = {}
    for direction in directions:
        code = orientation_code(direction)
        codes[code] = codes.get(code, 0) + 1
    angles = [oblique_degrees(d) for d in directions]
    return {"codes": dict(sorted(codes.items())), "min_oblique_degrees": round(min(angles, default=0.0), 3),
            "max_oblique_degrees": round(max(angles, default=0.0), 3)}


def oblique_inputs_entry(summary: Mapping[str, Any]) -> dict:
    """plans["oblique_inputs"]: inputs more oblique than the training images plus the margin are resampled."""
    limit = float(summary.get("max_oblique_degrees", 0.0)) + OBLIQUE_MARGIN_DEGREES
    return {"resample_above_degrees": round(limit, 3), "margin_degrees": OBLIQUE_MARGIN_DEGREES}


def axis_alignment_limit(plans: Plans) -> float | None:
    """Residual rotation (degrees) above which prediction resamples an input onto the axis-aligned grid.

    None: never (legacy and 'as_stored' plans feed arrays as stored; plans without the training
    images' orientations know no range). Plans made before ``oblique_inputs`` existed get the
    limit from ``training_orientations`` (their largest residual rotation plus the margin).
    """
    if plans_orientation(plans) != CANONICAL:
        return None
    entry = oblique_inputs_of(plans)
    if entry.get("resample_above_degrees") is not None:
        value = entry["resample_above_degrees"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise UserError(f"plans.json: {OBLIQUE_KEY}.resample_above_degrees must be a number >= 0, got {value!r}")
        return float(value)
    summary = training_orientations_of(plans)
    if "max_oblique_degrees" not in summary:
        return None
    return float(oblique_inputs_entry(summary)["resample_above_degrees"])


def needs_axis_alignment(plans: Plans, direction: Sequence[float] | None) -> bool:
    """Whether an input of this direction is resampled onto the axis-aligned grid for these plans."""
    limit = axis_alignment_limit(plans)
    if limit is None or direction is None:
        return False
    angle = oblique_degrees(direction)
    return angle > max(limit, AXIS_ALIGNED_DEGREES)


def orientation_warnings(plans: Plans, direction: Sequence[float] | None) -> list[str]:
    """Per-input warnings: a legacy model, or an input orientation unlike every training image."""
    policy = plans_orientation(plans)
    if policy is None:
        return [LEGACY_WARNING]
    summary = training_orientations_of(plans)
    if direction is None or not summary.get("codes"):
        return []
    code = orientation_code(direction)
    seen = sorted(summary["codes"])
    if policy == AS_STORED and code not in seen:
        return [f"input stored {code}, the model was trained on {', '.join(seen)} images fed as stored "
                f"(canonical_orientation 'as_stored'): left/right and other axes may be swapped"]
    angle = oblique_degrees(direction)
    trained = float(summary.get("max_oblique_degrees", 0.0))
    # an input that prediction resamples onto the axis-aligned grid gets its own note instead
    if angle > trained + OBLIQUE_MARGIN_DEGREES and not needs_axis_alignment(plans, direction):
        return [f"input is {angle:.1f} degrees oblique to the patient axes, training images at most {trained:.1f}: "
                "the network sees a rotated anatomy it was not trained on"]
    return []
