"""The typed read-only views of plans.json: `Plans`, `Configuration`, `Architecture`, and `LabelCoding`.

Parsed once where a stage starts (segkit.plans.file reads them); every default for an optional key
lives here and nowhere else; bad content raises `UserError` naming the file. The views keep the
stored dict (`raw`) for what consumes the stored form (network builders, the memory model, hashing
of an entry), and pickle as it (preprocessing's spawn pool re-parses them).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from segkit.errors import UserError
from segkit.jsonio import canonical_sha256

SCHEMA_VERSION = 1
PLANS_FILENAME = "plans.json"
LABEL_MODES = ("softmax", "sigmoid")
DEFAULT_LABEL_MODE = "softmax"
DEFAULT_NORM = "instance"
DEFAULT_SLICE_AXIS = 0
DEFAULT_BATCH_SIZE = 2
DEFAULT_TILE_WEIGHTS = "gaussian"      # a configuration's inference policy, when its entry has none (segkit's own)
DEFAULT_ACCUMULATION = "fp32"
SWAP_KEY = "mirror_swap_axis"   # configuration entry: the axis (its own numbering) whose flip swaps the label pairs


@dataclass(frozen=True)
class LabelCoding:
    """What the output channels mean, i.e. how probabilities become label values: a plan's, or a probability file's.

    Plain containers (not read-only views) so that it pickles into worker processes.
    """

    label_mode: str
    outputs: dict[str, Any]                  # as stored: output name -> label value or values, in head order
    regions_class_order: list[int] | None    # sigmoid: the label value each region paints, in painting order

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabelCoding:
        """The three fields as a plan (or probability metadata) stores them; softmax and no outputs when absent."""
        order = data.get("regions_class_order")
        return cls(str(data.get("label_mode", DEFAULT_LABEL_MODE)), dict(data.get("outputs") or {}),
                   None if order is None else list(order))

    @property
    def num_outputs(self) -> int:
        """Output channels: one per output, plus the background for softmax."""
        return len(self.outputs) + (1 if self.label_mode == "softmax" else 0)


def spatial_dims_of(block: Mapping[str, Any]) -> int:
    """2 or 3 of a configuration entry or an architecture block: 'spatial_dims', else the patch or kernel length."""
    if "spatial_dims" in block:
        return int(block["spatial_dims"])
    if "patch_size" in block:
        return len(block["patch_size"])
    return len(block["kernel_sizes"][0])

def slice_axis_of(entry: Mapping[str, Any]) -> int | None:
    """The axis a 2D configuration slices along (None for 3D)."""
    return int(entry.get("slice_axis", DEFAULT_SLICE_AXIS)) if spatial_dims_of(entry) == 2 else None

def stride_product(strides: Any) -> list[int]:
    """Product of per-stage strides per axis: every patch axis must be a multiple of it."""
    totals = [1] * len(strides[0])
    for stride in strides:
        totals = [t * s for t, s in zip(totals, stride)]
    return totals

def total_strides(arch: Mapping[str, Any]) -> list[int]:
    """An architecture block's stride product per axis (what the patch size must be a multiple of)."""
    return stride_product(arch["strides"])


def _ints(value: Any, what: str, source: Path | None) -> tuple[int, ...]:
    """A list of integers as a tuple; UserError otherwise."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float)) for v in value):
        raise UserError(f"plans: {what} must be a list of numbers, got {value!r}", source)
    return tuple(int(v) for v in value)


def _floats(value: Any, what: str, source: Path | None) -> tuple[float, ...]:
    """A list of numbers as a float tuple; UserError otherwise."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float)) for v in value):
        raise UserError(f"plans: {what} must be a list of numbers, got {value!r}", source)
    return tuple(float(v) for v in value)


def _as_json(value: Any) -> Any:
    """A value as plans.json stores it: views as their dicts, tuples as lists (recursively)."""
    if isinstance(value, (Architecture, Configuration)):
        return value.as_dict()
    if isinstance(value, (list, tuple)):
        return [_as_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _as_json(v) for k, v in value.items()}
    return value


def _updated(raw: Mapping[str, Any], changes: Mapping[str, Any], drop: tuple[str, ...] = ()) -> dict:
    """raw without `drop`, with `changes` set (a changed key keeps its place, a new one goes last: the file's order)."""
    data = {k: v for k, v in raw.items() if k not in drop}
    data.update({k: _as_json(v) for k, v in changes.items()})
    return data


