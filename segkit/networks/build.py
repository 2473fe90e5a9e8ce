"""build_network: an nn.Module from a plan's architecture entry, by its registered family."""

from __future__ import annotations

from torch import nn

from segkit.networks.architecture import init_scheme, validate_architecture
from segkit.networks.blocks.init import initialise
from segkit.networks.registry import family_of


def build_network(arch: dict, in_channels: int, num_outputs: int) -> nn.Module:
    """The network an architecture entry describes (3D or 2D by spatial_dims), initialised by its init scheme."""
    validate_architecture(arch)
    network = family_of(arch).build(arch, in_channels, num_outputs)
    return initialise(network, init_scheme(arch))
