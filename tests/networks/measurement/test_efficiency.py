"""FLOP counting and throughput of segkit.networks.measurement.efficiency on tiny networks with hand-computed counts."""

from __future__ import annotations

import math

import torch
from torch import nn

from segkit.networks import build_network
from segkit.networks.measurement.efficiency import count_flops, inference_throughput, parameter_count


def tiny_conv_net() -> nn.Module:
    """conv 3x3x3 (2 -> 4, padding 1), ReLU, conv 1x1x1 (4 -> 3)."""
    return nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 3, 1))


def test_forward_flops_equal_the_hand_count() -> None:
    """Two FLOPs per multiply-add: 2 x out voxels x c_out x c_in x kernel volume per conv (biases not counted)."""
    patch = [6, 8, 10]
    voxels = math.prod(patch)
    expected = 2 * voxels * 4 * 2 * 27 + 2 * voxels * 3 * 4 * 1
    assert count_flops(tiny_conv_net(), 2, patch) == expected


def test_training_flops_count_forward_and_backward() -> None:
    """Backward of the second conv needs input and weight gradients (2x its forward), the first conv only its
    weight gradient (1x, the input needs none): forward + backward = 2 x conv1 + 3 x conv2."""
    patch = [4, 4, 4]
    voxels = math.prod(patch)
    conv1, conv2 = 2 * voxels * 4 * 2 * 27, 2 * voxels * 3 * 4
    counted = count_flops(tiny_conv_net(), 2, patch, training=True)
    assert counted == 2 * conv1 + 3 * conv2 < 3 * (conv1 + conv2)


def test_throughput_and_parameters_of_a_built_network() -> None:
    """A family network: voxels/s from a timed no-grad pass, deep supervision restored afterwards."""
    arch = {"family": "unet", "spatial_dims": 3, "features_per_stage": [4, 8], "kernel_sizes": [[3, 3, 3]] * 2,
            "strides": [[1, 1, 1], [2, 2, 2]], "blocks_per_stage": [1, 1], "decoder_blocks_per_stage": [1],
            "deep_supervision": True}
    torch.manual_seed(0)
    net = build_network(arch, 1, 2)
    result = inference_throughput(net, 1, [8, 8, 8], repeats=1)
    assert result["voxels_per_second"] == 512 / result["seconds_per_patch"]
    assert net.deep_supervision is True and net.training
    assert parameter_count(net) == sum(p.numel() for p in net.parameters())


def test_grouped_convolution_gradients_count_groups() -> None:
    """A depthwise convolution's gradients cost its forward FLOPs each (torch's own backward formula ignores groups)."""
    patch = [4, 4, 4]
    voxels = math.prod(patch)
    net = nn.Sequential(nn.Conv3d(8, 8, 1), nn.Conv3d(8, 8, 3, padding=1, groups=8))
    pointwise, depthwise = 2 * voxels * 8 * 8, 2 * voxels * 8 * 27
    assert count_flops(net, 8, patch) == pointwise + depthwise
    assert count_flops(net, 8, patch, training=True) == 2 * pointwise + 3 * depthwise


def test_reversible_network_training_flops_include_the_recompute() -> None:
    """revmbconv's reversible backward (autograd.grad inside a Function) is counted, recompute included."""
    arch = {"family": "revmbconv", "spatial_dims": 3, "features_per_stage": [8, 16], "kernel_sizes": [[3, 3, 3]] * 2,
            "strides": [[1, 1, 1], [2, 2, 2]], "blocks_per_stage": [2, 2], "decoder_blocks_per_stage": [2],
            "expansion_ratios": [2, 2], "norm": "instance", "deep_supervision": True}
    torch.manual_seed(0)
    reversible = build_network(arch, 1, 2)
    plain = build_network({**arch, "reversible": False}, 1, 2)
    forward = count_flops(reversible, 1, [8, 8, 8])
    assert forward == count_flops(plain, 1, [8, 8, 8])
    assert count_flops(reversible, 1, [8, 8, 8], training=True) > count_flops(plain, 1, [8, 8, 8], training=True)
