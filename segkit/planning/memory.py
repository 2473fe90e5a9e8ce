"""Bytes-level model of one training step's peak memory for an architecture entry.

The model mirrors the layers `segkit.networks.build_network` creates and counts, per layer
kind, the tensors autograd keeps for backward (see docs/networks.md, "Memory model"):

- ConvNormAct (conv -> norm -> in-place LeakyReLU): conv output (saved by the norm) and the
  activation output (saved by the in-place activation and the next conv): 2x the output.
- conv -> norm without activation (revmbconv stem/transitions): 1x (the norm's input).
- residual block (resenc): conv1 out, act1 out, conv2 out, sum/act out: 4x, plus the
  strided skip path (pooled input, projection output).
- decoder: the concatenation (2x the stage tensor) saved by the first conv; the transposed
  conv output is freed after the concatenation.
- MBConv coupling block, plain autograd: per branch 4 hidden tensors (e x half) and the
  projection output, plus the two stream outputs: (2 + 4e) x the stage tensor.
- per-block checkpointing: each block's input (1x); reversible stage: only its output (1x).
- heads: logits plus the loss's intermediate tensors at every supervised resolution.

total = parameters + optimizer state + max(activations + transient, gradients + workspace):
gradients appear while backward walks from the heads, so few exist at the activation peak.
The transient is the largest short-lived working set on top of the stored activations:
gradient buffers at the largest resolution at the start of backward, or the recompute of
one reversible block (about (1 + 6e)/2 x the stage tensor plus the stream buffers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Float tensors the loss keeps per output channel and supervised voxel (softmax, log-softmax,
# one-hot target); exact, see tests/test_networks_memory.py.
LOSS_TENSORS_PER_OUTPUT = 3.0
# The transient constants below are fitted to measured CPU peaks (two patch sizes per family,
# the other configurations held out; docs/benchmarks.md):
# gradient buffers alive at the peak early in backward, in units of the finest stage tensor
# (the plain decoder backpropagates through a 3x3 conv on the 2C concatenation);
BACKWARD_GRAD_BUFFERS = {"unet": 3.4, "resenc": 3.4, "revmbconv": 2.2}
# stream buffers a reversible/checkpointed stage holds while recomputing one block (dy, the
# reconstructed x, dx, the concatenated input gradient), in units of the stage tensor;
REVERSIBLE_STREAM_BUFFERS = 3.0
# hidden-size gradient/scratch buffers alive while backpropagating through one recomputed branch;
RECOMPUTE_EXTRA_HIDDEN = 3.0
# runtime working memory that does not scale with patch, depth or width (oneDNN/cuDNN scratch
# and kernels, allocator slack): ~10 MiB, ~23 MiB with revmbconv's depthwise convs/group norms.
WORKSPACE_BYTES = {"unet": 10 * 2 ** 20, "resenc": 10 * 2 ** 20, "revmbconv": 23 * 2 ** 20}
OPTIMIZER_STATE_PER_PARAM = {"sgd": 1, "adam": 2, "adamw": 2, "none": 0}


@dataclass
class Tally:
    """Per-sample element counts: parameters, stored activations, largest transient."""

    parameters: int = 0
    stored: float = 0.0
    transient: float = 0.0

    def store(self, elements: float) -> None:
        """Add elements autograd keeps until backward."""
        self.stored += elements

    def peak(self, elements: float) -> None:
        """Record a transient working set; only the largest one counts."""
        self.transient = max(self.transient, elements)


def conv_params(c_in: int, c_out: int, kernel: list[int], groups: int = 1, bias: bool = True) -> int:
    """Weights (and bias) of a convolution."""
    return c_in // groups * c_out * math.prod(kernel) + (c_out if bias else 0)


def norm_params(channels: int) -> int:
    """Affine weight and bias of an instance/group norm."""
    return 2 * channels


def stage_voxels(arch: dict, patch_size: list[int]) -> list[int]:
    """Voxels of the feature map at each stage for a patch."""
    shape = list(patch_size)
    voxels = []
    for stride in arch["strides"]:
        shape = [max(1, size // s) for size, s in zip(shape, stride)]
        voxels.append(math.prod(shape))
    return voxels


def _conv_norm_act(t: Tally, c_in: int, c_out: int, kernel: list[int], vox: int, act: bool = True,
                   bias: bool = True) -> None:
    """Tally conv -> norm (-> in-place LeakyReLU): conv output, and the activation output."""
    t.parameters += conv_params(c_in, c_out, kernel, bias=bias) + norm_params(c_out)
    t.store(c_out * vox * (2 if act else 1))


def _residual_block(t: Tally, c_in: int, c_out: int, kernel: list[int], stride: list[int], vox: int,
                    bias: bool = True, skip_bias: bool = True) -> None:
    """Tally an nnU-Net BasicBlockD: conv1 out, act1 out, conv2 out, sum/act out; the skip projection."""
    t.parameters += (conv_params(c_in, c_out, kernel, bias=bias) + conv_params(c_out, c_out, kernel, bias=bias)
                     + 2 * norm_params(c_out))
    t.store(4 * c_out * vox)
    if c_in != c_out:
        t.parameters += conv_params(c_in, c_out, [1] * len(kernel), bias=skip_bias) + norm_params(c_out)
        t.store(c_out * vox + (c_in * vox if max(stride) > 1 else 0))


def _mbconv_stage(t: Tally, channels: int, blocks: int, expansion: float, kernel: list[int],
                  vox: int, mode: str) -> None:
    """Tally MBConv coupling blocks (non-in-place SiLU: 6 hidden tensors per branch) in one mode."""
    half = channels // 2
    hidden = max(1, int(round(half * expansion)))
    ones = [1] * len(kernel)
    branch = (conv_params(half, hidden, ones, bias=False) + norm_params(hidden)
              + conv_params(hidden, hidden, kernel, hidden, bias=False) + norm_params(hidden)
              + conv_params(hidden, half, ones, bias=False) + norm_params(half))
    t.parameters += 2 * branch * blocks
    if blocks == 0:
        return
    if mode == "plain":
        t.store((blocks * (12 * hidden + 4 * half) + channels) * vox)
    elif mode == "checkpoint":
        # the recompute rebuilds the whole block's graph (both branches and both outputs)
        t.store((blocks + 1) * channels * vox)
        t.peak((12 * hidden + 4 * half + RECOMPUTE_EXTRA_HIDDEN * hidden) * vox + REVERSIBLE_STREAM_BUFFERS * channels * vox)
    else:
        t.store(channels * vox)
        t.peak((6 * hidden + 2 * half + RECOMPUTE_EXTRA_HIDDEN * hidden) * vox + REVERSIBLE_STREAM_BUFFERS * channels * vox)


def _mode(arch: dict) -> str:
    """Execution mode of a revmbconv entry: reversible, checkpoint or plain."""
    if arch.get("checkpointing"):
        return "checkpoint"
    return "reversible" if arch.get("reversible", True) else "plain"


def _encoder(t: Tally, arch: dict, vox: list[int], in_channels: int) -> None:
    """Tally the encoder of any family."""
    family, feats, kernels = arch["family"], arch["features_per_stage"], arch["kernel_sizes"]
    blocks, strides = arch["blocks_per_stage"], arch["strides"]
    c_prev = in_channels
    bias, skip_bias = bool(arch.get("conv_bias", True)), bool(arch.get("skip_bias", True))
    for s, (f, k, n) in enumerate(zip(feats, kernels, blocks)):
        if family == "unet":
            for i in range(max(1, n)):
                _conv_norm_act(t, c_prev if i == 0 else f, f, k, vox[s], bias=bias)
        elif family == "resenc":
            if s == 0:
                _conv_norm_act(t, in_channels, f, k, vox[0], bias=bias)
                c_prev = f
            for i in range(max(1, n)):
                _residual_block(t, c_prev if i == 0 else f, f, k, strides[s] if i == 0 else [1] * len(k), vox[s],
                                bias, skip_bias)
        else:
            _conv_norm_act(t, c_prev, f, k, vox[s], act=False, bias=False)
            _mbconv_stage(t, f, n, arch["expansion_ratios"][s], k, vox[s], _mode(arch))
        c_prev = f


def _decoder(t: Tally, arch: dict, vox: list[int], num_outputs: int) -> None:
    """Tally the decoder (concat saved by the first conv) and the heads with the loss's tensors."""
    family, feats, kernels, strides = arch["family"], arch["features_per_stage"], arch["kernel_sizes"], arch["strides"]
    dec_blocks = arch["decoder_blocks_per_stage"]
    rev = family == "revmbconv"
    bias = bool(arch.get("conv_bias", True)) and not rev
    for d, s in enumerate(range(len(feats) - 2, -1, -1)):
        f, k, n = feats[s], kernels[s], dec_blocks[d]
        t.parameters += conv_params(feats[s + 1], f, strides[s + 1], bias=bias)
        t.store(2 * f * vox[s])
        if rev:
            _conv_norm_act(t, 2 * f, f, [1] * len(k), vox[s], act=False, bias=False)
            _mbconv_stage(t, f, n, arch["expansion_ratios"][s], k, vox[s], _mode(arch))
        else:
            for i in range(max(1, n)):
                _conv_norm_act(t, 2 * f if i == 0 else f, f, k, vox[s], bias=bias)
        t.parameters += conv_params(f, num_outputs, [1] * len(k))
        if arch.get("deep_supervision", True) or s == 0:
            t.store(LOSS_TENSORS_PER_OUTPUT * num_outputs * vox[s])
        t.peak(BACKWARD_GRAD_BUFFERS[family] * f * vox[s])


