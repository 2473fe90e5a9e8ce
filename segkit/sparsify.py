"""`segkit sparsify`: a sparsely annotated copy of a densely labelled dataset (slices or scribbles).

Unannotated voxels get the dataset's ignore label (nnU-Net's convention, docs/sparse-annotation.md):
the existing one, else a new label ``ignore`` one above the highest label value. Two modes:

- slices: along each chosen axis (array order z, y, x) every N-th slice keeps its labels, from a
  per-case, per-axis random offset; a voxel is annotated when any of its slices is kept.
- scribbles: per case and per label value present (background included), the 2D skeleton of the
  structure in `scribble_slices` slices along the first axis, spread over the structure's extent,
  widened to a 3-voxel brush (dilated in-plane, clipped to the structure).

Images are hard-linked (copied where links are impossible); everything is written into a
temporary folder renamed to OUT at the end, so OUT is either complete or absent. Deterministic
for a given seed: each case draws from its own seed (run seed, case id).
"""

from __future__ import annotations

import os
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from segkit.errors import UserError
from segkit.io.dataset import IGNORE_NAME, DatasetInfo, load_dataset, training_cases
from segkit.io.image import read_image, write_image
from segkit.jsonio import read_json, write_json

DEFAULT_SCRIBBLE_SLICES = 3
BRUSH = ndimage.generate_binary_structure(2, 1)   # in-plane cross: a 3-voxel-wide stroke


@dataclass(frozen=True)
class SparsifyOptions:
    """What to keep: every `slices`-th slice along `axes`, or skeleton scribbles; the run seed."""

    slices: int | None = None
    axes: tuple[int, ...] = (0,)
    scribbles: bool = False
    scribble_slices: int = DEFAULT_SCRIBBLE_SLICES
    seed: int = 0

    def check(self) -> None:
        """UserError for an impossible combination."""
        if self.scribbles == (self.slices is not None):
            raise UserError("give exactly one of --slices N or --scribbles")
        if self.slices is not None and self.slices < 1:
            raise UserError(f"--slices must be at least 1, got {self.slices}")
        if self.scribble_slices < 1:
            raise UserError(f"--scribble-slices must be at least 1, got {self.scribble_slices}")
        if not self.axes or any(a not in (0, 1, 2) for a in self.axes) or len(set(self.axes)) != len(self.axes):
            raise UserError(f"--axes must be distinct array axes among 0 1 2 (z y x), got {list(self.axes)}")

    def to_json(self) -> dict:
        """The options as recorded in the output's dataset.json."""
        mode = {"mode": "scribbles", "scribble_slices": self.scribble_slices} if self.scribbles else \
            {"mode": "slices", "every": self.slices}
        return mode | {"axes": list(self.axes), "seed": self.seed}


def case_rng(seed: int, case_id: str) -> np.random.Generator:
    """The random generator of one case: independent of case order and worker count."""
    return np.random.default_rng([seed, zlib.crc32(case_id.encode())])


