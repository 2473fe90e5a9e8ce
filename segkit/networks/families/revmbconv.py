"""RevMBConv U-Net: stages are reversible sequences of MBConv coupling blocks.

Stem, strided downsampling, transposed-conv upsampling, skips and heads are ordinary layers.
Transitions are conv -> norm without activation (a linear bottleneck, as MBConv's projection),
so the tensor entering a reversible stage is not kept by anyone: only the stage output is.
"""

from __future__ import annotations

from torch import nn

from segkit.networks.blocks.layers import ConvNormAct, make_conv, make_head, make_norm, make_upsample, ones
from segkit.networks.blocks.reversible import GRID_BITS, MODES, CouplingBlock, ReversibleSequence
from segkit.networks.families.unet import DecoderStage, UNetSkeleton
from segkit.networks.family import NetworkFamily
from segkit.networks.measurement.tally import Tally, conv_norm_act, conv_params, norm_params, tally_head

# Reversible stages store one tensor however deep they are, so depth is cheap; keep the
# expansion low at full resolution where recomputing a block is the transient peak.
REVMBCONV_BLOCKS = (2, 2, 2, 4, 4, 4, 4, 4)
REVMBCONV_EXPANSION = (1, 2, 2, 4, 4, 4, 4, 4)
# Memory constants fitted to measured CPU peaks (docs/benchmarks/networks.md): gradient buffers alive early
# in backward (units of the finest stage tensor);
REVMBCONV_GRAD_BUFFERS = 2.2
# stream buffers a reversible/checkpointed stage holds while recomputing one block (dy, the
# reconstructed x, dx, the concatenated input gradient), in units of the stage tensor;
REVERSIBLE_STREAM_BUFFERS = 3.0
# hidden-size gradient/scratch buffers alive while backpropagating through one recomputed branch;
RECOMPUTE_EXTRA_HIDDEN = 3.0
# runtime working memory with the depthwise convs and group norms (~23 MiB).
REVMBCONV_WORKSPACE_BYTES = 23 * 2 ** 20


class MBConv(nn.Sequential):
    """Inverted bottleneck (convs without bias: each is followed by a norm).

    1x1 expand (ratio e) -> norm -> act -> depthwise k -> norm -> act -> 1x1 project -> norm.
    """

    def __init__(self, channels: int, expansion: float, kernel: list[int], norm: str):
        dims = len(kernel)
        hidden = max(1, int(round(channels * expansion)))
        super().__init__(
            make_conv(channels, hidden, ones(dims), bias=False), make_norm(norm, hidden, dims), nn.SiLU(),
            make_conv(hidden, hidden, kernel, groups=hidden, bias=False), make_norm(norm, hidden, dims), nn.SiLU(),
            make_conv(hidden, channels, ones(dims), bias=False), make_norm(norm, channels, dims),
        )


def mbconv_sequence(channels: int, blocks: int, expansion: float, kernel: list[int], norm: str,
                    mode: str, grid_bits: int | None = GRID_BITS) -> ReversibleSequence:
    """blocks coupling blocks whose F and G are MBConvs on channels // 2."""
    if channels % 2:
        raise ValueError(f"revmbconv needs an even channel count, got {channels}")
    half = channels // 2
    return ReversibleSequence([CouplingBlock(MBConv(half, expansion, kernel, norm),
                                             MBConv(half, expansion, kernel, norm), grid_bits)
                               for _ in range(blocks)], mode)


def execution_mode(arch: dict) -> str:
    """'checkpoint' when checkpointing is on, else 'reversible' or 'plain'."""
    if arch.get("checkpointing", False):
        return "checkpoint"
    return "reversible" if arch.get("reversible", True) else "plain"


class Reduce(nn.Sequential):
    """Concatenated (upsampled, skip) -> 1x1 conv -> norm, halving the channels."""

    def __init__(self, channels: int, dims: int, norm: str):
        super().__init__(make_conv(2 * channels, channels, ones(dims), bias=False), make_norm(norm, channels, dims))


def revmbconv_norm(norm: str) -> str:
    """Instance norm as GroupNorm(C, C): the same operation, ~3x faster forward on CPU, keeps channels_last_3d."""
    return "channel_group" if norm == "instance" else norm


def build_revmbconv(arch: dict, in_channels: int, num_outputs: int) -> UNetSkeleton:
    """RevMBConv U-Net from an architecture entry (depth, width, expansion per stage)."""
    feats, kernels, strides = arch["features_per_stage"], arch["kernel_sizes"], arch["strides"]
    expansion, norm, mode = arch["expansion_ratios"], revmbconv_norm(arch.get("norm", "instance")), execution_mode(arch)
    bits = arch.get("coupling_grid_bits", GRID_BITS)
    dims = len(kernels[0])
    encoder, c_prev = [], in_channels
    for s, (f, k, st, n) in enumerate(zip(feats, kernels, strides, arch["blocks_per_stage"])):
        transition = ConvNormAct(c_prev, f, k, st, norm, act=False, bias=False)
        encoder.append(nn.Sequential(transition, mbconv_sequence(f, n, expansion[s], k, norm, mode, bits)))
        c_prev = f
    decoder, heads = [], []
    for d, s in enumerate(range(len(feats) - 2, -1, -1)):
        blocks = nn.Sequential(Reduce(feats[s], dims, norm),
                               mbconv_sequence(feats[s], arch["decoder_blocks_per_stage"][d], expansion[s],
                                               kernels[s], norm, mode, bits))
        decoder.append(DecoderStage(make_upsample(feats[s + 1], feats[s], strides[s + 1], bias=False), blocks))
        heads.append(make_head(feats[s], num_outputs, dims))
    return UNetSkeleton(encoder, decoder, heads, arch.get("deep_supervision", True))


