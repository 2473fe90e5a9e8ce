"""Speed switches: data with checked values; layout and in-place branch compilation keep the state_dict."""

import pytest
import torch

from segkit.errors import UserError
from segkit.networks import build_network
from segkit.networks.blocks.reversible import CouplingBlock
from segkit.training.speed import SpeedSwitches, apply_to_model, compile_network

REV_ARCH = {"family": "revmbconv", "spatial_dims": 3, "features_per_stage": [8, 16],
            "kernel_sizes": [[1, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [2, 2, 2]],
            "blocks_per_stage": [1, 1], "decoder_blocks_per_stage": [1], "expansion_ratios": [2, 2],
            "norm": "instance", "deep_supervision": True, "reversible": True}


def test_defaults_are_off_and_bad_modes_refused():
    assert SpeedSwitches().to_dict() == {"channels_last": False, "compile": "off", "cudnn_benchmark": False}
    with pytest.raises(UserError, match="--compile must be one of"):
        SpeedSwitches(compile="everything")


def test_branch_compilation_and_layout_keep_parameters_and_keys():
    model = build_network(REV_ARCH, 1, 2)
    keys = list(model.state_dict())
    out = apply_to_model(model, SpeedSwitches(channels_last=True, compile="branches"), 3, torch.device("cpu"))
    blocks = [m for m in out.modules() if isinstance(m, CouplingBlock)]
    assert blocks and all(b.f._compiled_call_impl is not None and b.g._compiled_call_impl is not None for b in blocks)
    assert list(out.state_dict()) == keys                       # checkpoints stay loadable without compile
    conv = next(m for m in out.modules() if isinstance(m, torch.nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    plain = build_network(REV_ARCH, 1, 2)
    assert compile_network(plain, SpeedSwitches()) is plain
    assert compile_network(plain, SpeedSwitches(compile="network")) is not plain