def _optional_mapping(value: Any) -> Mapping[str, Any] | None:
    """A stored object as a read-only mapping, or None when absent."""
    return MappingProxyType(dict(value)) if isinstance(value, Mapping) else None


def _require(data: Mapping, key: str, where: str, source: Path | None) -> Any:
    """data[key], or a UserError naming the missing key."""
    if not isinstance(data, Mapping) or key not in data:
        raise UserError(f"plans: {where} lacks {key!r}", source)
    return data[key]


@dataclass(frozen=True)
class Architecture:
    """The `architecture` block of a configuration (what `build_network` consumes)."""

    family: str
    spatial_dims: int
    features_per_stage: tuple[int, ...]
    kernel_sizes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    blocks_per_stage: tuple[int, ...]
    decoder_blocks_per_stage: tuple[int, ...]
    norm: str
    deep_supervision: bool
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any, where: str = "architecture", source: Path | None = None) -> Architecture:
        """Parse and check an architecture block."""
        kernels = tuple(_ints(k, f"{where}.kernel_sizes", source) for k in _require(data, "kernel_sizes", where, source))
        strides = tuple(_ints(s, f"{where}.strides", source) for s in _require(data, "strides", where, source))
        if not kernels or len(kernels) != len(strides):
            raise UserError(f"plans: {where}: kernel_sizes and strides need one entry per stage", source)
        features = _ints(_require(data, "features_per_stage", where, source), f"{where}.features_per_stage", source)
        if len(features) != len(strides):
            raise UserError(f"plans: {where}: features_per_stage needs one entry per stage", source)
        return cls(family=str(_require(data, "family", where, source)),
                   spatial_dims=spatial_dims_of(data),
                   features_per_stage=features, kernel_sizes=kernels, strides=strides,
                   blocks_per_stage=_ints(data.get("blocks_per_stage", [1] * len(strides)),
                                          f"{where}.blocks_per_stage", source),
                   decoder_blocks_per_stage=_ints(data.get("decoder_blocks_per_stage", [1] * (len(strides) - 1)),
                                                  f"{where}.decoder_blocks_per_stage", source),
                   norm=str(data.get("norm", DEFAULT_NORM)),
                   deep_supervision=bool(data.get("deep_supervision", True)),
                   raw=MappingProxyType(dict(data)))

    @property
    def total_strides(self) -> tuple[int, ...]:
        """Product of the strides per axis: what a patch must be divisible by."""
        return tuple(stride_product(self.strides))

    @property
    def marked_reversible(self) -> bool:
        """True when the block says 'reversible' (a RevMBConv network in its reversible execution mode)."""
        return bool(self.raw.get("reversible"))

    @property
    def num_stages(self) -> int:
        """Resolution stages of the encoder."""
        return len(self.strides)

    def __reduce__(self) -> tuple:
        """Pickle as the stored block (a read-only view does not pickle; worker processes re-parse it)."""
        return Architecture.from_json, (dict(self.raw),)

    def replace(self, **changes: Any) -> Architecture:
        """A new view with some fields of the block changed (as stored: lists, the block's key order)."""
        return Architecture.from_json(_updated(self.raw, changes))

    def as_dict(self) -> dict:
        """A mutable copy of the block, for builders and the memory model."""
        return dict(self.raw)


