"""nnU-Net's plain U-Net and the skeleton every family shares (segkit.networks.families.unet): stage layout, outputs
per resolution, and the memory tally's parameter count equal to the built network's."""

from __future__ import annotations

import pytest
import torch
from network_data import arch_for
from torch import nn

from segkit.networks.blocks.layers import ConvNormAct
from segkit.networks.families.unet import build_unet, tally_unet, unet_stage_defaults
from segkit.networks.measurement.tally import Tally

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _convs(module: nn.Module) -> list[ConvNormAct]:
    return [m for m in module.modules() if isinstance(m, ConvNormAct)]


@pytest.mark.parametrize("dims", [3, 2])
def test_deep_supervision_gives_one_output_per_decoder_resolution_highest_first(dims):
    arch = arch_for("unet", dims)
    net = build_unet(arch, 2, 4).eval()
    shape = (16, 32, 32)[-dims:]
    with torch.no_grad():
        outputs = net(torch.randn(1, 2, *shape))
    scales = [torch.tensor([1] * dims)]          # the cumulative stride of each decoder resolution, finest first
    for stride in arch["strides"][1:-1]:
        scales.append(scales[-1] * torch.tensor(stride))
    assert [tuple(o.shape) for o in outputs] == [(1, 4, *(n // int(s) for n, s in zip(shape, scale)))
                                                 for scale in scales]
    net.deep_supervision = False
    with torch.no_grad():
        single = net(torch.randn(1, 2, *shape))
    assert tuple(single.shape) == (1, 4, *shape)


def test_stages_hold_their_block_counts_and_the_first_conv_carries_the_stride():
    arch = arch_for("unet", 3)
    net = build_unet(arch, 1, 3)
    assert [len(_convs(stage)) for stage in net.encoder] == arch["blocks_per_stage"]
    assert [len(_convs(stage.blocks)) for stage in net.decoder] == arch["decoder_blocks_per_stage"]
    for stage, stride in zip(net.encoder, arch["strides"]):
        strides = [tuple(c[0].stride) for c in _convs(stage)]
        assert strides[0] == tuple(stride) and all(s == (1, 1, 1) for s in strides[1:])
    assert [stage.blocks[0][0].in_channels for stage in net.decoder] == [2 * f for f in
                                                                         arch["features_per_stage"][-2::-1]]


@pytest.mark.parametrize("dims, conv_bias", [(3, True), (3, False), (2, True)])
def test_the_tally_counts_the_parameters_torch_builds(dims, conv_bias):
    arch = {**arch_for("unet", dims), "conv_bias": conv_bias}
    tally = Tally()
    vox = [4096, 1024, 128]
    tally_unet(tally, arch, vox, 2, 4)
    assert tally.parameters == sum(p.numel() for p in build_unet(arch, 2, 4).parameters())
    bigger = Tally()
    tally_unet(bigger, arch, [2 * v for v in vox], 2, 4)
    assert bigger.parameters == tally.parameters and bigger.stored == 2 * tally.stored   # activations scale, weights not


@pytest.mark.parametrize("stages, multiplier", [(3, 1), (5, 2)])
def test_stage_defaults_are_two_convs_per_stage_times_the_multiplier(stages, multiplier):
    defaults = unet_stage_defaults(stages, multiplier)
    assert defaults == {"blocks_per_stage": [2 * multiplier] * stages,
                        "decoder_blocks_per_stage": [2 * multiplier] * (stages - 1)}