def set_mode(network: nn.Module, mode: str) -> None:
    """Switch every reversible sequence of a built network to another mode (same parameters)."""
    for module in network.modules():
        if isinstance(module, ReversibleSequence):
            module.mode = mode


def with_mode(arch: dict, mode: str) -> dict:
    """The entry running in mode (reversible, plain or checkpoint): same network, same state_dict keys."""
    if mode not in MODES:
        raise ValueError(f"unknown revmbconv mode {mode!r}; choose from {MODES}")
    return {**arch, "reversible": mode != "plain", "checkpointing": mode == "checkpoint"}


def revmbconv_stage_defaults(stages: int, depth_multiplier: int) -> dict:
    """Two to four coupling blocks per encoder stage, one per decoder resolution, low expansion at full resolution."""
    return {"blocks_per_stage": [b * depth_multiplier for b in REVMBCONV_BLOCKS[:stages]],
            "decoder_blocks_per_stage": [1 * depth_multiplier] * (stages - 1),
            "expansion_ratios": list(REVMBCONV_EXPANSION[:stages]), "reversible": True, "checkpointing": False}


def tally_mbconv_stage(t: Tally, channels: int, blocks: int, expansion: float, kernel: list[int],
                       vox: int, mode: str) -> None:
    """Tally MBConv coupling blocks (non-in-place SiLU: 6 hidden tensors per branch) in one mode."""
    half = channels // 2
    hidden = max(1, int(round(half * expansion)))
    unit = [1] * len(kernel)
    branch = (conv_params(half, hidden, unit, bias=False) + norm_params(hidden)
              + conv_params(hidden, hidden, kernel, hidden, bias=False) + norm_params(hidden)
              + conv_params(hidden, half, unit, bias=False) + norm_params(half))
    t.parameters += 2 * branch * blocks
    if blocks == 0:
        return
    if mode == "plain":
        t.store((blocks * (12 * hidden + 4 * half) + channels) * vox)
    elif mode == "checkpoint":
        # the recompute rebuilds the whole block's graph (both branches and both outputs)
        t.store((blocks + 1) * channels * vox)
        t.peak((12 * hidden + 4 * half + RECOMPUTE_EXTRA_HIDDEN * hidden) * vox
               + REVERSIBLE_STREAM_BUFFERS * channels * vox)
    else:
        t.store(channels * vox)
        t.peak((6 * hidden + 2 * half + RECOMPUTE_EXTRA_HIDDEN * hidden) * vox
               + REVERSIBLE_STREAM_BUFFERS * channels * vox)


def tally_revmbconv(t: Tally, arch: dict, vox: list[int], in_channels: int, num_outputs: int) -> None:
    """Tally build_revmbconv: conv -> norm transitions (1x), MBConv stages in the entry's mode, reduce + heads."""
    feats, kernels, strides = arch["features_per_stage"], arch["kernel_sizes"], arch["strides"]
    expansion, mode = arch["expansion_ratios"], execution_mode(arch)
    c_prev = in_channels
    for s, (f, k, n) in enumerate(zip(feats, kernels, arch["blocks_per_stage"])):
        conv_norm_act(t, c_prev, f, k, vox[s], act=False, bias=False)
        tally_mbconv_stage(t, f, n, expansion[s], k, vox[s], mode)
        c_prev = f
    for d, s in enumerate(range(len(feats) - 2, -1, -1)):
        f, k = feats[s], kernels[s]
        t.parameters += conv_params(feats[s + 1], f, strides[s + 1], bias=False)
        t.store(2 * f * vox[s])
        conv_norm_act(t, 2 * f, f, [1] * len(k), vox[s], act=False, bias=False)
        tally_mbconv_stage(t, f, arch["decoder_blocks_per_stage"][d], expansion[s], k, vox[s], mode)
        tally_head(t, arch, s, f, vox[s], num_outputs, REVMBCONV_GRAD_BUFFERS)


# default_init: PyTorch's (not measured; docs/networks.md, "Weight initialisation").
FAMILY = NetworkFamily(
    name="revmbconv", build=build_revmbconv, stage_defaults=revmbconv_stage_defaults, tally=tally_revmbconv,
    workspace_bytes=REVMBCONV_WORKSPACE_BYTES,
    description="reversible MBConv U-Net (memory for depth and patch size; GPU budgets)",
    stage_keys=("expansion_ratios",), execution_modes=MODES, compared_modes=("reversible", "plain"),
    with_mode=with_mode, execution_mode=execution_mode, grows=True, default_init="pytorch")