@dataclass(frozen=True)
class Configuration:
    """One entry of `configurations` (3d_fullres, 2d, 3d_lowres, ...)."""

    name: str
    spatial_dims: int
    target_spacing: tuple[float, ...]
    patch_size: tuple[int, ...]
    batch_size: int
    mirror_axes: tuple[int, ...]             # () when absent: no mirroring (training and TTA)
    slice_axis: int | None
    architecture: Architecture
    previous_stage: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    median_shape: tuple[int, ...] | None = None
    resampling: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    keep_spacing_axes: tuple[int, ...] = ()
    mirror_swap_axis: int | None = None      # the axis whose flip swaps left/right label pairs (SWAP_KEY)
    mirror_note: str | None = None
    batch_dice: bool | None = None           # None: the trainer's default (batch Dice for 3D)
    memory: Mapping[str, Any] | None = None           # the planner's predicted peak and its breakdown
    training_fit: Mapping[str, Any] | None = None     # a model dir's record of the CPU time-budget fit
    memory_fit: Mapping[str, Any] | None = None       # ... and of the out-of-memory back-off
    inference: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))   # an imported model's policy

    @classmethod
    def from_json(cls, name: str, data: Any, source: Path | None = None) -> Configuration:
        """Parse and check a configuration entry."""
        where = f"configuration {name!r}"
        spacing = _floats(_require(data, "target_spacing", where, source), f"{where}.target_spacing", source)
        if len(spacing) != 3 or not all(s > 0 for s in spacing):
            raise UserError(f"plans: {where}: 'target_spacing' must be 3 positive numbers (z, y, x)", source)
        patch = _ints(_require(data, "patch_size", where, source), f"{where}.patch_size", source)
        dims = spatial_dims_of(data)
        if dims not in (2, 3) or len(patch) != dims:
            raise UserError(f"plans: {where}: patch_size {list(patch)} does not fit spatial_dims {dims}", source)
        architecture = Architecture.from_json(_require(data, "architecture", where, source),
                                              f"{where}.architecture", source)
        median = data.get("median_shape")
        swap = data.get(SWAP_KEY)
        note = data.get("mirror_note")
        batch_dice = data.get("batch_dice")
        return cls(name=name, spatial_dims=dims, target_spacing=spacing, patch_size=patch,
                   batch_size=int(data.get("batch_size", DEFAULT_BATCH_SIZE)),
                   mirror_axes=_ints(data.get("mirror_axes", []), f"{where}.mirror_axes", source),
                   slice_axis=int(data.get("slice_axis", DEFAULT_SLICE_AXIS)) if dims == 2 else None,
                   architecture=architecture, previous_stage=data.get("previous_stage") or None,
                   raw=MappingProxyType(dict(data)),
                   median_shape=_ints(median, f"{where}.median_shape", source) if median else None,
                   resampling=MappingProxyType(dict(data.get("resampling") or {})),
                   keep_spacing_axes=_ints(data.get("keep_spacing_axes") or [], f"{where}.keep_spacing_axes", source),
                   mirror_swap_axis=None if swap is None else int(swap),
                   mirror_note=None if note is None else str(note),
                   batch_dice=None if batch_dice is None else bool(batch_dice),
                   memory=_optional_mapping(data.get("memory")),
                   training_fit=_optional_mapping(data.get("training_fit")),
                   memory_fit=_optional_mapping(data.get("memory_fit")),
                   inference=MappingProxyType(dict(data.get("inference") or {})))

    @property
    def patch_spacing(self) -> tuple[float, ...]:
        """Voxel spacing along the patch axes (2D: the two axes other than the slice axis)."""
        if self.slice_axis is None:
            return self.target_spacing
        return tuple(s for axis, s in enumerate(self.target_spacing) if axis != self.slice_axis)

    @property
    def tile_weights(self) -> str:
        """How tiles are weighted when stitched: 'gaussian' (segkit), or 'nnunet_gaussian' for an imported model."""
        return str(self.inference.get("tile_weights", DEFAULT_TILE_WEIGHTS))

    @property
    def accumulation(self) -> str:
        """The dtype tiles are summed in: 'fp32', or 'fp16' (nnU-Net's) for an imported model."""
        return str(self.inference.get("accumulation", DEFAULT_ACCUMULATION))

    @property
    def averages_fold_logits(self) -> bool:
        """True when folds are averaged as logits (nnU-Net's policy), not as probabilities."""
        return self.inference.get("fold_average") == "logits"

    @property
    def batch_dice_or_default(self) -> bool:
        """Dice over the whole batch (nnU-Net's default for 3D) or per sample, as the entry says."""
        return self.batch_dice if self.batch_dice is not None else self.spatial_dims == 3

    def stored(self, keys: tuple[str, ...]) -> dict:
        """Those of `keys` the entry has, as stored (deep copies): what `plan --like` adopts from a source."""
        return {key: copy.deepcopy(self.raw[key]) for key in keys if key in self.raw}

    def __reduce__(self) -> tuple:
        """Pickle as the stored entry (worker processes re-parse it)."""
        return Configuration.from_json, (self.name, dict(self.raw))

    def replace(self, *, drop: tuple[str, ...] = (), **changes: Any) -> Configuration:
        """A new view with keys of the entry dropped and changed (a changed key keeps its place in the file)."""
        return Configuration.from_json(self.name, _updated(self.raw, changes, drop))

    def as_dict(self) -> dict:
        """A mutable copy of the entry."""
        return dict(self.raw)

    def sha256(self) -> str:
        """Digest of the entry as stored: what a checkpoint and a model dir's fit record were made from."""
        return canonical_sha256(dict(self.raw))


