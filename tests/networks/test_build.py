"""build_network: shapes for every family in 2D and 3D, deep supervision, validation errors."""

from __future__ import annotations

import pytest
import torch
from network_data import arch_for

from segkit.networks import build_network
from segkit.planning.memory import count_parameters

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("family", ["unet", "resenc", "revmbconv"])
def test_shapes_and_deep_supervision(family: str, dims: int) -> None:
    """Deep supervision returns one logit map per decoder resolution, highest first; else one tensor."""
    torch.manual_seed(0)
    arch = arch_for(family, dims)
    net = build_network(arch, in_channels=3, num_outputs=4)
    spatial = [2, 8, 12] if dims == 3 else [8, 12]
    x = torch.randn(2, 3, *spatial)
    outputs = net(x)
    assert isinstance(outputs, list) and len(outputs) == 2
    assert outputs[0].shape == (2, 4, *spatial)
    coarse = [size // stride for size, stride in zip(spatial, arch["strides"][1])]
    assert outputs[1].shape == (2, 4, *coarse)
    net.deep_supervision = False
    single = net(x)
    assert torch.is_tensor(single) and single.shape == (2, 4, *spatial)
    assert torch.allclose(single, outputs[0], atol=1e-5)
    conv = torch.nn.Conv3d if dims == 3 else torch.nn.Conv2d
    assert any(isinstance(m, conv) for m in net.modules())
    assert sum(p.numel() for p in net.parameters()) == count_parameters(arch, 3, 4)


@pytest.mark.parametrize("change", [{"family": "vnet"}, {"strides": [[1, 1, 1]]}, {"decoder_blocks_per_stage": [1]},
                                    {"kernel_sizes": [[3, 3]] * 3}])
def test_invalid_entries_are_rejected(change: dict) -> None:
    """An inconsistent architecture entry raises ValueError naming the problem."""
    with pytest.raises(ValueError):
        build_network({**arch_for("revmbconv", 3), **change}, 1, 2)
