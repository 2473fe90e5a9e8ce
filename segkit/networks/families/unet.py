"""The U-Net skeleton shared by all families, and nnU-Net's default plain U-Net (family "unet")."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from segkit.networks.blocks.layers import ConvNormAct, LayerStyle, cat_skip, layer_style, make_head, make_upsample
from segkit.networks.family import NetworkFamily
from segkit.networks.measurement.tally import Tally, conv_norm_act, conv_params, tally_head

# Gradient buffers alive at the peak early in backward, in units of the finest stage tensor (the
# plain decoder backpropagates through a 3x3 conv on the 2C concatenation); fitted to measured
# CPU peaks (two patch sizes per family, the other configurations held out; docs/benchmarks/networks.md).
PLAIN_DECODER_GRAD_BUFFERS = 3.4
# oneDNN scratch, kernels and allocator slack of a plain conv network (~10 MiB, measured).
PLAIN_WORKSPACE_BYTES = 10 * 2 ** 20


class DecoderStage(nn.Module):
    """Upsample, concatenate the skip, then the stage's blocks."""

    def __init__(self, upsample: nn.Module, blocks: nn.Module):
        super().__init__()
        self.upsample = upsample
        self.blocks = blocks

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Decode one resolution."""
        return self.blocks(cat_skip(self.upsample(x), skip))


class UNetSkeleton(nn.Module):
    """Encoder stages, decoder stages (coarsest first) and one head per decoder resolution."""

    def __init__(self, encoder: Sequence[nn.Module], decoder: Sequence[DecoderStage], heads: Sequence[nn.Module],
                 deep_supervision: bool = True):
        super().__init__()
        self.encoder = nn.ModuleList(encoder)
        self.decoder = nn.ModuleList(decoder)
        self.heads = nn.ModuleList(heads)
        self.deep_supervision = deep_supervision

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Logits: a list (highest resolution first) with deep supervision, else one tensor."""
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        outputs = []
        last = len(self.decoder) - 1
        for index, (stage, head) in enumerate(zip(self.decoder, self.heads)):
            x = stage(x, skips.pop())
            if self.deep_supervision or index == last:
                outputs.append(head(x))
        return outputs[::-1] if self.deep_supervision else outputs[-1]


def conv_stack(c_in: int, c_out: int, kernel: list[int], stride: list[int], count: int,
               style: LayerStyle) -> nn.Sequential:
    """count ConvNormAct layers; the first carries the stride and the channel change."""
    layers = [ConvNormAct(c_in, c_out, kernel, stride, style=style)]
    layers += [ConvNormAct(c_out, c_out, kernel, None, style=style) for _ in range(max(1, count) - 1)]
    return nn.Sequential(*layers)


def plain_decoder(arch: dict, num_outputs: int) -> tuple[list[DecoderStage], list[nn.Module]]:
    """nnU-Net decoder: transposed conv, concat skip, conv stack; a head per resolution."""
    feats, kernels, strides = arch["features_per_stage"], arch["kernel_sizes"], arch["strides"]
    dims, style = len(kernels[0]), layer_style(arch)
    stages, heads = [], []
    for d, s in enumerate(range(len(feats) - 2, -1, -1)):
        up = make_upsample(feats[s + 1], feats[s], strides[s + 1], bias=style.conv_bias)
        blocks = conv_stack(2 * feats[s], feats[s], kernels[s], [1] * dims, arch["decoder_blocks_per_stage"][d], style)
        stages.append(DecoderStage(up, blocks))
        heads.append(make_head(feats[s], num_outputs, dims))
    return stages, heads


def build_unet(arch: dict, in_channels: int, num_outputs: int) -> UNetSkeleton:
    """nnU-Net's default U-Net: blocks_per_stage ConvNormAct per encoder stage, strided first conv."""
    feats, kernels, strides = arch["features_per_stage"], arch["kernel_sizes"], arch["strides"]
    style = layer_style(arch)
    encoder, c_prev = [], in_channels
    for f, k, st, n in zip(feats, kernels, strides, arch["blocks_per_stage"]):
        encoder.append(conv_stack(c_prev, f, k, st, n, style))
        c_prev = f
    decoder, heads = plain_decoder(arch, num_outputs)
    return UNetSkeleton(encoder, decoder, heads, arch.get("deep_supervision", True))


def unet_stage_defaults(stages: int, depth_multiplier: int) -> dict:
    """nnU-Net's default: two convs per encoder and decoder stage (times the depth multiplier)."""
    return {"blocks_per_stage": [2 * depth_multiplier] * stages,
            "decoder_blocks_per_stage": [2 * depth_multiplier] * (stages - 1)}


def tally_plain_decoder(t: Tally, arch: dict, vox: list[int], num_outputs: int) -> None:
    """Tally plain_decoder: transposed conv (freed after the concat), the concat the first conv saves, convs, heads."""
    feats, kernels, strides = arch["features_per_stage"], arch["kernel_sizes"], arch["strides"]
    bias = bool(arch.get("conv_bias", True))
    for d, s in enumerate(range(len(feats) - 2, -1, -1)):
        f, k, n = feats[s], kernels[s], arch["decoder_blocks_per_stage"][d]
        t.parameters += conv_params(feats[s + 1], f, strides[s + 1], bias=bias)
        t.store(2 * f * vox[s])
        for i in range(max(1, n)):
            conv_norm_act(t, 2 * f if i == 0 else f, f, k, vox[s], bias=bias)
        tally_head(t, arch, s, f, vox[s], num_outputs, PLAIN_DECODER_GRAD_BUFFERS)


def tally_unet(t: Tally, arch: dict, vox: list[int], in_channels: int, num_outputs: int) -> None:
    """Tally build_unet: ConvNormAct stacks (conv output + activation output each), then the plain decoder."""
    c_prev, bias = in_channels, bool(arch.get("conv_bias", True))
    for s, (f, k, n) in enumerate(zip(arch["features_per_stage"], arch["kernel_sizes"], arch["blocks_per_stage"])):
        for i in range(max(1, n)):
            conv_norm_act(t, c_prev if i == 0 else f, f, k, vox[s], bias=bias)
        c_prev = f
    tally_plain_decoder(t, arch, vox, num_outputs)


# default_init: nnU-Net's He init, chosen by measurement (docs/benchmarks/training-benchmarks.md, "Weight initialisation").
FAMILY = NetworkFamily(
    name="unet", build=build_unet, stage_defaults=unet_stage_defaults, tally=tally_unet,
    workspace_bytes=PLAIN_WORKSPACE_BYTES, description="nnU-Net's plain U-Net (conv-norm-LeakyReLU stacks)",
    default_init="he")
