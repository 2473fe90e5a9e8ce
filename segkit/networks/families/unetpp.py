"""UNet++ (Zhou et al. 2018/2019, "UNet++: Redesigning Skip Connections ..."): family "unetpp".

Nodes X^{i,j}: i the resolution (0 = full, the encoder's stages), j the column. Column 0 is the
encoder (nnU-Net's conv stacks, strided first conv). Every other node is

    X^{i,j} = convs(cat(X^{i,0}, ..., X^{i,j-1}, up(X^{i+1,j-1})))     for i + j <= L,

L = stages - 1, `up` a transposed conv (kernel = stride, as in segkit's U-Net) and `convs`
`decoder_blocks_per_stage` ConvNormAct layers (the entry's one value per decoder resolution,
coarsest first, so resolution i uses entry L-1-i). A 1x1 head sits on every full-resolution
node X^{0,1..L}.

Deep supervision (docs/networks.md, "UNet++"): forward returns the L nested full-resolution logits,
X^{0,L} first, X^{0,1} last; all are at the patch resolution, so the loss weights them equally
(segkit.training.losses.deep_supervision_weights weights outputs by resolution).

Pruning: with `prune_level` P (arch key, or the module attribute) the single inference output is
X^{0,P}, and forward computes only the nodes i + j <= P (encoder stages 0..P): the sub-network
UNet++ L^P of the paper, faster and bit-identical to the full network's X^{0,P} head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from segkit.networks.blocks.layers import layer_style, make_head, make_upsample
from segkit.networks.families.unet import PLAIN_WORKSPACE_BYTES, conv_stack
from segkit.networks.family import NetworkFamily
from segkit.networks.measurement.tally import LOSS_TENSORS_PER_OUTPUT, Tally, conv_norm_act, conv_params

# Gradient buffers alive at the peak early in backward, in units of the full-resolution stage
# tensor: the last node's backward through its (L + 1) x C concatenation plus the heads' gradients;
# fitted to measured CPU peaks (docs/benchmarks.md, "UNet++ and STU-Net memory").
UNETPP_GRAD_BUFFERS_BASE = 3.4


class NestedNode(nn.Module):
    """X^{i,j}: upsample X^{i+1,j-1}, concatenate after X^{i,0..j-1}, then the convs."""

    def __init__(self, upsample: nn.Module, blocks: nn.Module):
        super().__init__()
        self.upsample = upsample
        self.blocks = blocks

    def forward(self, below: torch.Tensor, same_row: list[torch.Tensor]) -> torch.Tensor:
        """One nested node from the node below-left and every earlier node of its row."""
        return self.blocks(torch.cat([*same_row, self.upsample(below)], dim=1))


class UNetPlusPlus(nn.Module):
    """Encoder (column 0), nested columns 1..L, a head per full-resolution node X^{0,j}."""

    def __init__(self, encoder: Sequence[nn.Module], columns: Sequence[Sequence[NestedNode]], heads: Sequence[nn.Module],
                 deep_supervision: bool = True, prune_level: int | None = None):
        super().__init__()
        self.encoder = nn.ModuleList(encoder)
        # columns[j - 1][i] is X^{i,j}
        self.columns = nn.ModuleList(nn.ModuleList(column) for column in columns)
        # heads[j - 1] reads X^{0,j}
        self.heads = nn.ModuleList(heads)
        self.deep_supervision = deep_supervision
        self.prune_level = prune_level

    @property
    def depth(self) -> int:
        """L: the number of nested full-resolution outputs (stages - 1)."""
        return len(self.heads)

    def output_level(self) -> int:
        """The column whose full-resolution node is the single (inference) output."""
        level = self.depth if self.prune_level is None else int(self.prune_level)
        if not 1 <= level <= self.depth:
            raise ValueError(f"prune_level must be between 1 and {self.depth}, got {self.prune_level}")
        return level

    def nodes(self, x: torch.Tensor, level: int) -> list[list[torch.Tensor]]:
        """rows[i][j] = X^{i,j} for every i + j <= level (only what X^{0,level} needs)."""
        rows: list[list[torch.Tensor]] = []
        for stage in self.encoder[:level + 1]:
            x = stage(x)
            rows.append([x])
        for j in range(1, level + 1):
            column = self.columns[j - 1]
            assert isinstance(column, nn.ModuleList)
            for i in range(level + 1 - j):
                rows[i].append(column[i](rows[i + 1][j - 1], rows[i][:j]))
        return rows

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Deep supervision: the L nested logits X^{0,L}, ..., X^{0,1}; else the logits of X^{0,prune level}."""
        if self.deep_supervision:
            top = self.nodes(x, self.depth)[0]
            return [self.heads[j - 1](top[j]) for j in range(self.depth, 0, -1)]
        level = self.output_level()
        return self.heads[level - 1](self.nodes(x, level)[0][level])