def count_parameters(arch: dict, in_channels: int, num_outputs: int) -> int:
    """Number of trainable parameters of the network build_network makes from arch."""
    t = Tally()
    vox = [1] * len(arch["strides"])
    _encoder(t, arch, vox, in_channels)
    _decoder(t, arch, vox, num_outputs)
    return t.parameters


def estimate_peak_bytes(arch: dict, patch_size: list[int], batch_size: int, in_channels: int, num_outputs: int,
                        dtype_bytes: int = 4, optimizer: str = "sgd") -> dict:
    """Predicted peak bytes of one training step, with its breakdown."""
    t = Tally()
    vox = stage_voxels(arch, patch_size)
    _encoder(t, arch, vox, in_channels)
    _decoder(t, arch, vox, num_outputs)
    param_bytes = t.parameters * dtype_bytes
    opt_bytes = OPTIMIZER_STATE_PER_PARAM.get(optimizer.lower(), 1) * param_bytes
    activations = int(t.stored * batch_size * dtype_bytes)
    transient = int(t.transient * batch_size * dtype_bytes) + WORKSPACE_BYTES[arch["family"]]
    result = {"parameters": param_bytes, "gradients": param_bytes, "optimizer": opt_bytes,
              "activations": activations, "transient": transient}
    # Gradients are allocated as backward walks from the heads (zero_grad sets them to None), so at
    # the activation peak early in backward few exist; they dominate only when weights outweigh activations.
    result["total"] = param_bytes + opt_bytes + max(activations + transient, param_bytes + WORKSPACE_BYTES[arch["family"]])
    result["parameter_count"] = t.parameters
    return result


def tradeoff_table(entry: dict, budget_bytes: int, in_channels: int, num_outputs: int) -> str:
    """Printable 'for the budget: largest patch, deepest, widest, reversible vs plain' for a plans configuration."""
    from segkit.planning.memory_search import format_tradeoff_table, tradeoff_rows

    rows = tradeoff_rows(int(budget_bytes), entry["architecture"], list(entry.get("median_shape") or entry["patch_size"]),
                         list(entry["patch_size"]), int(entry.get("batch_size", 2)), in_channels, num_outputs)
    return format_tradeoff_table(rows)
