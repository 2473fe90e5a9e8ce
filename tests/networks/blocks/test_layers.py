"""Shared layers: instance norms rewritten as the equal GroupNorm(C, C)."""

from __future__ import annotations

import torch
from torch import nn

from segkit.networks.blocks.layers import instance_norms_to_group_norms


def two_norm_network() -> nn.Sequential:
    """A conv, an affine instance norm (trained-looking parameters) and a plain (non-affine) one."""
    torch.manual_seed(0)
    affine = nn.InstanceNorm3d(4, affine=True)
    with torch.no_grad():
        affine.weight.uniform_(0.5, 1.5)
        affine.bias.uniform_(-0.5, 0.5)
    return nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), affine, nn.LeakyReLU(), nn.Sequential(nn.InstanceNorm3d(4)))


def test_group_norms_compute_what_the_instance_norms_did():
    network = two_norm_network().eval()
    x = torch.randn(2, 2, 6, 8, 8)
    with torch.no_grad():
        expected = network(x)
    assert instance_norms_to_group_norms(network) == 1          # affine only (the torch backend's rewrite)
    assert isinstance(network[1], nn.GroupNorm) and isinstance(network[3][0], nn.InstanceNorm3d)
    assert instance_norms_to_group_norms(network, affine_only=False) == 1   # the plain one too (ONNX export)
    assert isinstance(network[3][0], nn.GroupNorm) and not network[3][0].affine
    with torch.no_grad():
        torch.testing.assert_close(network(x), expected, atol=1e-5, rtol=1e-5)
