"""Architecture entries (the `architecture` block of plans.json) for a registered network family.

The topology (stages, kernels, strides) and the widths come from the planner; the per-stage
block counts and the family's own keys from the family's `stage_defaults`
(segkit.networks.registry).
"""

from __future__ import annotations

import math

from segkit.networks.registry import get_family
from segkit.planning.topology import BASE_FEATURES, MAX_FEATURES, Topology


def make_architecture(family: str, topology: Topology, depth_multiplier: int = 1,
                      width_multiplier: float = 1.0) -> dict:
    """The architecture entry for a family on a topology, scaled in depth and width."""
    record = get_family(family)
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
        "init": record.default_init,
    }
    arch.update(record.stage_defaults(stages, depth_multiplier))
    return arch


def count_blocks(arch: dict) -> int:
    """Total encoder + decoder blocks (a rough depth measure for summaries)."""
    return int(sum(arch["blocks_per_stage"]) + sum(arch["decoder_blocks_per_stage"]))


def patch_voxels(patch_size: list[int]) -> int:
    """Number of voxels in a patch."""
    return int(math.prod(patch_size))


def architecture_for_patch(family: str, patch_size: list[int], spacing: list[float] | None = None) -> dict:
    """A fresh entry of a family for a patch (isotropic spacing unless given); ValueError if the patch does not fit it."""
    from segkit.planning.topology import fit_patch_for_family

    spacing = spacing or [1.0] * len(patch_size)
    fitted, topology = fit_patch_for_family(list(patch_size), spacing, family)
    if list(fitted) != list(patch_size):
        raise ValueError(f"patch {list(patch_size)} does not fit a {family} network: each axis must be a multiple "
                         f"of {topology.divisor} (nearest below: {fitted})")
    return make_architecture(family, topology)
