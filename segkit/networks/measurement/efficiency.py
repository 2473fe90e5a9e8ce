"""What a network costs per patch: parameters, FLOPs (torch's FLOP counter) and inference throughput.

FLOPs follow torch's FLOP counter (`torch.utils.flop_counter.flop_registry`, the formulas
`FlopCounterMode` uses): two per multiply-add of the convolutions, (batched) matrix products and
attention kernels, nothing for norms, activations, additions or bias terms (those are
memory-bound and a small share). The counting is a plain dispatch mode rather than
`FlopCounterMode` itself, whose per-module backward hooks fail inside the reversible stages'
`autograd.grad` (revmbconv) -- and which would not count their recompute. The training count is
the forward plus the backward of one step as the counter sees it (a reversible stage's recompute
included); it is reported beside the forward count rather than assumed to be 3x (the first layer
needs no gradient of its input, so it is less; a reversible network recomputes, so it is more).
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


class FlopCount(TorchDispatchMode):
    """Sums torch's FLOP formulas over every op dispatched while active (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        """Run the op and add its FLOPs when torch has a formula for it."""
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if packet is torch.ops.aten.convolution_backward:
            self.total += _convolution_backward_flops(args)
        elif packet in flop_registry:
            self.total += int(flop_registry[packet](*args, **kwargs, out_val=out))
        return out


def _convolution_backward_flops(args: tuple) -> int:
    """Input and weight gradients each cost the forward convolution's FLOPs (groups included).

    torch's own formula leaves out `groups` in the backward and counts a depthwise convolution's
    gradients C times over (16x for 16 channels, measured), so segkit counts them itself.
    """
    grad_output, x, weight, _bias, stride, padding, dilation, transposed, output_padding, groups, mask = args[:11]
    forward = flop_registry[torch.ops.aten.convolution](x, weight, None, stride, padding, dilation, transposed,
                                                          output_padding, groups, out_val=grad_output)
    return int(forward) * (int(bool(mask[0])) + int(bool(mask[1])))


def parameter_count(network: nn.Module) -> int:
    """Trainable parameters of a built network."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


def _outputs(result: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
    """A network's output(s) as a list."""
    return list(result) if isinstance(result, (list, tuple)) else [result]


def count_flops(network: nn.Module, in_channels: int, patch_size: list[int], training: bool = False) -> int:
    """FLOPs of one batch-1 patch: the forward pass, or with training=True the forward and the backward."""
    x = torch.zeros(1, in_channels, *patch_size)
    was_training = network.training
    network.train(training)
    try:
        with FlopCount() as counter:
            if training:
                torch.stack([o.float().mean() for o in _outputs(network(x))]).sum().backward()
            else:
                with torch.no_grad():
                    network(x)
    finally:
        network.train(was_training)
        network.zero_grad(set_to_none=True)
    return counter.total


def inference_throughput(network: nn.Module, in_channels: int, patch_size: list[int], repeats: int = 3) -> dict:
    """Voxels per second of no-grad forward passes on one batch-1 patch (the fastest of repeats, after a warm-up)."""
    x = torch.randn(1, in_channels, *patch_size)
    was_training, deep = network.training, getattr(network, "deep_supervision", None)
    network.eval()
    if deep is not None:
        network.deep_supervision = False   # type: ignore[assignment]  # a plain flag, as inference sets it
    times = []
    try:
        with torch.no_grad():
            network(x)
            for _ in range(max(1, repeats)):
                start = time.perf_counter()
                network(x)
                times.append(time.perf_counter() - start)
    finally:
        network.train(was_training)
        if deep is not None:
            network.deep_supervision = deep
    seconds = min(times)
    return {"seconds_per_patch": seconds, "voxels_per_second": math.prod(patch_size) / seconds}
