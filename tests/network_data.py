"""Small architecture entries shared by the network tests."""

from __future__ import annotations


def arch_for(family: str, dims: int) -> dict:
    """A small anisotropic architecture entry (first axis pooled late, kernel 1 there at first)."""
    if dims == 3:
        kernels = [[1, 3, 3], [3, 3, 3], [3, 3, 3]]
        strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2]]
    else:
        kernels = [[3, 3], [3, 3], [3, 1]]
        strides = [[1, 1], [2, 1], [2, 2]]
    arch = {"family": family, "spatial_dims": dims, "features_per_stage": [8, 16, 32], "kernel_sizes": kernels,
            "strides": strides, "blocks_per_stage": [1, 2, 3], "decoder_blocks_per_stage": [2, 1],
            "norm": "instance", "deep_supervision": True}
    if family == "revmbconv":
        arch.update(expansion_ratios=[1, 2, 3], reversible=True, checkpointing=False)
    return arch


def memory_arch_for(family: str, mode: str = "reversible") -> dict:
    """A small anisotropic 3-stage entry of a family (revmbconv in a given mode)."""
    arch = {"family": family, "spatial_dims": 3, "features_per_stage": [8, 16, 32],
            "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
            "blocks_per_stage": [2, 3, 4], "decoder_blocks_per_stage": [2, 2], "norm": "instance",
            "deep_supervision": True}
    if family == "resenc":
        arch["blocks_per_stage"] = [1, 3, 4]
    if family == "revmbconv":
        arch.update(expansion_ratios=[1, 2, 4], reversible=mode != "plain", checkpointing=mode == "checkpoint")
    return arch
