"""Plan configurations (3d_fullres, 2d, 3d_lowres, 3d_cascade_fullres) within a memory budget.

For each configuration the planner fixes the target spacing, then spends the budget in
this order: the largest patch up to the median image, then depth, then width (for registered
families marked `grows`; for a family with `presets`, such as stunet, the largest preset that fits
at that patch instead), then batch size. Every candidate is priced by the plan's memory model
(`segkit.planning.device_memory`): the bytes-level CPU tally for a CPU plan, the CUDA model plus a
reserve for the CUDA context, cuDNN workspace and fragmentation for a CUDA plan; the chosen
prediction, the budget and the memory model (calibrated or not) go into plans.json.

Whenever `3d_lowres` is planned (the full-resolution patch covers under a quarter of the median
image), `3d_cascade_fullres` is planned with it: full-resolution geometry, `previous_stage:
"3d_lowres"`, and a network whose input adds one channel per foreground class or region (the
low-resolution stage's segmentation, one-hot); it is priced with those extra input channels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from segkit.io import segment_coding
from segkit.io.dataset import DatasetInfo
from segkit.networks.registry import get_family
from segkit.planning.architecture import make_architecture
from segkit.planning.device_memory import MemoryModel, memory_model_for
from segkit.planning.mirroring import PAIRS_KEY, configuration_array_axes, mirror_axes_for, plan_mirror_pairs
from segkit.planning.spacing import fullres_target_spacing, normalization_for_channel
from segkit.planning.topology import fit_patch_for_family
from segkit.plans import SCHEMA_VERSION, SWAP_KEY, Configuration
from segkit.preprocessing.input_ranges import training_ranges
from segkit.preprocessing.orientation import (
    CANONICAL,
    OBLIQUE_KEY,
    PLANS_KEY,
    oblique_inputs_entry,
    orientation_summary,
)

DEFAULT_BUDGET_GB = 8.0
MIN_BATCH = 2
MAX_DATASET_FRACTION_PER_BATCH = 0.05
LOWRES_PATCH_COVERAGE = 0.25
LOWRES_SPACING_STEP = 1.03
CASCADE = "3d_cascade_fullres"
LOWRES = "3d_lowres"
GIB = 1024 ** 3


@dataclass(frozen=True)
class PlanOptions:
    """What the user decides; everything else is derived from the data."""

    network: str = "revmbconv"
    budget_bytes: int = int(DEFAULT_BUDGET_GB * GIB)
    device: str = "cpu"
    max_depth_multiplier: int = 2
    max_width_multiplier: float = 2.0
    configurations: tuple[str, ...] = ("3d_fullres", "2d", "3d_lowres")
    calibration_path: str | None = None   # the CUDA calibration (default: the one next to cuda_calibration.py)


def detect_budget() -> tuple[int, str]:
    """The CUDA device's memory and name, else the 8 GB default and 'cpu'."""
    try:
        import torch
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return int(props.total_memory), f"cuda:{props.name}"
    except ImportError:
        pass
    return int(DEFAULT_BUDGET_GB * GIB), "cpu"


def shape_at_spacing(shape: list[float], spacing: list[float], target_spacing: list[float]) -> list[int]:
    """Voxel shape of an image of `shape` at `spacing` once resampled to `target_spacing`."""
    return [max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target_spacing)]


def median_resampled_shape(fingerprint: dict, target_spacing: list[float]) -> list[int]:
    """Median over cases of the cropped shape after resampling to the target spacing."""
    shapes = [shape_at_spacing(c["shape_after_crop"], c["spacing"], target_spacing) for c in fingerprint["cases"]]
    return [int(v) for v in np.median(np.array(shapes), axis=0)]


class _Pricer:
    """Prices a (patch, architecture, batch) candidate with the plan's memory model."""

    def __init__(self, in_channels: int, num_outputs: int, model: MemoryModel | None = None):
        self.in_channels = in_channels
        self.num_outputs = num_outputs
        self.model = model or MemoryModel()

    def __call__(self, arch: dict, patch: list[int], batch: int) -> dict:
        """Predicted peak bytes and breakdown (on CUDA the reserve included)."""
        return self.model.price(arch, list(patch), batch, self.in_channels, self.num_outputs)


def _shrink_axis(patch: list[int], spacing: list[float], divisor: list[int]) -> int:
    """Axis to shrink next: the largest physical extent (keeps patches close to isotropic in mm)."""
    extents = [(p * s if p > d else -1.0, p) for p, s, d in zip(patch, spacing, divisor)]
    return max(range(len(patch)), key=lambda axis: extents[axis])


