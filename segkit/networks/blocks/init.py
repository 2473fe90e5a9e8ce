"""Weight initialisation schemes, chosen by the architecture entry's `init` key.

- "pytorch": the layers' own defaults (kaiming_uniform with a=sqrt(5), uniform bias).
- "he": nnU-Net's InitWeights_He(1e-2): every (transposed) convolution gets
  kaiming_normal_(a=1e-2) weights and a zero bias; residual blocks (modules with a
  `last_norm_before_add` attribute) start as their skip path, their last norm's weight and bias
  zeroed, as nnU-Net's `init_last_bn_before_add_to_0` does for ResEnc U-Nets.
Norm layers keep weight 1, bias 0 in both.
"""

from __future__ import annotations

from torch import nn

INIT_SCHEMES = ("pytorch", "he")
HE_NEGATIVE_SLOPE = 1e-2
_CONVS = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def initialise(network: nn.Module, scheme: str) -> nn.Module:
    """Initialise network's parameters in place by scheme (see INIT_SCHEMES); returns the network."""
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init {scheme!r}; choose from {INIT_SCHEMES}")
    if scheme == "pytorch":
        return network
    for module in network.modules():
        if isinstance(module, _CONVS):
            nn.init.kaiming_normal_(module.weight, a=HE_NEGATIVE_SLOPE)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        norm = getattr(module, "last_norm_before_add", None)
        if norm is not None:
            nn.init.zeros_(norm.weight)
            nn.init.zeros_(norm.bias)
    return network
