"""Helpers for the inference tests: tiny untrained model folders and odd-geometry input cases."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from segkit.io.image import Geometry, write_image
from segkit.jsonio import write_json
from segkit.phantom import PhantomSpec, make_case

SOFTMAX_LABELS = {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3}
REGION_LABELS = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [1, 3], "enhancing tumor": [3]}


def tiny_architecture(spatial_dims: int) -> dict:
    """A two-stage plain U-Net small enough for CPU tests."""
    kernels = [[1, 3, 3], [3, 3, 3]] if spatial_dims == 3 else [[3, 3], [3, 3]]
    strides = [[1, 1, 1], [1, 2, 2]] if spatial_dims == 3 else [[1, 1], [2, 2]]
    return {"family": "unet", "spatial_dims": spatial_dims, "features_per_stage": [4, 8], "kernel_sizes": kernels,
            "strides": strides, "blocks_per_stage": [1, 1], "decoder_blocks_per_stage": [1], "norm": "instance",
            "deep_supervision": True}


def tiny_plans(num_channels: int = 4, region_based: bool = False) -> dict:
    """plans.json with a 3d_fullres and a 2d configuration (2d slices along z)."""
    labels = REGION_LABELS if region_based else SOFTMAX_LABELS
    outputs = {name: (v if isinstance(v, list) else [v]) for name, v in labels.items() if v != 0}
    common = {"target_spacing": [2.5, 1.0, 1.0], "median_shape": [20, 40, 40], "batch_size": 2,
              "resampling": {"image_order": 3, "label": "onehot_linear", "anisotropy_threshold": 3.0},
              "previous_stage": None}
    return {
        "schema_version": 1, "dataset_name": "Tiny", "num_channels": num_channels, "canonical_orientation": "LPS",
        "channel_names": [f"ch{i}" for i in range(num_channels)], "labels": labels,
        "label_mode": "sigmoid" if region_based else "softmax", "outputs": outputs,
        "regions_class_order": [2, 1, 3] if region_based else None,
        "num_outputs": len(outputs) if region_based else len(outputs) + 1,
        "normalization": [{"scheme": "zscore", "use_nonzero_mask": True}] * num_channels,
        "configurations": {
            "3d_fullres": {**common, "spatial_dims": 3, "patch_size": [8, 16, 16], "mirror_axes": [0, 1, 2],
                           "architecture": tiny_architecture(3)},
            "2d": {**common, "spatial_dims": 2, "slice_axis": 0, "patch_size": [16, 16], "mirror_axes": [0, 1],
                   "architecture": tiny_architecture(2)},
        },
    }


def make_model_dir(work: Path, configuration: str = "3d_fullres", num_channels: int = 4, region_based: bool = False,
                   folds: Sequence[str] = ("0",), checkpoint: str = "final") -> Path:
    """WORK/models/<configuration> with plans, dataset.json and untrained checkpoints (one seed per fold)."""
    from segkit.networks import build_network

    plans = tiny_plans(num_channels, region_based)
    model_dir = work / "models" / configuration
    write_json(model_dir / "plans.json", plans)
    write_json(model_dir / "dataset.json", {"name": "Tiny", "labels": plans["labels"], "file_ending": ".nii.gz",
                                            "channel_names": {str(i): n for i, n in enumerate(plans["channel_names"])}})
    arch = plans["configurations"][configuration]["architecture"]
    for seed, fold in enumerate(folds):
        torch.manual_seed(seed)
        network = build_network(arch, num_channels, plans["num_outputs"])
        payload = {"format": "segkit-checkpoint-1", "network_state": network.state_dict(), "architecture": arch,
                   "in_channels": num_channels, "num_outputs": plans["num_outputs"], "configuration": configuration,
                   "plans_sha256": "0" * 64, "epoch": 1}
        (model_dir / f"fold_{fold}").mkdir(parents=True, exist_ok=True)
        torch.save(payload, model_dir / f"fold_{fold}" / f"checkpoint_{checkpoint}.pt")
    return model_dir


def write_input_case(folder: Path, case_id: str, shape: tuple[int, int, int], spacing: tuple[float, float, float],
                     num_channels: int = 4, seed: int = 0, ending: str = ".nii.gz") -> Geometry:
    """Write a phantom case of any shape/spacing as CASE_XXXX files; return the geometry it was given."""
    generated = tuple(max(n, 16) for n in shape)   # the phantom's smooth fields need some room
    images, _, geometry = make_case(seed, PhantomSpec(shape=generated, spacing=spacing, oblique_degrees=25.0))
    centre = tuple(slice((g - n) // 2, (g - n) // 2 + n) for g, n in zip(generated, shape))
    images = images[(slice(None),) + centre]
    geometry = Geometry(geometry.spacing, geometry.origin, geometry.direction, tuple(reversed(shape)))
    for channel in range(num_channels):
        write_image(images[channel % images.shape[0]], geometry, folder / f"{case_id}_{channel:04d}{ending}")
    return geometry


def read_geometry(path: Path) -> tuple:
    """(origin, spacing, direction, size) exactly as SimpleITK reads them back."""
    image = sitk.ReadImage(str(path))
    return image.GetOrigin(), image.GetSpacing(), image.GetDirection(), image.GetSize()


def read_array(path: Path) -> np.ndarray:
    """Voxel array of an image file."""
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
