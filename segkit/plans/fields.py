"""Accessors of the plans' top-level fields: each key name and its default for a plan made before it.

They take a `Plans` view, never a dict. Fields with a typed attribute (`Plans.num_channels`,
`Configuration.patch_size`, ...) are read there; these name the rest, as stored.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from segkit.plans.views import Configuration, Plans


def label_mode_of(plans: Plans) -> str:
    """The plan's label_mode ('softmax' unless it says 'sigmoid')."""
    return plans.label_mode


def segment_coding_of(plans: Plans) -> dict[str, dict] | None:
    """Each label's SNOMED CT coding for DICOM-SEG (segkit.io.segment_coding); None for plans made before it."""
    value = plans.raw.get("segment_coding")
    return dict(value) if isinstance(value, Mapping) else None


def previous_stage_of(plans: Plans, configuration: str) -> str | None:
    """The configuration whose predictions a cascade stage takes as extra input ('3d_lowres'), or None."""
    entry = plans.configurations.get(configuration)
    return entry.previous_stage if entry is not None else None


def output_label_values(plans: Plans) -> dict[str, list[int]]:
    """Output name -> its label values (a class has one, a region several), in output (head channel) order."""
    return {name: list(values) for name, values in plans.outputs.items()}


def _mapping_field(plans: Plans, key: str) -> Mapping[str, Any]:
    """A top-level block of the plans that is a mapping, or {} when absent or not a mapping."""
    value = plans.raw.get(key)
    return value if isinstance(value, Mapping) else {}


def previous_stage_classes(plans: Plans) -> list[list[int]]:
    """Label values of each one-hot channel a cascade stage gets: one per foreground class or region, in output order."""
    return list(output_label_values(plans).values())


def training_orientations_of(plans: Plans) -> Mapping[str, Any]:
    """'training_orientations': the training images' orientation codes and residual-rotation range ({} when absent)."""
    return _mapping_field(plans, "training_orientations")


def oblique_inputs_of(plans: Plans) -> Mapping[str, Any]:
    """'oblique_inputs': when prediction resamples an oblique input ({} when absent: a plan made before the key)."""
    return _mapping_field(plans, "oblique_inputs")


def training_ranges_of(plans: Plans) -> Mapping[str, Any]:
    """'training_ranges': the training images' spacing and foreground intensity ranges ({} for older plans)."""
    return _mapping_field(plans, "training_ranges")


def ignore_label_of(plans: Plans) -> int | None:
    """The label value of unannotated voxels (sparse annotation), or None."""
    value = plans.raw.get("ignore_label")
    return None if value is None else int(value)


def mirror_pairs_of(plans: Plans) -> list[list[int]] | None:
    """'mirror_pairs': the left/right label value pairs a mirror swaps, or None for a plan made before the key."""
    value = plans.raw.get("mirror_pairs")
    return None if value is None else [[int(v) for v in pair] for pair in value]


def preprocessing_fields(plans: Plans, configuration: str) -> dict[str, Any]:
    """The stored fields that change a configuration's preprocessed arrays, as stored (what preprocessing hashes).

    Optional keys appear only when the plan has them, so a plan made before a key keeps its hash.
    """
    data, entry = plans.raw, plans.configuration(configuration).raw
    fields = {"normalization": data.get("normalization"), "label_mode": data.get("label_mode"),
              "outputs": data.get("outputs"), "labels": data.get("labels"),
              "target_spacing": entry["target_spacing"], "resampling": entry.get("resampling")}
    if "canonical_orientation" in data:
        fields["canonical_orientation"] = data["canonical_orientation"]
    if data.get("ignore_label") is not None:
        fields["ignore_label"] = data["ignore_label"]
    if entry.get("keep_spacing_axes"):
        fields["keep_spacing_axes"] = entry["keep_spacing_axes"]
    return fields


def num_channels_of(plans: Plans) -> int:
    """Image channels the plan is for."""
    return plans.num_channels


def num_outputs_of(plans: Plans) -> int:
    """Output channels of the network (foreground classes + background, or regions)."""
    return plans.num_outputs


