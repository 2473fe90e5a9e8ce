"""The U-Net skeleton shared by all families, and nnU-Net's default plain U-Net."""

from __future__ import annotations

import torch
from torch import nn

from segkit.networks.blocks import ConvNormAct, LayerStyle, cat_skip, layer_style, make_head, make_upsample


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

    def __init__(self, encoder: list[nn.Module], decoder: list[DecoderStage], heads: list[nn.Module],
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
