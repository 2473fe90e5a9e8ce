"""Residual-encoder U-Net (nnU-Net ResEnc presets): residual blocks in the encoder."""

from __future__ import annotations

import torch
from torch import nn

from segkit.networks.blocks import ConvNormAct, activation, make_conv, make_norm
from segkit.networks.unet import UNetSkeleton, plain_decoder


class ResidualBlock(nn.Module):
    """nnU-Net BasicBlockD: conv-norm-act, conv-norm, + skip (avg-pool, 1x1 conv-norm), act."""

    def __init__(self, c_in: int, c_out: int, kernel: list[int], stride: list[int], norm: str):
        super().__init__()
        dims = len(kernel)
        self.conv1 = ConvNormAct(c_in, c_out, kernel, stride, norm)
        self.conv2 = ConvNormAct(c_out, c_out, kernel, None, norm, act=False)
        self.act = activation()
        skip: list[nn.Module] = []
        if max(stride) > 1:
            pool = {2: nn.AvgPool2d, 3: nn.AvgPool3d}[dims]
            skip.append(pool(list(stride), list(stride), ceil_mode=True))
        if c_in != c_out:
            skip += [make_conv(c_in, c_out, [1] * dims), make_norm(norm, c_out, dims)]
        self.skip = nn.Sequential(*skip)

    @property
    def last_norm_before_add(self) -> nn.Module:
        """The norm ending the residual branch ("he" init zeroes it so the block starts as its skip)."""
        return self.conv2[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block output."""
        return self.act(self.conv2(self.conv1(x)) + self.skip(x))


def build_resenc(arch: dict, in_channels: int, num_outputs: int) -> UNetSkeleton:
    """ResEnc U-Net: stem conv, blocks_per_stage residual blocks per stage, plain decoder."""
    feats, kernels, strides = arch["features_per_stage"], arch["kernel_sizes"], arch["strides"]
    norm = arch.get("norm", "instance")
    encoder, c_prev = [], feats[0]
    for s, (f, k, st, n) in enumerate(zip(feats, kernels, strides, arch["blocks_per_stage"])):
        layers: list[nn.Module] = [ConvNormAct(in_channels, f, k, None, norm)] if s == 0 else []
        layers += [ResidualBlock(c_prev if i == 0 else f, f, k, st if i == 0 else [1] * len(k), norm)
                   for i in range(max(1, n))]
        encoder.append(nn.Sequential(*layers))
        c_prev = f
    decoder, heads = plain_decoder(arch, num_outputs)
    return UNetSkeleton(encoder, decoder, heads, arch.get("deep_supervision", True))


