"""Architecture entries (the `architecture` block of plans.json) for each network family."""

from __future__ import annotations

import math

from segkit.planning.topology import BASE_FEATURES, MAX_FEATURES, Topology

FAMILIES = ("unet", "resenc", "revmbconv")
# ResEnc presets put more residual blocks in deeper stages.
RESENC_BLOCKS = (1, 3, 4, 6, 6, 6, 6, 6)
# Reversible stages store one tensor however deep they are, so depth is cheap; keep the
# expansion low at full resolution where recomputing a block is the transient peak.
REVMBCONV_BLOCKS = (2, 2, 2, 4, 4, 4, 4, 4)
REVMBCONV_EXPANSION = (1, 2, 2, 4, 4, 4, 4, 4)


def make_architecture(family: str, topology: Topology, depth_multiplier: int = 1,
                      width_multiplier: float = 1.0, reversible: bool = True) -> dict:
    """The architecture entry for a family on a topology, scaled in depth and width."""
    if family not in FAMILIES:
        raise ValueError(f"unknown network family {family!r}; choose from {FAMILIES}")
    dims = len(topology.strides[0])
    stages = topology.num_stages
    base = int(round(BASE_FEATURES * width_multiplier / 8)) * 8
    cap = int(round(MAX_FEATURES[dims] * width_multiplier / 8)) * 8
    features = [min(base * 2 ** stage, cap) for stage in range(stages)]
    arch = {
        "family": family,
        "spatial_dims": dims,
        "features_per_stage": features,
        "kernel_sizes": [list(k) for k in topology.kernel_sizes],
        "strides": [list(s) for s in topology.strides],
        "norm": "instance",
        "deep_supervision": True,
    }
    if family == "unet":
        arch["blocks_per_stage"] = [2 * depth_multiplier] * stages
        arch["decoder_blocks_per_stage"] = [2 * depth_multiplier] * (stages - 1)
    elif family == "resenc":
        arch["blocks_per_stage"] = [b * depth_multiplier for b in RESENC_BLOCKS[:stages]]
        arch["decoder_blocks_per_stage"] = [1 * depth_multiplier] * (stages - 1)
    else:
        arch["blocks_per_stage"] = [b * depth_multiplier for b in REVMBCONV_BLOCKS[:stages]]
        arch["decoder_blocks_per_stage"] = [1 * depth_multiplier] * (stages - 1)
        arch["expansion_ratios"] = list(REVMBCONV_EXPANSION[:stages])
        arch["reversible"] = reversible
        arch["checkpointing"] = False
    return arch


def count_blocks(arch: dict) -> int:
    """Total encoder + decoder blocks (a rough depth measure for summaries)."""
    return int(sum(arch["blocks_per_stage"]) + sum(arch["decoder_blocks_per_stage"]))


def patch_voxels(patch_size: list[int]) -> int:
    """Number of voxels in a patch."""
    return int(math.prod(patch_size))
