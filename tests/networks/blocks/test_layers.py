"""Shared layers: 'same' padding, norms by name, the layer style an entry asks for, heads and upsampling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segkit.networks.blocks.layers import (
    ConvNormAct,
    cat_skip,
    instance_norms_to_group_norms,
    layer_style,
    make_conv,
    make_head,
    make_norm,
    make_upsample,
)


@pytest.mark.parametrize("kernel", [[3, 3, 3], [1, 3, 3], [3, 5]])
def test_conv_keeps_the_size_at_stride_one_and_divides_it_by_the_stride(kernel) -> None:
    x = torch.zeros(1, 2, *[8] * len(kernel))
    assert make_conv(2, 4, kernel)(x).shape == (1, 4, *[8] * len(kernel))
    assert make_conv(2, 4, kernel, [2] * len(kernel))(x).shape == (1, 4, *[4] * len(kernel))


def test_norms_by_name_and_unknown_names_refused() -> None:
    assert isinstance(make_norm("instance", 8, 3), nn.InstanceNorm3d)
    assert make_norm("channel_group", 8, 3).num_groups == 8
    assert make_norm("group", 16, 3).num_groups == 8 and make_norm("group:4", 16, 2).num_groups == 4
    with pytest.raises(ValueError, match="unknown norm 'batch'"):
        make_norm("batch", 8, 3)


def test_layer_style_reads_the_entry_and_conv_norm_act_follows_it() -> None:
    style = layer_style({"conv_bias": False, "norm_eps": 1e-3, "negative_slope": 0.0})
    block = ConvNormAct(2, 4, [3, 3], style=style)
    assert block[0].bias is None and block[1].eps == 1e-3 and block[2].negative_slope == 0.0
    assert len(ConvNormAct(2, 4, [3, 3], act=False)) == 2
    assert layer_style({}) == layer_style({"norm": "instance", "conv_bias": True})


def test_head_upsample_and_skip_concatenation_shapes() -> None:
    x = torch.zeros(1, 8, 4, 6, 6)
    up = make_upsample(8, 4, [1, 2, 2])(x)
    assert up.shape == (1, 4, 4, 12, 12)
    joined = cat_skip(up, torch.ones(1, 4, 4, 12, 12))
    assert joined.shape == (1, 8, 4, 12, 12) and joined[:, 4:].eq(1).all()
    assert make_head(8, 3, 3)(x).shape == (1, 3, 4, 6, 6)


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
