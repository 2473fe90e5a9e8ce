"""The preprocessing of one case's arrays (reorient, crop, normalise, resample) and its inverse.

`preprocess_images` is what the predictor calls on new images; `preprocess_arrays` adds the
label map for training data; `revert_to_original` maps network outputs back onto the
original voxel grid. When the plans' canonical orientation is "LPS" the arrays are first
permuted/flipped into the canonical frame (`segkit.preprocessing.orientation`); every
per-axis property (spacing, shapes, crop box) is then in canonical order, and
`revert_to_original` undoes the reorientation last.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np

from segkit.errors import UserError
from segkit.plans import (
    Configuration,
    Plans,
    configuration_of,
    label_mode_of,
    normalization_of,
    outputs_of,
    preprocessing_fields,
)
from segkit.preprocessing.crop import crop_to_nonzero, paste_into_box
from segkit.preprocessing.normalize import check_normalization, normalize_channels
from segkit.preprocessing.orientation import Reorientation, plans_orientation, plans_reorientation
from segkit.preprocessing.resample import (
    DEFAULT_ANISOTROPY_THRESHOLD,
    new_shape_for_spacing,
    resample_channels,
    resample_labels,
    separate_axis,
)

PREPROCESSING_VERSION = 1


def preprocessing_fingerprint(plans: Plans, config: str) -> str:
    """sha256 of every plans field that changes the preprocessed arrays of a configuration."""
    configuration_of(plans, config)   # the entry checked (target spacing, patch, architecture)
    relevant = {"version": PREPROCESSING_VERSION, **preprocessing_fields(plans, config)}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def resampling_settings(entry: Configuration) -> tuple[int, float]:
    """Image interpolation order and anisotropy threshold of a configuration."""
    settings = entry.resampling
    order = int(settings.get("image_order", 3))
    if order not in (0, 1, 3):
        raise UserError(f"resampling.image_order must be 0, 1 or 3, got {order}")
    return order, anisotropy_threshold(entry)


def anisotropy_threshold(entry: Configuration) -> float:
    """Spacing ratio above which the coarse axis is resampled on its own (nearest), in preprocessing and revert."""
    return float(entry.resampling.get("anisotropy_threshold", DEFAULT_ANISOTROPY_THRESHOLD))


def orientation_properties(plans: Plans, reorientation: Reorientation, direction: Sequence[float] | None) -> dict:
    """What preprocessing did to the axes (properties["orientation"])."""
    policy = plans_orientation(plans)
    return {"canonical": policy, **reorientation.to_json(),
            "original_direction": [float(v) for v in direction] if direction is not None else None}


def case_target_spacing(entry: Configuration, spacing: Sequence[float]) -> list[float]:
    """The configuration's target spacing, with each case's own spacing on `keep_spacing_axes` axes.

    nnU-Net's 2d configurations keep every case's spacing along the slice axis; imported
    plans say so with `"keep_spacing_axes": [slice axis]`.
    """
    target = list(entry.target_spacing)
    for axis in entry.keep_spacing_axes:
        target[axis] = float(spacing[axis])
    return target


def preprocess_arrays(images: np.ndarray, labels: np.ndarray | None, spacing: Sequence[float], plans: Plans,
                      config: str, direction: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Reorient, crop, normalise and resample (C, z, y, x) images and an optional label map.

    spacing is in the stored array order (z, y, x); direction is the image's ITK direction
    (row-major 9 values; None: the arrays are already canonical). Returns float32 data
    (C, z', y', x') in the canonical frame, an int16 label map (-1 outside the nonzero mask)
    and the properties needed to revert (orientation, spacing, shapes, crop box, target
    spacing; per-axis values in canonical order).
    """
    entry = configuration_of(plans, config)
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (C, z, y, x), got shape {images.shape}")
    reorientation = plans_reorientation(plans, direction, 3)
    normalization = check_normalization(normalization_of(plans), images.shape[0])
    order, threshold = resampling_settings(entry)
    # the crop's copy gathers the canonical order: reorienting costs no extra pass
    cropped, seg, box = crop_to_nonzero(images, labels, reorientation)
    spacing = reorientation.values(list(spacing))
    target_spacing = case_target_spacing(entry, spacing)
    data = normalize_channels(cropped, seg, normalization)
    new_shape = new_shape_for_spacing(seg.shape, spacing, target_spacing)
    coarse = separate_axis(spacing, target_spacing, threshold)
    data = resample_channels(data, new_shape, order, coarse)
    seg = resample_labels(seg, new_shape, coarse)
    properties = {"original_spacing": [float(s) for s in spacing],
                  "shape_before_crop": [int(n) for n in reorientation.values(images.shape[1:])],
                  "crop_box": box, "shape_after_crop": list(cropped.shape[1:]), "target_spacing": target_spacing,
                  "shape_after_resample": list(new_shape), "separate_axis": coarse,
                  "orientation": orientation_properties(plans, reorientation, direction)}
    return data, seg, properties