def largest_patch(median_shape: list[int], spacing: list[float], family: str, price: _Pricer,
                  budget: int, batch: int = MIN_BATCH) -> tuple[list[int], dict, dict]:
    """Largest patch up to the median image (rounded to the topology) whose step fits the budget."""
    patch, topology = fit_patch_for_family([max(8, n) for n in median_shape], spacing, family)
    arch = make_architecture(family, topology)
    memory = price(arch, patch, batch)
    while memory["total"] > budget:
        axis = _shrink_axis(patch, spacing, topology.divisor)
        if patch[axis] <= topology.divisor[axis]:
            break
        candidate = list(patch)
        candidate[axis] -= topology.divisor[axis]
        candidate, topology = fit_patch_for_family(candidate, spacing, family)
        if candidate == patch:   # a fixed topology's smallest patch: nothing left to shrink
            break
        patch = candidate
        arch = make_architecture(family, topology)
        memory = price(arch, patch, batch)
    return patch, arch, memory


def grow_network(arch_for: Callable[[int, float], dict], patch: list[int], price: _Pricer, budget: int,
                 options: PlanOptions) -> tuple[dict, dict, int, float]:
    """Spend leftover budget on depth, then width; return arch, memory and the multipliers chosen."""
    depth, width = 1, 1.0
    arch = arch_for(depth, width)
    memory = price(arch, patch, MIN_BATCH)
    while depth < options.max_depth_multiplier:
        candidate = arch_for(depth + 1, width)
        candidate_memory = price(candidate, patch, MIN_BATCH)
        if candidate_memory["total"] > budget:
            break
        depth, arch, memory = depth + 1, candidate, candidate_memory
    while width + 0.25 <= options.max_width_multiplier:
        candidate = arch_for(depth, width + 0.25)
        candidate_memory = price(candidate, patch, MIN_BATCH)
        if candidate_memory["total"] > budget:
            break
        width, arch, memory = width + 0.25, candidate, candidate_memory
    return arch, memory, depth, width


def may_grow(options: PlanOptions) -> bool:
    """Whether the planner may spend spare memory on a bigger network (not when planning for this CPU)."""
    return options.max_depth_multiplier > 1 or options.max_width_multiplier > 1.0


def largest_preset(presets: tuple[str, ...], arch_for: Callable[[str], dict], patch: list[int], price: _Pricer,
                   budget: int) -> tuple[dict, dict]:
    """The largest preset (they come smallest first) whose step fits the budget at the patch; else the first."""
    arch = arch_for(presets[0])
    memory = price(arch, patch, MIN_BATCH)
    for name in presets[1:]:
        candidate = arch_for(name)
        candidate_memory = price(candidate, patch, MIN_BATCH)
        if candidate_memory["total"] <= budget:
            arch, memory = candidate, candidate_memory
    return arch, memory


def choose_batch(arch: dict, patch: list[int], price: Callable[[dict, list[int], int], dict], budget: int,
                 dataset_voxels: int) -> tuple[int, dict]:
    """Largest batch that fits, at least 2, at most 5 % of the dataset's voxels per batch."""
    cap = max(MIN_BATCH, int(MAX_DATASET_FRACTION_PER_BATCH * dataset_voxels / math.prod(patch)))
    batch, memory = MIN_BATCH, price(arch, patch, MIN_BATCH)
    while batch < cap:
        candidate = price(arch, patch, batch + 1)
        if candidate["total"] > budget:
            break
        batch, memory = batch + 1, candidate
    return batch, memory


