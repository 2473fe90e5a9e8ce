"""Inference acceleration keeps the network's function: GroupNorm swap, channels-last, autocast."""

from __future__ import annotations

import copy

import pytest
import torch
from inference_fixtures import tiny_architecture
from torch import nn

from segkit.inference.acceleration import (
    cpu_has_fast_bf16,
    instance_to_group_norm,
    prepare_for_inference,
    resolve_precision,
)
from segkit.inference.sliding_window import WindowSettings, sliding_window_logits
from segkit.networks import build_network


@pytest.mark.parametrize("spatial_dims", [3, 2])
def test_group_norm_swap_and_channels_last_keep_outputs(spatial_dims):
    torch.manual_seed(0)
    network = build_network(tiny_architecture(spatial_dims), 3, 4)
    network.deep_supervision = False
    for module in network.modules():   # non-trivial affine parameters
        if isinstance(module, nn.modules.instancenorm._InstanceNorm):
            nn.init.normal_(module.weight)
            nn.init.normal_(module.bias)
    network.eval()
    fast = prepare_for_inference(copy.deepcopy(network), spatial_dims)
    assert not any(isinstance(m, nn.modules.instancenorm._InstanceNorm) for m in fast.modules())
    assert fast.state_dict().keys() == network.state_dict().keys()
    data = torch.randn(3, 9, 21, 18)
    patch = (8, 16, 16) if spatial_dims == 3 else (16, 16)
    slice_axis = None if spatial_dims == 3 else 0
    mirror = tuple(range(spatial_dims))
    reference = sliding_window_logits(network, data, 4, WindowSettings(patch, mirror_axes=mirror, slice_axis=slice_axis))
    optimised = sliding_window_logits(fast, data, 4, WindowSettings(patch, mirror_axes=mirror, slice_axis=slice_axis,
                                                                      channels_last=True, tile_batch=3))
    torch.testing.assert_close(optimised, reference, rtol=1e-4, atol=1e-4)
    low = sliding_window_logits(fast, data, 4, WindowSettings(patch, mirror_axes=mirror, slice_axis=slice_axis,
                                                                channels_last=True, precision="bf16"))
    assert (low - reference).abs().max() < 0.1 * reference.abs().max()


def test_swap_loads_the_same_state_dict():
    torch.manual_seed(1)
    trained = build_network(tiny_architecture(3), 2, 3)
    fast = build_network(tiny_architecture(3), 2, 3)
    assert instance_to_group_norm(fast) > 0
    fast.load_state_dict(trained.state_dict())
    trained.eval(), fast.eval()
    x = torch.randn(2, 2, 8, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fast(x)[0], trained(x)[0], rtol=1e-4, atol=1e-4)


def test_precision_resolution(monkeypatch):
    """auto on a CPU: bf16 only when the CPU is fast at it AND the measured evidence says harmless."""
    from segkit.inference import acceleration

    expected = "bf16" if cpu_has_fast_bf16() and acceleration.bf16_measured_harmless() else "fp32"
    assert resolve_precision("auto", torch.device("cpu")) == expected
    monkeypatch.setattr(acceleration, "cpu_has_fast_bf16", lambda: True)
    harmless = {"max_abs_dice_difference": 0.0004, "min_foreground_agreement": 0.9995}
    harmful = {"max_abs_dice_difference": 0.004, "min_foreground_agreement": 0.9995}
    monkeypatch.setattr(acceleration, "BF16_CPU_EVIDENCE", harmless)
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"
    for evidence in (harmful, {"max_abs_dice_difference": 0.0, "min_foreground_agreement": 0.99},
                     {"max_abs_dice_difference": None, "min_foreground_agreement": None}):
        monkeypatch.setattr(acceleration, "BF16_CPU_EVIDENCE", evidence)
        assert resolve_precision("auto", torch.device("cpu")) == "fp32", evidence   # measured harmful or unmeasured
    monkeypatch.setattr(acceleration, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr(acceleration, "BF16_CPU_EVIDENCE", harmless)
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"   # harmless but slow here: fp32
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ValueError):
        resolve_precision("int8", torch.device("cpu"))
