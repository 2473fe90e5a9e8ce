"""STU-Net (Huang et al. 2023, "STU-Net: Scalable and Transferable Medical Image Segmentation Models
Empowered by Large-Scale Supervised Pre-training"): residual U-Net presets S/B/L/H scaling depth and
width together. Families "stunet-s", "stunet-b", "stunet-l", "stunet-h" (one preset each) and
"stunet" (the planner takes the largest preset that fits the budget: NetworkFamily.presets).

As in the authors' code (github.com/uni-medical/STU-Net, nnUNet-2.2 STUNetTrainer.py):
- widths base x (1, 2, 4, 8, 16, 16) with base 16 (S), 32 (B), 64 (L), 96 (H); residual blocks per
  stage 1 (S, B), 2 (L), 3 (H), the same count in every encoder stage and decoder resolution;
- block (BasicResBlock): conv(k, stride) -> InstanceNorm -> LeakyReLU -> conv(k) -> InstanceNorm,
  + skip, LeakyReLU; the first block of every stage (and of every decoder resolution, on the
  concatenation) has a strided 1x1 conv (with bias, no norm) as its skip, the others the identity;
- upsampling: nearest-neighbour interpolation by the stride, then a 1x1 conv (no transposed conv);
- a 1x1 head per decoder resolution (deep supervision, highest resolution first).

segkit keeps its planned topology (number of stages, kernel sizes, strides); the paper's models
have 6 stages of 3x3x3 kernels (their trainer fixes them), which is the topology the parameter
counts of PAPER_PARAMETERS (1 input channel, 105 outputs: TotalSegmentator's 104 classes +
background) refer to. Beyond 6 stages the widths stay at base x 16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segkit.networks.blocks.layers import ConvNormAct, LayerStyle, activation, layer_style, make_conv, make_head
from segkit.networks.families.unet import PLAIN_WORKSPACE_BYTES, DecoderStage, UNetSkeleton
from segkit.networks.family import NetworkFamily
from segkit.networks.measurement.tally import Tally, conv_norm_act, conv_params, tally_head

# preset -> (base width, residual blocks per stage)
STUNET_PRESETS = {"s": (16, 1), "b": (32, 1), "l": (64, 2), "h": (96, 3)}
STUNET_WIDTH_FACTORS = (1, 2, 4, 8, 16, 16)
# Parameter counts the paper reports (README table; 1 input channel, 105 outputs, 6 stages 3x3x3).
PAPER_PARAMETERS = {"s": 14.60e6, "b": 58.26e6, "l": 440.30e6, "h": 1457.33e6}
PAPER_IN_CHANNELS, PAPER_OUTPUTS = 1, 105
# Gradient buffers alive at the peak early in backward, in units of the finest stage tensor; fitted to
# measured CPU peaks (docs/benchmarks/unet-and-stu-net.md, "Memory model vs measured CPU peak").
STUNET_GRAD_BUFFERS = 3.4


class StuResBlock(nn.Module):
    """STU-Net's BasicResBlock: conv-norm-act, conv-norm, + skip (strided 1x1 conv or identity), act."""

    def __init__(self, c_in: int, c_out: int, kernel: list[int], stride: list[int], project: bool,
                 style: LayerStyle):
        super().__init__()
        self.conv1 = ConvNormAct(c_in, c_out, kernel, stride, style=style)
        self.conv2 = ConvNormAct(c_out, c_out, kernel, None, act=False, style=style)
        if not project and (c_in != c_out or max(stride) > 1):
            raise ValueError("an identity skip needs equal channels and stride 1")
        self.skip = make_conv(c_in, c_out, [1] * len(kernel), stride) if project else nn.Identity()
        self.act = activation(style.negative_slope)

    @property
    def last_norm_before_add(self) -> nn.Module:
        """The norm ending the residual branch ("he" init zeroes it so the block starts as its skip)."""
        return self.conv2[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block output."""
        return self.act(self.conv2(self.conv1(x)) + self.skip(x))


def residual_stage(c_in: int, c_out: int, kernel: list[int], stride: list[int], count: int,
                   style: LayerStyle) -> nn.Sequential:
    """count blocks: the first strides and projects its skip (always, as in STU-Net), the rest keep the identity."""
    ones = [1] * len(kernel)
    return nn.Sequential(StuResBlock(c_in, c_out, kernel, stride, True, style),
                         *[StuResBlock(c_out, c_out, kernel, ones, False, style) for _ in range(max(1, count) - 1)])


class InterpolateUp(nn.Module):
    """Nearest-neighbour upsampling by the stride, then a 1x1 conv to the skip's width (STU-Net's upsampling)."""

    def __init__(self, c_in: int, c_out: int, stride: list[int]):
        super().__init__()
        self.scale = tuple(float(s) for s in stride)
        self.conv = make_conv(c_in, c_out, [1] * len(stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsampled, then projected."""
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))


