"""Network probabilities -> label map on the input grid, one slab of z rows at a time.

`segkit.preprocessing.revert_to_original` returns all K class probabilities on the original
grid at once: K full-size float32 volumes (14 classes of a 300 x 512 x 512 CT = 4.4 GB, twice
over while resampling). Here the original grid is walked in slabs of rows along z: for each
slab only the source rows it interpolates from are resampled (the same separable linear /
nearest passes in the same axis order as `resample_volume`, so every voxel is computed by the
same float32 operations and the result is bit-identical), pasted into the crop box, averaged
over the ensemble's members and turned into labels. Peak memory is one slab per member plus
its source rows. Probabilities for the whole grid are assembled only when asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from segkit.inference.regions import labels_for_plans
from segkit.plans import LabelCoding, Plans, configuration_of
from segkit.preprocessing.oblique import AxisAlignment, channel_images, resample_volume_onto, slab_geometry
from segkit.preprocessing.pipeline import anisotropy_threshold, outside_fill_values
from segkit.preprocessing.resample import linear_axis, nearest_axis, separate_axis

SLAB_BYTES = 128 * 1024 ** 2   # float32 bytes of one member's slab (K x rows x y x x)


@dataclass(frozen=True)
class MemberOutput:
    """One ensemble member's (K, z', y', x') probabilities in its preprocessed space and how to revert them."""

    probabilities: np.ndarray
    properties: dict
    plans: Plans
    configuration: str

    @property
    def coarse_axis(self) -> int | None:
        """Axis resampled with nearest neighbour (as in preprocessing), or None."""
        threshold = anisotropy_threshold(configuration_of(self.plans, self.configuration))
        return separate_axis(self.properties["original_spacing"], self.properties["target_spacing"], threshold)


def _source_positions(old: int, new: int) -> np.ndarray:
    """Input coordinate of each output sample (pixel-centre alignment, as in segkit.preprocessing.resample)."""
    return (np.arange(new, dtype=np.float64) + 0.5) * (old / new) - 0.5


def _rows_axis0(block: np.ndarray, first_row: int, old: int, new: int, rows: slice, nearest: bool) -> np.ndarray:
    """Output rows `rows` of resampling axis 0 from `old` to `new` samples; block holds source rows from first_row."""
    if old == new:
        return block[rows.start - first_row:rows.stop - first_row]
    position = _source_positions(old, new)[rows]
    if nearest:
        index = np.clip(np.floor(position + 0.5), 0, old - 1).astype(np.intp)
        return block.take(index - first_row, axis=0)
    position = np.clip(position, 0, old - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, old - 1)
    weight = (position - low).astype(np.float32).reshape(-1, *([1] * (block.ndim - 1)))
    lower = block.take(low - first_row, axis=0)
    upper = block.take(high - first_row, axis=0)
    upper -= lower
    upper *= weight
    upper += lower
    return upper


def _source_rows(old: int, new: int, rows: slice, nearest: bool) -> tuple[int, int]:
    """[first, stop) of the source rows that output rows `rows` read along axis 0."""
    if old == new:
        return rows.start, rows.stop
    position = _source_positions(old, new)[rows]
    if nearest:
        index = np.clip(np.floor(position + 0.5), 0, old - 1).astype(np.intp)
        return int(index.min()), int(index.max()) + 1
    position = np.clip(position, 0, old - 1)
    low = np.floor(position).astype(np.intp)
    return int(low.min()), int(np.minimum(low + 1, old - 1).max()) + 1


def resample_rows(volume: np.ndarray, new_shape: Sequence[int], rows: slice, coarse_axis: int | None) -> np.ndarray:
    """Rows `rows` (axis 0) of linearly resampling a (z, y, x) volume to new_shape; equals the full result's rows."""
    old_shape = volume.shape
    nearest0 = coarse_axis == 0
    first, stop = _source_rows(old_shape[0], int(new_shape[0]), rows, nearest0)
    block = np.asarray(volume[first:stop], dtype=np.float32)
    # the axis order of segkit.preprocessing.resample.resample_volume: most shrinking axis first
    for axis in sorted(range(3), key=lambda a: new_shape[a] / old_shape[a]):
        if axis == 0:
            block = _rows_axis0(block, first, old_shape[0], int(new_shape[0]), rows, nearest0)
            first = rows.start
        else:
            interpolate = nearest_axis if axis == coarse_axis else linear_axis
            block = interpolate(block, axis, int(new_shape[axis]))
    return np.ascontiguousarray(block, dtype=np.float32)


