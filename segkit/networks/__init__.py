"""Networks: plain U-Net, residual-encoder U-Net, reversible RevMBConv U-Net, UNet++, STU-Net presets, and their registry."""

from segkit.networks.architecture import validate_architecture
from segkit.networks.build import build_network
from segkit.networks.families.revmbconv import set_mode

__all__ = ["build_network", "validate_architecture", "set_mode"]