def head_meaning_of(plans: Plans) -> tuple:
    """What the network's output heads mean, as stored: label_mode, outputs (in order), num_outputs (None if absent).

    Two plans with equal values can share output heads (fine-tuning keeps them).
    """
    data = plans.raw
    values = (data.get("label_mode"), data.get("outputs"), data.get("num_outputs"))
    return tuple(list(v.items()) if isinstance(v, Mapping) else v for v in values)


ENSEMBLE_KEYS = ("num_channels", "label_mode", "outputs", "regions_class_order", "num_outputs")


def ensemble_fields_of(plans: Plans) -> dict[str, Any]:
    """The stored fields every member of an ensemble must share (channels, outputs and their meaning), None if absent."""
    return {key: plans.raw.get(key) for key in ENSEMBLE_KEYS}


def labels_of(plans: Plans) -> dict[str, Any]:
    """The dataset's 'labels' (name -> value, or values for a region) as stored ({} when absent)."""
    return dict(plans.labels)


def outputs_of(plans: Plans) -> dict[str, Any]:
    """'outputs' as stored (output name -> label value or values); `output_label_values` normalises them."""
    return dict(plans.raw.get("outputs") or {})


def regions_class_order_of(plans: Plans) -> list[int] | None:
    """'regions_class_order' as stored (sigmoid plans: the label value each region paints), or None."""
    return plans.raw.get("regions_class_order")


def channel_names_of(plans: Plans) -> list[str] | None:
    """The input channels' names as stored, or None for a plan without them."""
    value = plans.raw.get("channel_names")
    return None if value is None else [str(name) for name in value]


def normalization_of(plans: Plans) -> list[dict] | None:
    """'normalization' as stored (one scheme per channel), or None when absent."""
    return plans.raw.get("normalization")


def dataset_name_of(plans: Plans) -> str | None:
    """The planned dataset's name, or None for a plan without one."""
    value = plans.raw.get("dataset_name")
    return None if value is None else str(value)


def canonical_orientation_of(plans: Plans) -> str | None:
    """'canonical_orientation' ('LPS' or 'as_stored'), or None for a plan made before the key."""
    return plans.raw.get("canonical_orientation")


def configurations_of(plans: Plans) -> dict[str, Configuration]:
    """Configuration name -> its typed view, in plan order ({} when absent)."""
    return dict(plans.configurations)


def planned_budget_of(plans: Plans) -> tuple[int, str]:
    """(GPU memory budget in bytes, device) the plan was made for."""
    return int(plans.raw["gpu_memory_bytes"]), str(plans.raw["device"])


def memory_model_of(plans: Plans) -> Mapping[str, Any] | None:
    """The memory model's description the plan was sized with, or None for a plan without one."""
    return plans.raw.get("memory_model")


def with_configuration(plans: Plans, configuration: Configuration) -> dict:
    """A deep copy of the plans with one configuration's entry replaced (a model folder's plans: the trained entry)."""
    result = copy.deepcopy(dict(plans.raw))
    result["configurations"][configuration.name] = copy.deepcopy(configuration.as_dict())
    return result


def imported_from_of(plans: Plans) -> Mapping[str, Any]:
    """'imported_from': the foreign model a plan was translated from, e.g. nnU-Net v2 ({} for segkit's own)."""
    return _mapping_field(plans, "imported_from")


def like_of(plans: Plans) -> Mapping[str, Any]:
    """'like': where a `plan --like` plan took its networks from ({} for a plan of its own)."""
    return _mapping_field(plans, "like")


def configuration_of(plans: Plans, name: str) -> Configuration:
    """One configuration's typed view; UserError naming the plans file and the known ones when it is absent."""
    return plans.configuration(name)


def network_in_channels(plans: Plans, configuration: str) -> int:
    """Input channels of a configuration's network: the image channels, plus the previous stage's one-hot for a cascade."""
    extra = len(previous_stage_classes(plans)) if previous_stage_of(plans, configuration) else 0
    return plans.num_channels + extra