def preprocess_images(images: np.ndarray, spacing: Sequence[float], plans: Plans, config: str,
                      direction: Sequence[float] | None = None) -> tuple[np.ndarray, dict]:
    """Preprocess new (C, z, y, x) float32 images (stored spacing z, y, x; ITK direction) for inference."""
    data, _, properties = preprocess_arrays(images, None, spacing, plans, config, direction)
    return data, properties


def outside_fill_values(label_mode: str, num_outputs: int) -> list[float]:
    """Per-output value outside the crop box: background probability 1 for softmax, else 0."""
    if label_mode == "softmax":
        return [1.0] + [0.0] * (num_outputs - 1)
    return [0.0] * num_outputs


def revert_to_original(outputs: np.ndarray, properties: dict, plans: Plans, config: str,
                       fill_values: Sequence[float] | None = None) -> np.ndarray:
    """Map (K, z', y', x') outputs in preprocessed space back to (K, original z, y, x) as stored.

    Linear resampling to the cropped shape at the original spacing (nearest along a coarse
    axis, as in preprocessing), then pasting into the uncropped box, then undoing the
    reorientation (axis permutation + flips, exact). Outside the box every channel gets its
    fill value: by default 1 for the softmax background and 0 otherwise, which suits
    probabilities; pass fill_values for logits. The result may be a strided view.
    """
    _, threshold = resampling_settings(configuration_of(plans, config))
    outputs = np.asarray(outputs, dtype=np.float32)
    if list(outputs.shape[1:]) != list(properties["shape_after_resample"]):
        raise ValueError(f"outputs have shape {outputs.shape[1:]}, expected {properties['shape_after_resample']}")
    coarse = separate_axis(properties["original_spacing"], properties["target_spacing"], threshold)
    cropped = resample_channels(outputs, properties["shape_after_crop"], order=1, coarse_axis=coarse)
    fill = list(fill_values) if fill_values is not None else outside_fill_values(plans.label_mode, outputs.shape[0])
    full = paste_into_box(cropped, properties["crop_box"], properties["shape_before_crop"], fill)
    orientation = properties.get("orientation")   # absent in properties written before reorientation
    return Reorientation.from_json(orientation).from_canonical(full) if orientation else full


def output_masks(plans: Plans) -> dict[str, list[int]]:
    """Label values per class_locations key: label value for softmax, region name for sigmoid plans."""
    outputs = outputs_of(plans)
    if label_mode_of(plans) == "sigmoid":
        return {str(name): [int(v) for v in values] for name, values in outputs.items()}
    values = sorted({int(v) for vs in outputs.values() for v in vs} - {0})
    return {str(v): [v] for v in values}


def _sample_voxels(mask: np.ndarray, rng: np.random.Generator, max_samples: int,
                   min_fraction: float) -> list[list[int]]:
    """Up to max_samples (at least min_fraction) of a mask's voxels as (z, y, x) lists, in raster order."""
    flat = np.flatnonzero(mask)
    count = min(len(flat), max(max_samples, int(np.ceil(len(flat) * min_fraction))))
    if count < len(flat):
        flat = np.sort(rng.choice(flat, count, replace=False))
    return np.stack(np.unravel_index(flat, mask.shape), axis=1).tolist()


def sample_class_locations(seg: np.ndarray, plans: Plans, seed: int, max_samples: int = 10000,
                           min_fraction: float = 0.01) -> dict[str, list[list[int]]]:
    """Up to max_samples (at least min_fraction of the voxels) sampled (z, y, x) voxels per class or region."""
    rng = np.random.default_rng(seed)
    locations = {}
    for key, values in output_masks(plans).items():
        mask = seg == values[0] if len(values) == 1 else np.isin(seg, values)
        locations[key] = _sample_voxels(mask, rng, max_samples, min_fraction)
    return locations


def sample_annotated_locations(seg: np.ndarray, ignore_label: int, seed: int, max_samples: int = 10000,
                               min_fraction: float = 0.01) -> list[list[int]]:
    """Sampled (z, y, x) voxels that carry an annotation (inside the nonzero mask, not the ignore value).

    With an ignore label the patch sampler centres its random patches on these (nnU-Net does the
    same), so no patch is spent on voxels without any annotation.
    """
    rng = np.random.default_rng(seed + 1)
    return _sample_voxels((seg >= 0) & (seg != ignore_label), rng, max_samples, min_fraction)
