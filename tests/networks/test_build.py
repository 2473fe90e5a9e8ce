"""build_network: shapes for every family in 2D and 3D, deep supervision, validation errors."""

from __future__ import annotations

import pytest
import torch

from segkit.networks import build_network
from segkit.planning.memory import count_parameters

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def arch_for(family: str, dims: int) -> dict:
    """A small anisotropic architecture entry (first axis pooled late, kernel 1 there at first)."""
    if dims == 3:
        kernels = [[1, 3, 3], [3, 3, 3], [3, 3, 3]]
        strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2]]
    else:
        kernels = [[3, 3], [3, 3], [3, 1]]
        strides = [[1, 1], [2, 1], [2, 2]]
    arch = {"family": family, "spatial_dims": dims, "features_per_stage": [8, 16, 32], "kernel_sizes": kernels,
            "strides": strides, "blocks_per_stage": [1, 2, 3], "decoder_blocks_per_stage": [2, 1],
            "norm": "instance", "deep_supervision": True}
    if family == "revmbconv":
        arch.update(expansion_ratios=[1, 2, 3], reversible=True, checkpointing=False)
    return arch


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


def test_resenc_has_more_blocks_in_deeper_stages() -> None:
    """ResEnc stages hold blocks_per_stage residual blocks (identity or projected skips)."""
    from segkit.networks.families.resenc import ResidualBlock

    arch = arch_for("resenc", 3)
    net = build_network(arch, 1, 2)
    counts = [sum(isinstance(m, ResidualBlock) for m in stage.modules()) for stage in net.encoder]
    assert counts == arch["blocks_per_stage"]


def test_revmbconv_stage_depth_width_expansion() -> None:
    """Each reversible stage has the entry's block count, width and expansion (hidden = e * C/2)."""
    from segkit.networks.blocks.reversible import ReversibleSequence

    arch = arch_for("revmbconv", 3)
    net = build_network(arch, 1, 2)
    sequences = [m for stage in net.encoder for m in stage.modules() if isinstance(m, ReversibleSequence)]
    assert [len(s.blocks) for s in sequences] == arch["blocks_per_stage"]
    for seq, f, e in zip(sequences, arch["features_per_stage"], arch["expansion_ratios"]):
        expand = seq.blocks[0].f[0]
        assert expand.in_channels == f // 2 and expand.out_channels == int(round(f // 2 * e))
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())


@pytest.mark.parametrize("change", [{"family": "vnet"}, {"strides": [[1, 1, 1]]}, {"decoder_blocks_per_stage": [1]},
                                    {"kernel_sizes": [[3, 3]] * 3}])
def test_invalid_entries_are_rejected(change: dict) -> None:
    """An inconsistent architecture entry raises ValueError naming the problem."""
    with pytest.raises(ValueError):
        build_network({**arch_for("revmbconv", 3), **change}, 1, 2)
