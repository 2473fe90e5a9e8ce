"""Preprocessed cases (memory-mapped .npy) and random patch sampling with foreground oversampling.

With an ignore label (sparse annotation) a case's properties carry `annotated_locations`; the
patches that are not forced onto foreground are then centred on an annotated voxel instead of
drawn uniformly, as nnU-Net does, so no patch is spent where nothing is annotated.

Every batch is produced from its own seed, derived from (run seed, epoch, rank, batch index), so
the batch stream does not depend on the number of loader workers and a resumed run sees the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segkit.errors import UserError
from segkit.preprocessing.previous_stage import one_hot_previous
from segkit.preprocessing.store import case_paths, load_array, read_properties

FOREGROUND_FRACTION = 1 / 3


@dataclass
class Case:
    """One preprocessed case: data (C, z, y, x) float32 and seg (z, y, x) int16, memory-mapped.

    A cascade stage's case also holds `previous`: the previous stage's cross-validation label map
    of the case on the same grid (int16 z, y, x; segkit.training.cascade), and `previous_classes`,
    the label values of each one-hot channel the network gets from it. The patch sampler moves
    `previous` with the labels (augmented, then one-hot: segkit.training.augmentation);
    validation reads `network_input()`, which appends the one-hot channels as prediction does.
    """

    case_id: str
    data: np.ndarray
    seg: np.ndarray
    properties: dict = field(default_factory=dict)
    previous: np.ndarray | None = None
    previous_classes: list[list[int]] | None = None

    def network_input(self, region: tuple[slice, ...] = ()) -> np.ndarray:
        """float32 (C, ...) network input of the case or a region of it: data, plus a cascade stage's one-hot channels."""
        data = np.array(self.data[(slice(None),) + tuple(region)], dtype=np.float32)
        if self.previous is None or self.previous_classes is None:
            return data
        return np.concatenate([data, one_hot_previous(self.previous[region], self.previous_classes)])

    @property
    def foreground_locations(self) -> list[np.ndarray]:
        """Sampled foreground voxel lists, one array (N, 3) per class/region that has any."""
        locations = self.properties.get("class_locations") or {}
        return [np.asarray(v, dtype=np.int64).reshape(-1, 3) for v in locations.values() if len(v)]

    @property
    def annotated_locations(self) -> np.ndarray | None:
        """Sampled annotated voxels (N, 3) of a sparsely annotated case; None for dense labels (or none annotated)."""
        voxels = self.properties.get("annotated_locations")
        return np.asarray(voxels, dtype=np.int64).reshape(-1, 3) if voxels else None


def open_case(folder: str | Path, case_id: str, num_channels: int | None = None) -> Case:
    """Open one preprocessed case and check its arrays agree with each other and the plan."""
    folder = Path(folder)
    data_path, seg_path, properties_path = case_paths(folder, case_id)
    data, seg = load_array(data_path), load_array(seg_path)
    properties = read_properties(properties_path)
    if data.ndim != 4 or seg.shape != data.shape[1:]:
        raise UserError(f"shape {data.shape} does not match its segmentation {seg.shape}", data_path)
    if num_channels is not None and data.shape[0] != num_channels:
        raise UserError(f"has {data.shape[0]} channels, the plan expects {num_channels}", data_path)
    return Case(case_id, data, seg, properties)


