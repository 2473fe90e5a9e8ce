"""Building blocks shared by the network families: conv/norm factories and ConvNormAct."""

from __future__ import annotations

import torch
from torch import nn

NEGATIVE_SLOPE = 0.01


def conv_class(dims: int) -> type[nn.Module]:
    """nn.Conv2d or nn.Conv3d."""
    return {2: nn.Conv2d, 3: nn.Conv3d}[dims]


def transposed_conv_class(dims: int) -> type[nn.Module]:
    """nn.ConvTranspose2d or nn.ConvTranspose3d."""
    return {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[dims]


def padding_for(kernel: list[int]) -> list[int]:
    """'Same' padding for odd kernels."""
    return [k // 2 for k in kernel]


def make_conv(c_in: int, c_out: int, kernel: list[int], stride: list[int] | None = None, groups: int = 1,
              bias: bool = True) -> nn.Module:
    """A convolution with 'same' padding (bias on by default, as in nnU-Net)."""
    stride = stride or [1] * len(kernel)
    return conv_class(len(kernel))(c_in, c_out, list(kernel), list(stride), padding_for(kernel), groups=groups,
                                   bias=bias)


def make_norm(kind: str, channels: int, dims: int) -> nn.Module:
    """Instance norm (affine) or group norm; never batch norm (reversible recompute would update it twice)."""
    if kind == "instance":
        return {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[dims](channels, affine=True)
    if kind == "channel_group":
        # Same operation as instance norm, but keeps channels_last(_3d) on CUDA.
        return nn.GroupNorm(channels, channels)
    if kind.startswith("group"):
        groups = int(kind.split(":")[1]) if ":" in kind else min(8, channels)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"unknown norm {kind!r}: use 'instance', 'channel_group' or 'group[:G]'")


def activation() -> nn.Module:
    """LeakyReLU as in nnU-Net (in place: it keeps only its output for backward)."""
    return nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)


class ConvNormAct(nn.Sequential):
    """conv -> norm -> LeakyReLU (the activation is left out with act=False)."""
    # bias=False where the norm cancels it anyway (revmbconv); nnU-Net families keep it.

    def __init__(self, c_in: int, c_out: int, kernel: list[int], stride: list[int] | None = None,
                 norm: str = "instance", act: bool = True, bias: bool = True):
        layers = [make_conv(c_in, c_out, kernel, stride, bias=bias), make_norm(norm, c_out, len(kernel))]
        if act:
            layers.append(activation())
        super().__init__(*layers)


def make_head(channels: int, num_outputs: int, dims: int) -> nn.Module:
    """1x1 convolution producing logits."""
    return make_conv(channels, num_outputs, [1] * dims)


def make_upsample(c_in: int, c_out: int, stride: list[int], bias: bool = True) -> nn.Module:
    """Transposed convolution with kernel = stride."""
    return transposed_conv_class(len(stride))(c_in, c_out, list(stride), list(stride), bias=bias)


def ones(dims: int) -> list[int]:
    """A unit kernel/stride for dims axes."""
    return [1] * dims


def cat_skip(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """Concatenate the upsampled tensor with its skip along channels."""
    return torch.cat([x, skip], dim=1)
