"""What an architecture entry (plans.json's `architecture` block) must hold, and facts derived from it.

The stride product (`stride_product`, `total_strides`) is `segkit.plans`'s.
"""

from __future__ import annotations

from segkit.networks.blocks.init import INIT_SCHEMES
from segkit.networks.registry import family_names, family_of
from segkit.plans import spatial_dims_of

REQUIRED_KEYS = ("family", "features_per_stage", "kernel_sizes", "strides", "blocks_per_stage",
                 "decoder_blocks_per_stage")
# lists with one value per encoder stage in every family (decoder_blocks_per_stage has one fewer)
COMMON_STAGE_KEYS = ("features_per_stage", "kernel_sizes", "strides", "blocks_per_stage")


def stage_keys(arch: dict) -> tuple[str, ...]:
    """Every list in the entry with one value per encoder stage: the common ones and the family's own."""
    return COMMON_STAGE_KEYS + family_of(arch).stage_keys


def init_scheme(arch: dict) -> str:
    """The entry's weight initialisation: its "init" key, else its family's default."""
    return arch.get("init", family_of(arch).default_init)


def validate_architecture(arch: dict) -> None:
    """Raise ValueError naming the first inconsistency in an architecture entry."""
    missing = [key for key in REQUIRED_KEYS if key not in arch]
    if missing:
        raise ValueError(f"architecture entry lacks {missing}")
    if arch["family"] not in family_names():
        raise ValueError(f"unknown network family {arch['family']!r}; choose from {sorted(family_names())}")
    stages = len(arch["features_per_stage"])
    for key in stage_keys(arch):
        if len(arch.get(key, [])) != stages:
            raise ValueError(f"{arch['family']} needs {key} with one entry per stage: {len(arch.get(key, []))} "
                             f"entries for {stages} stages")
    if len(arch["decoder_blocks_per_stage"]) != stages - 1:
        raise ValueError(f"decoder_blocks_per_stage needs {stages - 1} entries, "
                         f"got {len(arch['decoder_blocks_per_stage'])}")
    dims = spatial_dims_of(arch)
    if any(len(k) != dims for k in arch["kernel_sizes"] + arch["strides"]):
        raise ValueError(f"kernel_sizes and strides must have {dims} entries per stage (spatial_dims)")
    if init_scheme(arch) not in INIT_SCHEMES:
        raise ValueError(f"unknown init {arch['init']!r}; choose from {INIT_SCHEMES}")
