"""build_network: an nn.Module from a plan's architecture entry."""

from __future__ import annotations

from torch import nn

from segkit.networks.init import INIT_SCHEMES, initialise
from segkit.networks.resenc import build_resenc
from segkit.networks.revmbconv import build_revmbconv
from segkit.networks.unet import build_unet

BUILDERS = {"unet": build_unet, "resenc": build_resenc, "revmbconv": build_revmbconv}
DEFAULT_INIT = "pytorch"
REQUIRED_KEYS = ("family", "features_per_stage", "kernel_sizes", "strides", "blocks_per_stage",
                 "decoder_blocks_per_stage")


def validate_architecture(arch: dict) -> None:
    """Raise ValueError naming the first inconsistency in an architecture entry."""
    missing = [key for key in REQUIRED_KEYS if key not in arch]
    if missing:
        raise ValueError(f"architecture entry lacks {missing}")
    if arch["family"] not in BUILDERS:
        raise ValueError(f"unknown network family {arch['family']!r}; choose from {sorted(BUILDERS)}")
    stages = len(arch["features_per_stage"])
    for key in ("kernel_sizes", "strides", "blocks_per_stage"):
        if len(arch[key]) != stages:
            raise ValueError(f"{key} has {len(arch[key])} entries for {stages} stages")
    if len(arch["decoder_blocks_per_stage"]) != stages - 1:
        raise ValueError(f"decoder_blocks_per_stage needs {stages - 1} entries, got {len(arch['decoder_blocks_per_stage'])}")
    dims = arch.get("spatial_dims", len(arch["kernel_sizes"][0]))
    if any(len(k) != dims for k in arch["kernel_sizes"] + arch["strides"]):
        raise ValueError(f"kernel_sizes and strides must have {dims} entries per stage (spatial_dims)")
    if arch["family"] == "revmbconv" and len(arch.get("expansion_ratios", [])) != stages:
        raise ValueError("revmbconv needs expansion_ratios with one entry per stage")
    if arch.get("init", DEFAULT_INIT) not in INIT_SCHEMES:
        raise ValueError(f"unknown init {arch['init']!r}; choose from {INIT_SCHEMES}")


def build_network(arch: dict, in_channels: int, num_outputs: int) -> nn.Module:
    """The network an architecture entry describes (3D or 2D by spatial_dims)."""
    validate_architecture(arch)
    network = BUILDERS[arch["family"]](arch, in_channels, num_outputs)
    return initialise(network, arch.get("init", DEFAULT_INIT))