def member_slab(member: MemberOutput, rows: slice, fill_values: Sequence[float] | None = None) -> np.ndarray:
    """(K, rows, y, x) float32 probabilities of one member on rows `rows` of the original grid.

    Outside the crop box: the plans' probability fill (background 1), or fill_values per channel.
    """
    properties = member.properties
    full = [int(n) for n in properties["shape_before_crop"]]
    (z0, z1), (y0, y1), (x0, x1) = properties["crop_box"]
    num_outputs = member.probabilities.shape[0]
    slab = np.empty((num_outputs, rows.stop - rows.start, full[1], full[2]), dtype=np.float32)
    fills = fill_values if fill_values is not None else outside_fill_values(member.plans.label_mode, num_outputs)
    for channel, value in enumerate(fills):
        slab[channel] = value
    inside = slice(max(rows.start, z0) - z0, min(rows.stop, z1) - z0)
    if inside.start >= inside.stop:
        return slab
    cropped_shape = [int(n) for n in properties["shape_after_crop"]]
    target = slice(inside.start + z0 - rows.start, inside.stop + z0 - rows.start)
    for channel in range(num_outputs):
        slab[channel, target, y0:y1, x0:x1] = resample_rows(member.probabilities[channel], cropped_shape, inside,
                                                            member.coarse_axis)
    return slab


