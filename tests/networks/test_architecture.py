"""What an architecture entry must hold: each inconsistency named; the family's stage keys and default init."""

from __future__ import annotations

import pytest

from segkit.networks.architecture import init_scheme, stage_keys, validate_architecture


def entry(**change) -> dict:
    """A valid 3-stage 3D revmbconv entry, with changes."""
    arch = {"family": "revmbconv", "features_per_stage": [8, 16, 32], "kernel_sizes": [[1, 3, 3], [3, 3, 3]] + [[3] * 3],
            "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]], "blocks_per_stage": [1, 2, 2],
            "decoder_blocks_per_stage": [1, 1], "expansion_ratios": [1, 2, 2]}
    return arch | change


def test_a_valid_entry_passes_and_lists_its_familys_stage_keys() -> None:
    validate_architecture(entry())
    validate_architecture(entry(spatial_dims=2, kernel_sizes=[[3, 3]] * 3, strides=[[1, 1], [2, 2], [2, 2]]))
    assert stage_keys(entry())[-1] == "expansion_ratios"
    assert "expansion_ratios" not in stage_keys(entry(family="unet"))


@pytest.mark.parametrize("change, message", [
    ({"family": "vnet"}, "unknown network family 'vnet'"),
    ({"expansion_ratios": [1, 2]}, "revmbconv needs expansion_ratios with one entry per stage: 2 entries for 3"),
    ({"decoder_blocks_per_stage": [1]}, "decoder_blocks_per_stage needs 2 entries, got 1"),
    ({"strides": [[1, 1], [2, 2], [2, 2]]}, "kernel_sizes and strides must have 3 entries per stage"),
    ({"init": "xavier"}, "unknown init 'xavier'"),
])
def test_each_inconsistency_is_named(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_architecture(entry(**change))
    arch = entry()
    del arch["strides"]
    with pytest.raises(ValueError, match=r"lacks \['strides'\]"):
        validate_architecture(arch)


def test_init_is_the_entrys_key_else_the_familys_default() -> None:
    assert init_scheme(entry()) == "pytorch" and init_scheme(entry(family="unet")) == "he"
    assert init_scheme(entry(family="unet", init="pytorch")) == "pytorch"
