"""Architecture entries from a topology: widths doubling to the cap, the family's block defaults and init, fitted patches."""

from __future__ import annotations

import pytest

from segkit.networks import validate_architecture
from segkit.planning.architecture import architecture_for_patch, count_blocks, make_architecture, patch_voxels
from segkit.planning.topology import plan_topology


def test_widths_double_per_stage_up_to_the_cap_and_scale_with_the_multiplier() -> None:
    topology = plan_topology([1.0, 1.0, 1.0], [128, 128, 128])
    arch = make_architecture("unet", topology)
    validate_architecture(arch)
    assert arch["features_per_stage"][:3] == [32, 64, 128] and max(arch["features_per_stage"]) == 320
    assert arch["init"] == "he" and arch["spatial_dims"] == 3 and len(arch["strides"]) == topology.num_stages
    wide = make_architecture("unet", topology, width_multiplier=1.5)
    assert wide["features_per_stage"][0] == 48 and max(wide["features_per_stage"]) == 480
    deep = make_architecture("revmbconv", topology, depth_multiplier=2)
    assert count_blocks(deep) > count_blocks(make_architecture("revmbconv", topology))
    assert len(deep["expansion_ratios"]) == topology.num_stages


def test_a_patch_the_family_cannot_take_is_refused_with_the_nearest_that_fits() -> None:
    arch = architecture_for_patch("unet", [32, 64, 64])
    assert patch_voxels([32, 64, 64]) == 131072 and count_blocks(arch) == sum(arch["blocks_per_stage"]) + sum(
        arch["decoder_blocks_per_stage"])
    with pytest.raises(ValueError, match=r"patch \[30, 64, 64\] does not fit a unet network"):
        architecture_for_patch("unet", [30, 64, 64])
