"""Residual-encoder U-Net (nnU-Net ResEnc presets): residual blocks in the encoder."""

from __future__ import annotations

import torch
from torch import nn

from segkit.networks.blocks.layers import ConvNormAct, LayerStyle, activation, layer_style, make_conv
from segkit.networks.families.unet import PLAIN_WORKSPACE_BYTES, UNetSkeleton, plain_decoder, tally_plain_decoder
from segkit.networks.family import NetworkFamily
from segkit.networks.measurement.tally import Tally, conv_norm_act, conv_params, norm_params

# ResEnc presets put more residual blocks in deeper stages.
RESENC_BLOCKS = (1, 3, 4, 6, 6, 6, 6, 6)


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
            skip.append(pool(list(stride), list(stride), ceil_mode=True,  # type: ignore[arg-type]  # per-axis lists work
                             count_include_pad=False))
        if c_in != c_out:
            skip += [make_conv(c_in, c_out, [1] * dims, bias=style.skip_bias), style.norm_layer(c_out, dims)]
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


def resenc_stage_defaults(stages: int, depth_multiplier: int) -> dict:
    """nnU-Net ResEnc preset block counts per stage, one decoder block per resolution (times the multiplier)."""
    return {"blocks_per_stage": [b * depth_multiplier for b in RESENC_BLOCKS[:stages]],
            "decoder_blocks_per_stage": [1 * depth_multiplier] * (stages - 1)}


def tally_residual_block(t: Tally, c_in: int, c_out: int, kernel: list[int], stride: list[int], vox: int,
                         bias: bool = True, skip_bias: bool = True) -> None:
    """Tally a ResidualBlock: conv1 out, act1 out, conv2 out, sum/act out; the skip projection."""
    t.parameters += (conv_params(c_in, c_out, kernel, bias=bias) + conv_params(c_out, c_out, kernel, bias=bias)
                     + 2 * norm_params(c_out))
    t.store(4 * c_out * vox)
    if c_in != c_out:
        t.parameters += conv_params(c_in, c_out, [1] * len(kernel), bias=skip_bias) + norm_params(c_out)
        t.store(c_out * vox + (c_in * vox if max(stride) > 1 else 0))


def tally_resenc(t: Tally, arch: dict, vox: list[int], in_channels: int, num_outputs: int) -> None:
    """Tally build_resenc: stem ConvNormAct, residual blocks per stage, then the plain decoder."""
    c_prev = in_channels
    bias, skip_bias = bool(arch.get("conv_bias", True)), bool(arch.get("skip_bias", True))
    for s, (f, k, n) in enumerate(zip(arch["features_per_stage"], arch["kernel_sizes"], arch["blocks_per_stage"])):
        if s == 0:
            conv_norm_act(t, in_channels, f, k, vox[0], bias=bias)
            c_prev = f
        for i in range(max(1, n)):
            tally_residual_block(t, c_prev if i == 0 else f, f, k, arch["strides"][s] if i == 0 else [1] * len(k),
                                 vox[s], bias, skip_bias)
        c_prev = f
    tally_plain_decoder(t, arch, vox, num_outputs)


# default_init: nnU-Net's He init, chosen by measurement (docs/benchmarks/training-benchmarks.md, "Weight initialisation").
FAMILY = NetworkFamily(
    name="resenc", build=build_resenc, stage_defaults=resenc_stage_defaults, tally=tally_resenc,
    workspace_bytes=PLAIN_WORKSPACE_BYTES, description="nnU-Net's residual-encoder U-Net (ResEnc presets)",
    default_init="he")
