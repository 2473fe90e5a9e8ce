"""Counting a network's memory layer by layer: the primitives each family's memory tally uses.

A family's tally (beside its builder, e.g. `segkit.networks.families.unet.tally_unet`) walks the layers
its builder creates and adds, per sample, the parameters and the elements autograd keeps for
backward; `segkit.planning.memory` turns the tally into bytes (docs/networks.md, "Memory model").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Float tensors the loss keeps per output channel and supervised voxel (softmax, log-softmax,
# one-hot target); exact, see tests/planning/test_memory.py.
LOSS_TENSORS_PER_OUTPUT = 3.0


@dataclass
class Tally:
    """Per-sample element counts: parameters, stored activations, largest transient (+ fixed bytes)."""

    parameters: int = 0
    stored: float = 0.0
    transient: float = 0.0
    # bytes that do not scale with the batch: the measured constant of a calibrated family (swinunetr)
    fixed_bytes: float = 0.0

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


def conv_norm_act(t: Tally, c_in: int, c_out: int, kernel: list[int], vox: int, act: bool = True,
                  bias: bool = True) -> None:
    """Tally conv -> norm (-> in-place LeakyReLU): conv output, and the activation output."""
    t.parameters += conv_params(c_in, c_out, kernel, bias=bias) + norm_params(c_out)
    t.store(c_out * vox * (2 if act else 1))


def tally_head(t: Tally, arch: dict, stage: int, channels: int, vox: int, num_outputs: int,
         backward_grad_buffers: float) -> None:
    """Tally a decoder resolution's 1x1 head, the loss's tensors when supervised, and backward's first buffers.

    backward_grad_buffers: the family's gradient buffers alive at the peak early in backward, in
    units of the resolution's stage tensor (fitted to measured peaks, docs/benchmarks/networks.md).
    """
    t.parameters += conv_params(channels, num_outputs, [1] * len(arch["kernel_sizes"][stage]))
    if arch.get("deep_supervision", True) or stage == 0:
        t.store(LOSS_TENSORS_PER_OUTPUT * num_outputs * vox)
    t.peak(backward_grad_buffers * channels * vox)
