"""Building blocks shared by the network families: conv/norm factories and ConvNormAct."""

from __future__ import annotations

from dataclasses import dataclass

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


def make_norm(kind: str, channels: int, dims: int, eps: float = 1e-5, affine: bool = True) -> nn.Module:
    """Instance norm (affine) or group norm; never batch norm (reversible recompute would update it twice)."""
    if kind == "instance":
        return {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[dims](channels, eps=eps, affine=affine)
    if kind == "channel_group":
        # Same operation as instance norm, but keeps channels_last(_3d) on CUDA.
        return nn.GroupNorm(channels, channels, eps=eps, affine=affine)
    if kind.startswith("group"):
        groups = int(kind.split(":")[1]) if ":" in kind else min(8, channels)
        return nn.GroupNorm(groups, channels, eps=eps, affine=affine)
    raise ValueError(f"unknown norm {kind!r}: use 'instance', 'channel_group' or 'group[:G]'")


def instance_norms_to_group_norms(network: nn.Module, affine_only: bool = True) -> int:
    """Replace InstanceNorm1/2/3d modules (without running statistics; only affine ones unless affine_only is
    False) by GroupNorm(C, C) in place, the same operation with the same parameters; return the count."""
    replaced = 0
    for name, child in list(network.named_children()):
        if (isinstance(child, nn.modules.instancenorm._InstanceNorm) and not child.track_running_stats
                and (child.affine or not affine_only)):
            group = nn.GroupNorm(child.num_features, child.num_features, eps=child.eps, affine=child.affine)
            if child.affine:
                group.to(device=child.weight.device, dtype=child.weight.dtype)
                with torch.no_grad():
                    group.weight.copy_(child.weight)
                    group.bias.copy_(child.bias)
            setattr(network, name, group)
            replaced += 1
        else:
            replaced += instance_norms_to_group_norms(child, affine_only)
    return replaced


def activation(negative_slope: float = NEGATIVE_SLOPE) -> nn.Module:
    """LeakyReLU as in nnU-Net (in place: it keeps only its output for backward); slope 0 is a ReLU."""
    return nn.LeakyReLU(negative_slope, inplace=True)


@dataclass(frozen=True)
class LayerStyle:
    """Per-layer options of the U-Net families, read from the architecture entry (defaults: nnU-Net's).

    Imported nnU-Net plans set them so that state dicts map one to one (e.g. ResEnc's
    bias-free skip projection).
    """

    norm: str = "instance"
    conv_bias: bool = True        # convolutions and transposed convolutions (heads always have a bias)
    skip_bias: bool = True        # resenc: the 1x1 skip projection (nnU-Net's BasicBlockD has none)
    norm_eps: float = 1e-5
    norm_affine: bool = True
    negative_slope: float = NEGATIVE_SLOPE

    def norm_layer(self, channels: int, dims: int) -> nn.Module:
        """The style's normalisation layer."""
        return make_norm(self.norm, channels, dims, self.norm_eps, self.norm_affine)


def layer_style(arch: dict) -> LayerStyle:
    """The LayerStyle an architecture entry asks for (absent keys keep the defaults)."""
    return LayerStyle(norm=arch.get("norm", "instance"), conv_bias=bool(arch.get("conv_bias", True)),
                      skip_bias=bool(arch.get("skip_bias", True)), norm_eps=float(arch.get("norm_eps", 1e-5)),
                      norm_affine=bool(arch.get("norm_affine", True)),
                      negative_slope=float(arch.get("negative_slope", NEGATIVE_SLOPE)))


class ConvNormAct(nn.Sequential):
    """conv -> norm -> LeakyReLU (the activation is left out with act=False)."""
    # bias=False where the norm cancels it anyway (revmbconv); nnU-Net families keep it.

    def __init__(self, c_in: int, c_out: int, kernel: list[int], stride: list[int] | None = None,
                 norm: str = "instance", act: bool = True, bias: bool = True, style: LayerStyle | None = None):
        if style is not None:
            bias, norm_layer = style.conv_bias, style.norm_layer(c_out, len(kernel))
        else:
            norm_layer = make_norm(norm, c_out, len(kernel))
        layers = [make_conv(c_in, c_out, kernel, stride, bias=bias), norm_layer]
        if act:
            layers.append(activation(style.negative_slope if style is not None else NEGATIVE_SLOPE))
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
