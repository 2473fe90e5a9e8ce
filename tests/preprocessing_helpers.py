"""Hand-made plans dicts for the preprocessing tests (independent of the planner)."""

from __future__ import annotations

from segkit.plans import Plans

LABELS = {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3}
TINY_ARCH = {"family": "unet", "spatial_dims": 3, "features_per_stage": [4, 8, 16],
             "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
             "blocks_per_stage": [1, 1, 1], "decoder_blocks_per_stage": [1, 1], "norm": "instance",
             "deep_supervision": True}


def make_plans(target_spacing=(3.0, 1.5, 1.5), normalization=None, label_mode: str = "softmax",
               num_channels: int = 4, config: str = "3d_fullres") -> dict:
    """A minimal plans dict with the fields preprocessing reads (and a tiny network, so the entry is complete)."""
    if label_mode == "sigmoid":
        labels = {"background": 0, "whole_tumor": [1, 2, 3], "tumor_core": [1, 3], "enhancing_tumor": [3]}
        outputs = {name: value for name, value in labels.items() if name != "background"}
    else:
        labels = dict(LABELS)
        outputs = {name: [value] for name, value in labels.items() if value != 0}
    return {"schema_version": 1, "num_channels": num_channels, "labels": labels, "label_mode": label_mode,
            "outputs": outputs, "num_outputs": len(outputs) + (label_mode == "softmax"),
            "normalization": normalization or [{"scheme": "zscore", "use_nonzero_mask": True}] * num_channels,
            "configurations": {config: {"spatial_dims": 3, "target_spacing": [float(s) for s in target_spacing],
                                        "resampling": {"image_order": 3, "label": "onehot_linear",
                                                       "anisotropy_threshold": 3.0},
                                        "patch_size": [8, 16, 16], "batch_size": 2, "architecture": TINY_ARCH}}}


def make_plan_view(**fields) -> Plans:
    """make_plans(...) as the typed view the stages take."""
    return Plans.from_json(make_plans(**fields))