def slab_rows(num_outputs: int, shape: Sequence[int], slab_bytes: int | None = None) -> int:
    """Rows per slab so that one member's float32 slab stays under slab_bytes (default SLAB_BYTES, read per call)."""
    limit = SLAB_BYTES if slab_bytes is None else slab_bytes
    return max(1, int(limit // max(1, num_outputs * int(shape[1]) * int(shape[2]) * 4)))


def _stored_order(array: np.ndarray | None, orientation: dict | None) -> np.ndarray | None:
    """Undo preprocessing's reorientation (properties["orientation"], a permutation + flips) exactly."""
    if array is None or not orientation:
        return array
    from segkit.preprocessing.orientation import Reorientation

    return np.ascontiguousarray(Reorientation.from_json(orientation).from_canonical(array))


def labels_on_input_grid(members: Sequence[MemberOutput], plans: Plans, keep_probabilities: npt.DTypeLike | None = None,
                         slab_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Label map (and, when keep_probabilities is a dtype, the mean probabilities) on the original grid.

    The slabs run over the preprocessing frame (canonical orientation when preprocessing
    reoriented the image); labels and probabilities are voxel-wise, so permuting/flipping them
    back to the stored order afterwards equals reverting the probabilities first.
    """
    orientations = [m.properties.get("orientation") for m in members]
    if any(o != orientations[0] for o in orientations[1:]):
        return _mean_in_stored_order(members, plans, keep_probabilities)
    labels, kept = _labels_in_frame(members, plans, keep_probabilities, slab_bytes)
    stored_labels = _stored_order(labels, orientations[0])
    assert stored_labels is not None
    return stored_labels, _stored_order(kept, orientations[0])


def map_on_input_grid(volume: np.ndarray, properties: dict, plans: Plans, configuration: str,
                      fill: float = 0.0) -> np.ndarray:
    """A (z', y', x') map in preprocessed space (e.g. an uncertainty) on the input grid: resampled like the
    probabilities, `fill` outside the crop box, the reorientation undone."""
    member = MemberOutput(volume[None], properties, plans, configuration)
    shape = [int(n) for n in properties["shape_before_crop"]]
    full = np.empty(shape, dtype=np.float32)
    step = slab_rows(1, shape)
    for start in range(0, shape[0], step):
        rows = slice(start, min(start + step, shape[0]))
        full[rows] = member_slab(member, rows, [fill])[0]
    stored = _stored_order(full, properties.get("orientation"))
    assert stored is not None
    return stored


def _mean_in_stored_order(members: Sequence[MemberOutput], plans: Plans,
                          keep_probabilities: npt.DTypeLike | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Members preprocessed into different frames: average their whole reverted probabilities (more memory)."""
    total: np.ndarray | None = None
    for member in members:
        _, kept = _labels_in_frame([member], plans, np.float32, None)
        kept = _stored_order(kept, member.properties.get("orientation"))
        assert kept is not None                                 # float32 probabilities were asked for
        total = kept if total is None else np.add(total, kept, out=total)
    assert total is not None                                    # members is never empty
    total /= len(members)
    labels = labels_for_plans(total, plans.label_coding)
    return labels, total.astype(keep_probabilities, copy=False) if keep_probabilities is not None else None


def _labels_in_frame(members: Sequence[MemberOutput], plans: Plans, keep_probabilities: npt.DTypeLike | None,
                     slab_bytes: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels (and kept probabilities) slab by slab in the members' common preprocessing frame."""
    shape = [int(n) for n in members[0].properties["shape_before_crop"]]

    def mean_slab(rows: slice) -> np.ndarray:
        """The members' mean probabilities on rows `rows`."""
        mean = member_slab(members[0], rows)
        for member in members[1:]:
            mean += member_slab(member, rows)
        if len(members) > 1:
            mean /= len(members)
        return mean

    return _labels_by_slab(mean_slab, shape, members[0].probabilities.shape[0], plans.label_coding,
                           keep_probabilities, slab_bytes)


def _labels_by_slab(slab_of: Callable[[slice], np.ndarray], shape: Sequence[int], num_outputs: int, coding: LabelCoding,
                    keep_probabilities: npt.DTypeLike | None, slab_bytes: int | None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels (and kept probabilities) on a grid of `shape`, slab_of(rows) giving each slab's (K, rows, y, x)."""
    labels: np.ndarray | None = None
    kept = np.empty((num_outputs, *shape), dtype=keep_probabilities) if keep_probabilities is not None else None
    step = slab_rows(num_outputs, shape, slab_bytes)
    for start in range(0, shape[0], step):
        rows = slice(start, min(start + step, shape[0]))
        slab = slab_of(rows)
        slab_labels = labels_for_plans(slab, coding)
        if labels is None:
            labels = np.empty(shape, dtype=slab_labels.dtype)
        labels[rows] = slab_labels
        if kept is not None:
            kept[:, rows] = slab
    assert labels is not None                                   # at least one slab
    return labels, kept


def labels_from_aligned(probabilities: np.ndarray, alignment: AxisAlignment, coding: LabelCoding,
                        keep_probabilities: npt.DTypeLike | None = None,
                        slab_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels (and kept probabilities) on the input's own grid from (K, z, y, x) probabilities on the aligned grid.

    Each slab of input rows is a grid of its own (the input's spacing and direction, origin
    moved); every channel is linearly interpolated onto it in physical space, outside the
    aligned grid the fill value (background 1 for softmax). Labels then come from the mapped
    probabilities, as for an axis-aligned input.
    """
    target = alignment.input_geometry
    shape = [int(n) for n in target.array_shape]
    num_outputs = probabilities.shape[0]
    fills = outside_fill_values(coding.label_mode, num_outputs)
    sources = channel_images(probabilities, alignment.aligned_geometry)

    def mapped_slab(rows: slice) -> np.ndarray:
        """Every channel interpolated onto the input rows `rows` (a grid of its own)."""
        grid = slab_geometry(target, rows)
        return np.stack([resample_volume_onto(source, alignment.aligned_geometry, grid, 1, fill)
                         for source, fill in zip(sources, fills)])

    return _labels_by_slab(mapped_slab, shape, num_outputs, coding, keep_probabilities, slab_bytes)