@dataclass(frozen=True)
class Plans:
    """The whole plans.json, parsed once."""

    dataset_name: str
    num_channels: int
    channel_names: tuple[str, ...]
    labels: Mapping[str, Any]
    label_mode: str
    outputs: Mapping[str, tuple[int, ...]]
    regions_class_order: tuple[int, ...] | None
    num_outputs: int
    normalization: tuple[Mapping[str, Any], ...]
    configurations: Mapping[str, Configuration]
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    source: Path | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, data: Any, source: Path | None = None) -> Plans:
        """Parse and check a plans dict (as read from plans.json)."""
        if not isinstance(data, Mapping):
            raise UserError("plans: expected a JSON object", source)
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise UserError(f"plans: schema_version {version!r} is not supported (this segkit reads "
                            f"{SCHEMA_VERSION}); re-run `segkit plan`", source)
        mode = str(data.get("label_mode", DEFAULT_LABEL_MODE))
        if mode not in LABEL_MODES:
            raise UserError(f"plans: label_mode must be one of {', '.join(LABEL_MODES)}, got {mode!r}", source)
        raw_outputs = data.get("outputs") or {}
        if not isinstance(raw_outputs, Mapping):
            raise UserError("plans: 'outputs' must map names to label values", source)
        outputs = {str(k): _ints(v if isinstance(v, list) else [v], f"outputs.{k}", source)
                   for k, v in raw_outputs.items()}
        configurations = data.get("configurations") or {}
        if not isinstance(configurations, Mapping):
            raise UserError("plans: 'configurations' must be an object", source)
        order = data.get("regions_class_order")
        num_channels = int(_require(data, "num_channels", "plans.json", source))
        for name, entry in configurations.items():
            previous = entry.get("previous_stage") if isinstance(entry, Mapping) else None
            if previous and (previous == name or previous not in configurations):
                raise UserError(f"plans: configuration {name!r} names previous_stage {previous!r}, which is not "
                                "another configuration of this plan", source)
        return cls(dataset_name=str(data.get("dataset_name", "")), num_channels=num_channels,
                   channel_names=tuple(str(c) for c in data.get("channel_names") or
                                       [str(i) for i in range(num_channels)]),
                   labels=MappingProxyType(dict(data.get("labels") or {})), label_mode=mode,
                   outputs=MappingProxyType(outputs),
                   regions_class_order=_ints(order, "regions_class_order", source) if order else None,
                   num_outputs=int(_require(data, "num_outputs", "plans.json", source)),
                   normalization=tuple(MappingProxyType(dict(n)) for n in data.get("normalization") or []),
                   configurations=MappingProxyType({name: Configuration.from_json(name, entry, source)
                                                    for name, entry in configurations.items()}),
                   raw=MappingProxyType(dict(data)), source=source)

    def __reduce__(self) -> tuple:
        """Pickle as the stored plans (preprocessing's spawn pool gets the view; the worker re-parses it)."""
        return Plans.from_json, (dict(self.raw), self.source)

    @property
    def label_coding(self) -> LabelCoding:
        """How this plan's network outputs become label values."""
        return LabelCoding.from_json(self.raw)

    def in_channels(self, name: str) -> int:
        """Network input channels of a configuration (image channels + the previous stage's one-hot for a cascade)."""
        return self.num_channels + (len(self.outputs) if self.configuration(name).previous_stage else 0)

    def configuration(self, name: str) -> Configuration:
        """One configuration; UserError naming the known ones when it is absent."""
        if name not in self.configurations:
            known = ", ".join(sorted(self.configurations)) or "none"
            raise UserError(f"unknown configuration {name!r} (plans.json has: {known})", self.source)
        return self.configurations[name]

    @property
    def region_based(self) -> bool:
        """True for sigmoid (region-based, BraTS-style) plans."""
        return self.label_mode == "sigmoid"

    def as_dict(self) -> dict:
        """A mutable deep-enough copy of the plans (top level copied; entries shared)."""
        return dict(self.raw)

    def sha256(self) -> str:
        """Digest of the whole plans as stored (`plan --like` records its source's)."""
        return canonical_sha256(dict(self.raw))