def plan_configuration(name: str, target_spacing: list[float], median_shape: list[int], num_cases: int,
                       price: _Pricer, options: PlanOptions, slice_axis: int | None = None) -> dict:
    """One configuration's entry: patch, architecture, batch size and predicted memory."""
    axes = configuration_array_axes(slice_axis)
    spacing = [target_spacing[a] for a in axes]
    shape = [median_shape[a] for a in axes]
    budget = options.budget_bytes
    family = get_family(options.network)
    base = family.presets[0] if family.presets else options.network
    patch, arch, memory = largest_patch(shape, spacing, base, price, budget)
    if family.presets and may_grow(options) and memory["total"] <= budget:
        _, topology = fit_patch_for_family(patch, spacing, base)
        arch, memory = largest_preset(family.presets, lambda name: make_architecture(name, topology), patch, price,
                                      budget)
    elif family.grows and memory["total"] <= budget:
        _, topology = fit_patch_for_family(patch, spacing, options.network)
        arch, memory, depth, width = grow_network(
            lambda d, w: make_architecture(options.network, topology, d, w), patch, price, budget, options)
    dataset_voxels = num_cases * math.prod(median_shape)
    batch, memory = choose_batch(arch, patch, price, budget, dataset_voxels)
    entry = {
        "spatial_dims": len(axes),
        "target_spacing": [float(v) for v in target_spacing],
        "median_shape": [int(v) for v in median_shape],
        "patch_size": [int(v) for v in patch],
        "batch_size": int(batch),
        "resampling": {"image_order": 3, "label": "onehot_linear", "anisotropy_threshold": 3.0},
        "mirror_axes": list(range(len(axes))),
        "architecture": arch,
        "memory": {"predicted_peak_bytes": int(memory["total"]), "budget_bytes": int(budget),
                   "fits_budget": bool(memory["total"] <= budget),
                   "breakdown": {k: int(v) for k, v in memory.items() if k != "total" and isinstance(v, (int, float))}},
        "previous_stage": None,
    }
    if slice_axis is not None:
        entry["slice_axis"] = int(slice_axis)
    return entry


def lowres_spacing_and_shape(fingerprint: dict, fullres_spacing: list[float],
                             fullres_patch: list[int]) -> tuple[list[float], list[int]] | None:
    """Coarser spacing at which the full-resolution patch covers a quarter of the median image."""
    spacing = list(fullres_spacing)
    shape = median_resampled_shape(fingerprint, spacing)
    if math.prod(fullres_patch) >= LOWRES_PATCH_COVERAGE * math.prod(shape):
        return None
    while math.prod(fullres_patch) < LOWRES_PATCH_COVERAGE * math.prod(shape):
        coarsest = max(spacing)
        if coarsest / min(spacing) > 2:
            spacing = [s * LOWRES_SPACING_STEP if s < coarsest else s for s in spacing]
        else:
            spacing = [s * LOWRES_SPACING_STEP for s in spacing]
        shape = median_resampled_shape(fingerprint, spacing)
    return spacing, shape


def case_directions(fingerprint: dict) -> list[list[float]]:
    """Each case's direction as the network sees it: the identity in the canonical frame, else as stored.

    Canonical fingerprints hold reoriented arrays, whose left/right axis is array axis 2 (x);
    older fingerprints without `direction` are taken as the identity (the common case).
    """
    identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    if fingerprint.get("canonical_orientation") == CANONICAL:
        return [identity for _ in fingerprint["cases"]]
    return [c.get("direction", identity) for c in fingerprint["cases"]]


def orientation_entries(fingerprint: dict) -> dict:
    """plans.json's orientation keys: the canonical frame and the training images' orientations.

    A fingerprint made before reorientation gives neither key, i.e. a legacy (as-stored) plan.
    """
    if fingerprint.get("canonical_orientation") != CANONICAL:
        return {}
    directions = [c["direction"] for c in fingerprint["cases"] if "direction" in c]
    summary = orientation_summary(directions)
    return {PLANS_KEY: CANONICAL, "training_orientations": summary, OBLIQUE_KEY: oblique_inputs_entry(summary)}


def set_mirror_axes(entry: dict, labels: dict, directions: list[list[float]], label_mode: str = "softmax",
                    slice_axis: int | None = None, previous_stage: str | None = None) -> dict:
    """The entry's mirror_axes (the entry being planned: 2D slicing along slice_axis, a cascade stage refining
    previous_stage): lateralised labels keep left/right only with every pair swapped; note why.

    A cascade stage never swaps: its input carries the previous stage's one-hot labels as channels.
    """
    swap_pairs = label_mode == "softmax" and not previous_stage
    axes, note, swap_axis = mirror_axes_for(labels, directions, slice_axis, swap_pairs)
    entry["mirror_axes"] = axes
    entry.pop(SWAP_KEY, None)
    if swap_axis is not None:
        entry[SWAP_KEY] = swap_axis
    if note is not None:
        entry["mirror_note"] = note
    return entry


def dataset_outputs(info: DatasetInfo) -> tuple[str, dict[str, list[int]], int]:
    """Label mode, outputs (foreground classes or regions) and the number of network outputs."""
    outputs = info.regions
    if info.region_based:
        return "sigmoid", outputs, len(outputs)
    return "softmax", outputs, len(outputs) + 1


