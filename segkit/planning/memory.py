"""Bytes-level model of one training step's peak memory for an architecture entry.

Each family's memory tally (beside its builder, read through `segkit.networks.registry`)
mirrors the layers the builder creates and counts, per layer kind, the tensors autograd keeps
for backward (see docs/networks.md, "Memory model"):

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
one reversible block (about (1 + 6e)/2 x the stage tensor plus the stream buffers). The
family's workspace (kernels' scratch, allocator slack) is added to it.
"""

from __future__ import annotations

import math

from segkit.networks.measurement.tally import Tally
from segkit.networks.registry import family_of

OPTIMIZER_STATE_PER_PARAM = {"sgd": 1, "adam": 2, "adamw": 2, "none": 0}


def stage_voxels(arch: dict, patch_size: list[int]) -> list[int]:
    """Voxels of the feature map at each stage for a patch."""
    shape = list(patch_size)
    voxels = []
    for stride in arch["strides"]:
        shape = [max(1, size // s) for size, s in zip(shape, stride)]
        voxels.append(math.prod(shape))
    return voxels


def tally_network(arch: dict, vox: list[int], in_channels: int, num_outputs: int) -> Tally:
    """The family's per-sample tally of arch with vox voxels per stage."""
    t = Tally()
    family_of(arch).tally(t, arch, vox, in_channels, num_outputs)
    return t


def count_parameters(arch: dict, in_channels: int, num_outputs: int) -> int:
    """Number of trainable parameters of the network build_network makes from arch."""
    return tally_network(arch, [1] * len(arch["strides"]), in_channels, num_outputs).parameters


def estimate_peak_bytes(arch: dict, patch_size: list[int], batch_size: int, in_channels: int, num_outputs: int,
                        dtype_bytes: int = 4, optimizer: str = "sgd") -> dict:
    """Predicted peak bytes of one training step, with its breakdown."""
    t = tally_network(arch, stage_voxels(arch, patch_size), in_channels, num_outputs)
    workspace = family_of(arch).workspace_bytes
    param_bytes = t.parameters * dtype_bytes
    opt_bytes = OPTIMIZER_STATE_PER_PARAM.get(optimizer.lower(), 1) * param_bytes
    activations = int(t.stored * batch_size * dtype_bytes)
    transient = int(t.transient * batch_size * dtype_bytes) + workspace + int(t.fixed_bytes)
    result = {"parameters": param_bytes, "gradients": param_bytes, "optimizer": opt_bytes,
              "activations": activations, "transient": transient}
    # Gradients are allocated as backward walks from the heads (zero_grad sets them to None), so at
    # the activation peak early in backward few exist; they dominate only when weights outweigh activations.
    result["total"] = param_bytes + opt_bytes + max(activations + transient, param_bytes + workspace)
    result["parameter_count"] = t.parameters
    return result
