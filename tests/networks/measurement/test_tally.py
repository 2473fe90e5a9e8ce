"""The memory-count primitives: parameter counts equal torch's, stored elements per layer, the head's loss tensors."""

from __future__ import annotations

import pytest
from torch import nn

from segkit.networks.blocks.layers import ConvNormAct
from segkit.networks.measurement.tally import (
    LOSS_TENSORS_PER_OUTPUT,
    Tally,
    conv_norm_act,
    conv_params,
    norm_params,
    tally_head,
)


def count(module: nn.Module) -> int:
    """Trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("kernel, groups, bias", [([3, 3, 3], 1, True), ([1, 3, 3], 1, False), ([3, 3, 3], 4, True)])
def test_conv_and_norm_params_equal_torch(kernel, groups, bias) -> None:
    conv = nn.Conv3d(8, 12, kernel, groups=groups, bias=bias)
    assert conv_params(8, 12, kernel, groups=groups, bias=bias) == count(conv)
    assert norm_params(12) == count(nn.InstanceNorm3d(12, affine=True))


def test_conv_norm_act_counts_the_layer_and_what_backward_keeps() -> None:
    t = Tally()
    conv_norm_act(t, 4, 8, [3, 3, 3], vox=1000)
    assert t.parameters == count(ConvNormAct(4, 8, [3, 3, 3]))
    assert t.stored == 2 * 8 * 1000                  # conv output and the (in-place) activation output
    conv_norm_act(t, 8, 8, [3, 3, 3], vox=1000, act=False)
    assert t.stored == 2 * 8 * 1000 + 8 * 1000


def test_head_stores_loss_tensors_only_where_supervised_and_keeps_the_largest_transient() -> None:
    arch = {"kernel_sizes": [[3, 3, 3], [3, 3, 3]], "deep_supervision": False}
    t = Tally()
    tally_head(t, arch, 1, channels=16, vox=500, num_outputs=3, backward_grad_buffers=2.0)
    assert t.stored == 0 and t.parameters == 16 * 3 + 3 and t.transient == 2.0 * 16 * 500
    tally_head(t, arch, 0, channels=8, vox=4000, num_outputs=3, backward_grad_buffers=1.0)
    assert t.stored == LOSS_TENSORS_PER_OUTPUT * 3 * 4000
    assert t.transient == max(2.0 * 16 * 500, 8 * 4000)