def dataset_entries(info: DatasetInfo, fingerprint: dict) -> dict:
    """plans.json's keys that describe the data, not the network: labels, ignore label, outputs, orientation.

    Both `plan` and `plan --like` write these from the new dataset, so a fine-tuning plan keeps
    every field that decides how arrays are fed and how labels are read (issue #24).
    """
    label_mode, outputs, num_outputs = dataset_outputs(info)
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset_name": info.name,
        "num_channels": info.num_channels,
        "channel_names": info.channel_list,
        "labels": info.annotation_labels,        # without 'ignore': never an output class
        "ignore_label": info.ignore_label,       # unannotated voxels' value in the label maps, or None
        "label_mode": label_mode,
        "outputs": outputs,
        "regions_class_order": info.regions_class_order,
        "num_outputs": num_outputs,
        PAIRS_KEY: plan_mirror_pairs(info.annotation_labels, label_mode),   # swapped by a left/right mirror
        # SNOMED CT coding of each label for DICOM-SEG (dataset.json "label_coding", else from the name)
        segment_coding.PLANS_KEY: segment_coding.segment_coding_for(
            info.annotation_labels, info.raw.get(segment_coding.DATASET_KEY), info.root / "dataset.json"),
        **orientation_entries(fingerprint),
        # what training spanned, for prediction's out-of-range warnings (segkit.preprocessing.input_ranges)
        "training_ranges": training_ranges(fingerprint, planned_normalization(info, fingerprint)),
    }


def planned_normalization(info: DatasetInfo, fingerprint: dict) -> list[dict]:
    """Each channel's normalisation planned from the fingerprint's foreground statistics."""
    statistics = fingerprint["foreground_intensity_statistics"]
    relative_size = fingerprint["median_relative_size_after_crop"]
    return [normalization_for_channel(name, statistics[str(i)], relative_size) for i, name in enumerate(info.channel_list)]


def plan_dataset(info: DatasetInfo, fingerprint: dict, options: PlanOptions = PlanOptions()) -> dict:
    """The full plans.json content for a fingerprinted dataset."""
    label_mode, outputs, num_outputs = dataset_outputs(info)
    model = memory_model_for(options.device, options.calibration_path)
    price = _Pricer(info.num_channels, num_outputs, model)
    spacings = np.array([c["spacing"] for c in fingerprint["cases"]])
    shapes = np.array([c["shape_after_crop"] for c in fingerprint["cases"]])
    target_spacing = fullres_target_spacing(spacings, shapes)
    median_shape = median_resampled_shape(fingerprint, target_spacing)
    num_cases = len(fingerprint["cases"])
    configurations: dict[str, dict] = {}
    directions = case_directions(fingerprint)
    fullres = plan_configuration("3d_fullres", target_spacing, median_shape, num_cases, price, options)
    if "3d_fullres" in options.configurations:
        configurations["3d_fullres"] = fullres
    if "2d" in options.configurations:
        slice_axis = int(np.argmax(target_spacing))
        configurations["2d"] = plan_configuration("2d", target_spacing, median_shape, num_cases, price, options,
                                                  slice_axis=slice_axis)
    if LOWRES in options.configurations or CASCADE in options.configurations:
        lowres = lowres_spacing_and_shape(fingerprint, target_spacing,
                                          list(Configuration.from_json("3d_fullres", fullres).patch_size))
        if lowres is not None:
            configurations[LOWRES] = plan_configuration(LOWRES, lowres[0], lowres[1], num_cases, price, options)
            # the refinement stage: full resolution, the lowres segmentation one-hot as extra input channels
            cascade_price = _Pricer(info.num_channels + len(outputs), num_outputs, model)
            configurations[CASCADE] = plan_configuration(CASCADE, target_spacing, median_shape, num_cases,
                                                         cascade_price, options) | {"previous_stage": LOWRES}
    for name, entry in configurations.items():
        planned = Configuration.from_json(name, entry)
        set_mirror_axes(entry, info.annotation_labels, directions, label_mode, planned.slice_axis, planned.previous_stage)
    return {
        **dataset_entries(info, fingerprint),
        "normalization": planned_normalization(info, fingerprint),
        "gpu_memory_bytes": int(options.budget_bytes),
        "device": options.device,
        "memory_model": model.describe(),
        "network": options.network,
        "growth_limits": {"max_depth_multiplier": options.max_depth_multiplier,
                          "max_width_multiplier": options.max_width_multiplier},
        "configurations": configurations,
    }