def build_stunet(arch: dict, in_channels: int, num_outputs: int) -> UNetSkeleton:
    """STU-Net from an entry: residual stages, interpolation + 1x1 conv upsampling, residual decoder stages."""
    feats, kernels, strides = arch["features_per_stage"], arch["kernel_sizes"], arch["strides"]
    style, dims = layer_style(arch), len(kernels[0])
    encoder, c_prev = [], in_channels
    for f, k, st, n in zip(feats, kernels, strides, arch["blocks_per_stage"]):
        encoder.append(residual_stage(c_prev, f, k, st, n, style))
        c_prev = f
    decoder, heads = [], []
    for d, s in enumerate(range(len(feats) - 2, -1, -1)):
        up = InterpolateUp(feats[s + 1], feats[s], strides[s + 1])
        blocks = residual_stage(2 * feats[s], feats[s], kernels[s], [1] * dims, arch["decoder_blocks_per_stage"][d],
                                style)
        decoder.append(DecoderStage(up, blocks))
        heads.append(make_head(feats[s], num_outputs, dims))
    return UNetSkeleton(encoder, decoder, heads, arch.get("deep_supervision", True))


def preset_widths(preset: str, stages: int) -> list[int]:
    """A preset's width per stage: base x (1, 2, 4, 8, 16, 16), base x 16 beyond six stages."""
    base = STUNET_PRESETS[preset][0]
    factors = list(STUNET_WIDTH_FACTORS[:stages]) + [STUNET_WIDTH_FACTORS[-1]] * max(0, stages - 6)
    return [base * f for f in factors]


def preset_defaults(preset: str):
    """stage_defaults of one preset: its widths and its block count in every encoder stage and decoder resolution."""

    def defaults(stages: int, depth_multiplier: int) -> dict:
        blocks = STUNET_PRESETS[preset][1] * depth_multiplier
        return {"features_per_stage": preset_widths(preset, stages), "blocks_per_stage": [blocks] * stages,
                "decoder_blocks_per_stage": [blocks] * (stages - 1)}

    defaults.__doc__ = f"STU-Net-{preset.upper()}: widths and blocks per stage."
    return defaults


def tally_residual_stage(t: Tally, c_in: int, c_out: int, kernel: list[int], count: int, vox: int) -> None:
    """Tally residual_stage: per block conv1 out, act1 out, conv2 out, sum/act out (4x); the first block's
    1x1 skip conv (its output is only added, so nothing more is saved)."""
    for i in range(max(1, count)):
        conv_norm_act(t, c_in if i == 0 else c_out, c_out, kernel, vox)          # conv1 out + act1 out
        conv_norm_act(t, c_out, c_out, kernel, vox)                              # conv2 out + the block's act out
        if i == 0:
            t.parameters += conv_params(c_in, c_out, [1] * len(kernel))


def tally_stunet(t: Tally, arch: dict, vox: list[int], in_channels: int, num_outputs: int) -> None:
    """Tally build_stunet: residual stages; per decoder resolution the interpolated tensor (saved by the 1x1
    conv), the concatenation (saved by the first block's convs), the residual blocks and the head."""
    feats, kernels = arch["features_per_stage"], arch["kernel_sizes"]
    c_prev = in_channels
    for s, (f, k, n) in enumerate(zip(feats, kernels, arch["blocks_per_stage"])):
        tally_residual_stage(t, c_prev, f, k, n, vox[s])
        c_prev = f
    for d, s in enumerate(range(len(feats) - 2, -1, -1)):
        f = feats[s]
        t.parameters += conv_params(feats[s + 1], f, [1] * len(kernels[s]))
        t.store(feats[s + 1] * vox[s] + 2 * f * vox[s])
        tally_residual_stage(t, 2 * f, f, kernels[s], arch["decoder_blocks_per_stage"][d], vox[s])
        tally_head(t, arch, s, f, vox[s], num_outputs, STUNET_GRAD_BUFFERS)


def paper_architecture(preset: str) -> dict:
    """The paper's STU-Net entry for a preset: 6 stages, 3x3x3 kernels, stride 2 after the first stage."""
    return {"family": f"stunet-{preset}", "spatial_dims": 3, "kernel_sizes": [[3, 3, 3]] * 6,
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5, "norm": "instance", "deep_supervision": True,
            **preset_defaults(preset)(6, 1)}


def preset_family(preset: str) -> NetworkFamily:
    """The registry record of one STU-Net preset."""
    return NetworkFamily(
        name=f"stunet-{preset}", build=build_stunet, stage_defaults=preset_defaults(preset), tally=tally_stunet,
        workspace_bytes=PLAIN_WORKSPACE_BYTES,
        description=f"STU-Net-{preset.upper()} (residual U-Net preset, ~{PAPER_PARAMETERS[preset] / 1e6:.1f}M "
                    "parameters in the paper's 6-stage topology)",
        default_init="pytorch")


PRESET_FAMILIES = tuple(preset_family(p) for p in STUNET_PRESETS)
# "stunet": built like the S preset when an entry names it; the planner replaces it by the largest
# preset that fits the budget at the patch it chose (presets are ordered smallest first).
FAMILY = NetworkFamily(
    name="stunet", build=build_stunet, stage_defaults=preset_defaults("s"), tally=tally_stunet,
    workspace_bytes=PLAIN_WORKSPACE_BYTES,
    description="STU-Net: the largest of the S/B/L/H presets that fits the memory budget",
    presets=tuple(f.name for f in PRESET_FAMILIES), default_init="pytorch")