def preprocessed_case_ids(folder: str | Path) -> list[str]:
    """Case ids present in a preprocessed configuration folder, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError("preprocessed folder not found (run `segkit preprocess` first)", folder)
    ids = sorted(p.name[:-4] for p in folder.glob("*.npy") if not p.name.endswith("_seg.npy"))
    if not ids:
        raise UserError("no preprocessed cases in folder", folder)
    return ids


def _crop_with_padding(array: np.ndarray, lower: list[int], size: list[int], pad_value: float) -> np.ndarray:
    """Crop the trailing len(size) axes at lower..lower+size, padding outside the array with pad_value."""
    lead = array.ndim - len(size)
    spatial = array.shape[lead:]
    src = tuple(slice(max(lo, 0), min(lo + s, n)) for lo, s, n in zip(lower, size, spatial))
    out = np.full(array.shape[:lead] + tuple(size), pad_value, dtype=array.dtype)
    dst = tuple(slice(sl.start - lo, sl.stop - lo) for sl, lo in zip(src, lower))
    out[(slice(None),) * lead + dst] = array[(slice(None),) * lead + src]
    return out


def _random_lower(shape: tuple[int, ...], size: list[int], rng: np.random.Generator) -> list[int]:
    """Uniform patch origin; a patch larger than the volume is padded on random sides."""
    return [int(rng.integers(min(0, n - s), max(0, n - s) + 1)) for n, s in zip(shape, size)]


def _centred_lower(shape: tuple[int, ...], size: list[int], centre: np.ndarray) -> list[int]:
    """Patch origin centring a voxel, kept inside the volume where the volume is large enough."""
    return [int(np.clip(c - s // 2, min(0, n - s), max(0, n - s))) for n, s, c in zip(shape, size, centre)]


@dataclass
class PatchSampler:
    """Draws batches of patches (size `sample_size`, spatial_dims 2 or 3) from a list of cases.

    With a `patch_size` smaller than `sample_size` (room for a spatial transform that centre-crops
    the patch), the *patch* is placed -- uniformly, or centred on a foreground voxel, as a sampler of
    patch_size would -- and the sample grown around it by the margin, padded outside the volume.
    Placing the larger sample inside the volume instead kept every patch centre at least half a
    sample from the border and cut border foreground out of its patch (cerebellum Dice 0.09 on the
    real-image benchmark, docs/benchmarks.md).
    """

    cases: list[Case]
    sample_size: list[int]
    batch_size: int
    spatial_dims: int = 3
    foreground_fraction: float = FOREGROUND_FRACTION
    patch_size: list[int] | None = None     # None: the sample is the patch

    def _forced_foreground(self, index: int, rng: np.random.Generator) -> bool:
        """nnU-Net's rule: the last `foreground_fraction` (a third) of each batch is centred on foreground.

        The centre is a voxel of a class drawn uniformly among the classes the case has, so small
        classes are sampled as often as large ones.
        """
        if self.batch_size == 1:
            return bool(rng.random() < self.foreground_fraction)
        return index >= round(self.batch_size * (1 - self.foreground_fraction))

    def _sample_one(self, case: Case, force_fg: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One (data, seg) patch from one case; seg is (1, ...) or, with a previous stage, (2, ...) with its labels."""
        locations = case.foreground_locations if force_fg else []
        if not locations and case.annotated_locations is not None:
            locations = [case.annotated_locations]
        centre = None
        if locations:
            voxels = locations[int(rng.integers(len(locations)))]
            centre = voxels[int(rng.integers(len(voxels)))]
        data, seg = case.data, case.seg[None]
        if case.previous is not None:   # moved with the labels by the spatial transforms; 0 (background) outside
            seg = np.stack([case.seg, case.previous])
        if self.spatial_dims == 2:
            z = int(centre[0]) if centre is not None else int(rng.integers(seg.shape[1]))
            data, seg = data[:, z], seg[:, z]
            centre = centre[1:] if centre is not None else None
        size = list(self.sample_size)
        shape = seg.shape[1:]
        patch = list(self.patch_size or size)
        lower = _centred_lower(shape, patch, centre) if centre is not None else _random_lower(shape, patch, rng)
        lower = [lo - (s - p) // 2 for lo, s, p in zip(lower, size, patch)]     # the sample around the patch
        cropped = _crop_with_padding(seg, lower, size, -1)
        if case.previous is not None:
            cropped[1][cropped[1] < 0] = 0
        return _crop_with_padding(data, lower, size, 0.0), cropped

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A batch {"data": (B, C, *size) float32, "seg": (B, 1 or 2, *size) float32}."""
        pairs = [self._sample_one(self.cases[int(rng.integers(len(self.cases)))], self._forced_foreground(i, rng), rng)
                 for i in range(self.batch_size)]
        data = np.stack([p[0] for p in pairs]).astype(np.float32)
        seg = np.stack([p[1] for p in pairs]).astype(np.float32)
        return {"data": data, "seg": seg}


def batch_seed(seed: int, epoch: int, rank: int, index: int) -> int:
    """A 32-bit seed unique to one batch of one epoch on one rank."""
    return int(np.random.SeedSequence([seed, epoch, rank, index]).generate_state(1)[0])


def make_batch(sampler: PatchSampler, transform: Callable[..., dict], seed: int) -> dict:
    """Sample and augment one batch, seeding every RNG batchgenerators uses from `seed`."""
    np.random.seed(seed)
    random.seed(seed)
    batch = sampler.sample(np.random.default_rng(seed))
    return transform(**batch)


class EpochBatches(torch.utils.data.IterableDataset):
    """The batches of one epoch (for one rank), split among DataLoader workers by index."""

    def __init__(self, sampler: PatchSampler, transform: Callable[..., dict], seed: int, epoch: int, rank: int,
                 num_batches: int, first_batch: int = 0):
        super().__init__()
        self.sampler, self.transform = sampler, transform
        self.seed, self.epoch, self.rank = seed, epoch, rank
        self.first_batch, self.num_batches = first_batch, num_batches

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for index in range(self.first_batch + worker, self.first_batch + self.num_batches, workers):
            yield make_batch(self.sampler, self.transform, batch_seed(self.seed, self.epoch, self.rank, index))


def epoch_loader(batches: EpochBatches, num_workers: int, pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader running the epoch's batches in background worker processes (0: in this process)."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs = {"prefetch_factor": 2, "multiprocessing_context": "fork" if hasattr(__import__("os"), "fork") else None}
    return torch.utils.data.DataLoader(batches, batch_size=None, num_workers=num_workers,
                                       pin_memory=pin_memory, **kwargs)


def with_slice_axis_first(case: Case, slice_axis: int) -> Case:
    """A view of a case whose 2D slice axis (array order) comes first, for 2D configurations."""
    if slice_axis == 0:
        return case
    order = [slice_axis] + [a for a in range(3) if a != slice_axis]
    properties = dict(case.properties)
    locations = properties.get("class_locations") or {}
    properties["class_locations"] = {k: np.asarray(v, dtype=np.int64).reshape(-1, 3)[:, order].tolist()
                                     for k, v in locations.items()}
    if properties.get("annotated_locations"):
        properties["annotated_locations"] = np.asarray(properties["annotated_locations"],
                                                       dtype=np.int64).reshape(-1, 3)[:, order].tolist()
    return Case(case.case_id, np.moveaxis(case.data, 1 + slice_axis, 1), np.moveaxis(case.seg, slice_axis, 0),
                properties)
