"""Residual-encoder U-Net (nnU-Net ResEnc presets): residual blocks in the encoder."""

from __future__ import annotations

import torch
from torch import nn

from segkit.networks.blocks import ConvNormAct, LayerStyle, activation, layer_style, make_conv
from segkit.networks.unet import UNetSkeleton, plain_decoder


class ResidualBlock(nn.Module):
    """nnU-Net BasicBlockD: conv-norm-act, conv-norm, + skip (avg-pool, 1x1 conv-norm), act."""

    def __init__(self, c_in: int, c_out: int, kernel: list[int], stride: list[int], style: LayerStyle):
        super().__init__()
        dims = len(kernel)
        self.conv1 = ConvNormAct(c_in, c_out, kernel, stride, style=style)
        self.conv2 = ConvNormAct(c_out, c_out, kernel, None, act=False, style=style)
        self.act = activation(style.negative_slope)
        skip: list[nn.Module] = []
        if max(stride) > 1:
            pool = {2: nn.AvgPool2d, 3: nn.AvgPool3d}[dims]
            skip.append(pool(list(stride), list(stride), ceil_mode=True, count_include_pad=False))
        if c_in != c_out:
            skip += [make_conv(c_in, c_out, [1] * dims, bias=style.skip_bias), style.norm_layer(c_out, dims)]
        self.skip = nn.Sequential(*skip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block output."""
        return self.act(self.conv2(self.conv1(x)) + self.skip(x))


def build_resenc(arch: dict, in_channels: int, num_outputs: int) -> UNetSkeleton:
    """ResEnc U-Net: stem conv, blocks_per_stage residual blocks per stage, plain decoder."""
    feats, kernels, strides = arch["features_per_stage"], arch["kernel_sizes"], arch["strides"]
    style = layer_style(arch)
    encoder, c_prev = [], feats[0]
    for s, (f, k, st, n) in enumerate(zip(feats, kernels, strides, arch["blocks_per_stage"])):
        layers: list[nn.Module] = [ConvNormAct(in_channels, f, k, None, style=style)] if s == 0 else []
        layers += [ResidualBlock(c_prev if i == 0 else f, f, k, st if i == 0 else [1] * len(k), style)
                   for i in range(max(1, n))]
        encoder.append(nn.Sequential(*layers))
        c_prev = f
    decoder, heads = plain_decoder(arch, num_outputs)
    return UNetSkeleton(encoder, decoder, heads, arch.get("deep_supervision", True))