def decoder_blocks_at(arch: dict, resolution: int) -> int:
    """Convs per nested node at a resolution (decoder_blocks_per_stage is coarsest first)."""
    stages = len(arch["features_per_stage"])
    return max(1, int(arch["decoder_blocks_per_stage"][stages - 2 - resolution]))


def build_unetpp(arch: dict, in_channels: int, num_outputs: int) -> UNetPlusPlus:
    """UNet++ from an entry: nnU-Net encoder stacks, nested nodes with transposed-conv upsampling, L heads."""
    feats, kernels, strides = arch["features_per_stage"], arch["kernel_sizes"], arch["strides"]
    style, dims, depth = layer_style(arch), len(kernels[0]), len(feats) - 1
    if depth < 1:
        raise ValueError("unetpp needs at least two stages")
    encoder, c_prev = [], in_channels
    for f, k, st, n in zip(feats, kernels, strides, arch["blocks_per_stage"]):
        encoder.append(conv_stack(c_prev, f, k, st, n, style))
        c_prev = f
    columns = []
    for j in range(1, depth + 1):
        columns.append([NestedNode(make_upsample(feats[i + 1], feats[i], strides[i + 1], bias=style.conv_bias),
                                   conv_stack((j + 1) * feats[i], feats[i], kernels[i], [1] * dims,
                                              decoder_blocks_at(arch, i), style))
                        for i in range(depth + 1 - j)])
    heads = [make_head(feats[0], num_outputs, dims) for _ in range(depth)]
    return UNetPlusPlus(encoder, columns, heads, arch.get("deep_supervision", True), arch.get("prune_level"))


def unetpp_stage_defaults(stages: int, depth_multiplier: int) -> dict:
    """Two convs per encoder stage and per nested node, as nnU-Net's U-Net (times the depth multiplier)."""
    return {"blocks_per_stage": [2 * depth_multiplier] * stages,
            "decoder_blocks_per_stage": [2 * depth_multiplier] * (stages - 1)}


def tally_unetpp(t: Tally, arch: dict, vox: list[int], in_channels: int, num_outputs: int) -> None:
    """Tally build_unetpp: encoder stacks, per node the upsampling (freed), the saved concatenation, its convs;
    L heads, and the loss tensors of every supervised full-resolution output."""
    feats, kernels, strides = arch["features_per_stage"], arch["kernel_sizes"], arch["strides"]
    bias, depth = bool(arch.get("conv_bias", True)), len(feats) - 1
    c_prev = in_channels
    for s, (f, k, n) in enumerate(zip(feats, kernels, arch["blocks_per_stage"])):
        for i in range(max(1, n)):
            conv_norm_act(t, c_prev if i == 0 else f, f, k, vox[s], bias=bias)
        c_prev = f
    for j in range(1, depth + 1):
        for i in range(depth + 1 - j):
            f = feats[i]
            t.parameters += conv_params(feats[i + 1], f, strides[i + 1], bias=bias)
            t.store((j + 1) * f * vox[i])      # the concatenation, saved by the node's first conv
            for b in range(decoder_blocks_at(arch, i)):
                conv_norm_act(t, (j + 1) * f if b == 0 else f, f, kernels[i], vox[i], bias=bias)
    t.parameters += depth * conv_params(feats[0], num_outputs, [1] * len(kernels[0]))
    supervised = depth if arch.get("deep_supervision", True) else 1
    t.store(LOSS_TENSORS_PER_OUTPUT * num_outputs * vox[0] * supervised)
    t.peak((UNETPP_GRAD_BUFFERS_BASE + depth) * feats[0] * vox[0])


FAMILY = NetworkFamily(
    name="unetpp", build=build_unetpp, stage_defaults=unetpp_stage_defaults, tally=tally_unetpp,
    workspace_bytes=PLAIN_WORKSPACE_BYTES,
    description="UNet++ (nested dense skips, deep supervision on the nested outputs, prunable)",
    default_init="pytorch")