def slice_mask(shape: Sequence[int], every: int, axes: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Voxels on every `every`-th slice along any of axes (random offset per axis)."""
    keep = np.zeros(tuple(shape), dtype=bool)
    for axis in axes:
        offset = int(rng.integers(every))
        index = [slice(None)] * len(shape)
        index[axis] = slice(offset, None, every)
        keep[tuple(index)] = True
    return keep


def _spread_slices(present: np.ndarray, count: int, rng: np.random.Generator) -> list[int]:
    """Up to `count` distinct slice indices among `present`, spread over its range (jittered quantiles)."""
    if len(present) <= count:
        return [int(i) for i in present]
    quantiles = (np.arange(count) + rng.uniform(0.25, 0.75, count)) / count
    return sorted({int(present[min(len(present) - 1, int(q * len(present)))]) for q in quantiles})


def scribble_mask(label: np.ndarray, values: Sequence[int], axis: int, per_structure: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Skeleton scribbles: per label value, the 2D skeleton of its cross-section in a few slices along axis."""
    keep = np.zeros(label.shape, dtype=bool)
    moved_label, moved_keep = np.moveaxis(label, axis, 0), np.moveaxis(keep, axis, 0)   # views: writes reach keep
    for value in values:
        structure = moved_label == value
        present = np.flatnonzero(structure.any(axis=(1, 2)))
        for index in _spread_slices(present, per_structure, rng):
            stroke = ndimage.binary_dilation(skeletonize(structure[index]), BRUSH)
            moved_keep[index] |= stroke & structure[index]
    return keep


def ignore_value_for(info: DatasetInfo) -> int:
    """The dataset's ignore label, or one above its highest label value."""
    return info.ignore_label if info.ignore_label is not None else max(info.label_values) + 1


def sparsify_label(label: np.ndarray, ignore: int, options: SparsifyOptions, case_id: str) -> np.ndarray:
    """A sparsely annotated copy of one label map: unkept voxels become `ignore`."""
    rng = case_rng(options.seed, case_id)
    if options.scribbles:
        values = [int(v) for v in np.unique(label) if v != ignore]
        keep = scribble_mask(label, values, options.axes[0], options.scribble_slices, rng)
    else:
        assert options.slices is not None                       # SparsifyOptions: slices xor scribbles
        keep = slice_mask(label.shape, options.slices, options.axes, rng)
    sparse = np.where(keep & (label != ignore), label, ignore)
    small = sparse.min() >= 0 and sparse.max() <= np.iinfo(np.uint8).max
    return sparse.astype(np.uint8 if small else np.int16)


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link a file (images are never modified), copying where links are impossible."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _copy_images(info: DatasetInfo, staging: Path) -> None:
    """imagesTr, imagesTs and labelsTs (test references stay dense) into the staging folder."""
    for folder in ("imagesTr", "imagesTs", "labelsTs"):
        source = info.root / folder
        if source.is_dir():
            for path in sorted(source.iterdir()):
                if path.is_file():
                    _link_or_copy(path, staging / folder / path.name)


def _output_dataset_json(info: DatasetInfo, ignore: int, options: SparsifyOptions, annotated: dict) -> dict:
    """dataset.json of the copy: the source's, with the ignore label and a record of what was kept."""
    data = read_json(info.root / "dataset.json", "dataset.json")
    labels = {name: value for name, value in data["labels"].items() if name != IGNORE_NAME}
    total = sum(a for a, _ in annotated.values())
    voxels = sum(n for _, n in annotated.values())
    record = options.to_json() | {"source": str(info.root.resolve()),
                                  "annotated_fraction": round(total / max(voxels, 1), 6),
                                  "annotated_fraction_per_case": {c: round(a / max(n, 1), 6)
                                                                  for c, (a, n) in annotated.items()}}
    return data | {"labels": labels | {IGNORE_NAME: ignore}, "segkit_sparsify": record}


def sparsify_dataset(source: str | Path, out: str | Path, options: SparsifyOptions) -> dict:
    """Write a sparsely annotated copy of `source` to `out`; returns the record added to its dataset.json."""
    options.check()
    info = load_dataset(source)
    out = Path(out)
    if out.exists():
        raise UserError("output folder already exists (choose a new one)", out)
    if out.resolve() == info.root.resolve():
        raise UserError("output folder must differ from the dataset", out)
    ignore = ignore_value_for(info)
    cases = [c for c in training_cases(info) if c.label is not None]
    if not cases:
        raise UserError("dataset has no labelled training cases", info.root / "labelsTr")
    staging = out.with_name(f".{out.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    try:
        _copy_images(info, staging)
        annotated = {}
        for case in cases:
            if case.label is None or not case.label.is_file():
                raise UserError("label file not found", case.label or info.root / "labelsTr" / case.case_id)
            image = read_image(case.label)
            label = np.rint(image.array).astype(np.int64) if not np.issubdtype(image.array.dtype, np.integer) \
                else image.array
            sparse = sparsify_label(label, ignore, options, case.case_id)
            annotated[case.case_id] = (int(np.count_nonzero(sparse != ignore)), int(sparse.size))
            write_image(sparse, image.geometry, staging / "labelsTr" / case.label.name)
        record = _output_dataset_json(info, ignore, options, annotated)
        write_json(staging / "dataset.json", record)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return record["segkit_sparsify"] | {"ignore_label": ignore, "num_cases": len(cases)}
