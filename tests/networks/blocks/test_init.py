"""Weight initialisation by the architecture entry's "init": PyTorch defaults or nnU-Net's He init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from segkit.networks import build_network, validate_architecture
from segkit.networks.blocks.init import HE_NEGATIVE_SLOPE
from segkit.networks.families.resenc import ResidualBlock
from segkit.networks.registry import get_family
from segkit.planning.architecture import architecture_for_patch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def arch(family: str, init: str | None) -> dict:
    """A small 3-stage entry of a plain or residual family."""
    entry = {"family": family, "spatial_dims": 3, "features_per_stage": [16, 32, 64],
             "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
             "blocks_per_stage": [2, 2, 2], "decoder_blocks_per_stage": [1, 1], "norm": "instance"}
    return entry if init is None else {**entry, "init": init}


def convs(net: nn.Module) -> list[nn.Module]:
    """Every (transposed) convolution of a network."""
    return [m for m in net.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))]


@pytest.mark.parametrize("family", ["unet", "resenc"])
def test_he_init_is_kaiming_normal_with_zero_bias(family: str) -> None:
    """Conv weights have He's std sqrt(2 / ((1 + a^2) fan_in)) (within 10 %), biases are 0, norms stay (1, 0)."""
    torch.manual_seed(0)
    net = build_network(arch(family, "he"), 2, 3)
    big = [c for c in convs(net) if c.weight.numel() >= 20000]
    assert big
    for conv in big:
        fan_in = nn.init._calculate_correct_fan(conv.weight, "fan_in")
        expected = math.sqrt(2.0 / ((1 + HE_NEGATIVE_SLOPE ** 2) * fan_in))
        assert conv.weight.std().item() == pytest.approx(expected, rel=0.1)
        assert abs(conv.weight.mean().item()) < 0.1 * expected
    assert all(c.bias is None or not c.bias.any() for c in convs(net))
    norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm3d)]
    zeroed = {id(b.last_norm_before_add) for b in net.modules() if isinstance(b, ResidualBlock)}
    assert all(torch.all(n.weight == 1) and not n.bias.any() for n in norms if id(n) not in zeroed)


def test_he_init_starts_residual_blocks_as_their_skip() -> None:
    """resenc + he: each residual branch's last norm is zeroed, so a block outputs act(skip(x)) (nnU-Net ResEnc)."""
    torch.manual_seed(0)
    net = build_network(arch("resenc", "he"), 2, 3)
    blocks = [m for m in net.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 6
    x = torch.randn(1, 32, 4, 8, 8)
    block = blocks[3]   # stage 1, second block: identity skip
    with torch.no_grad():
        assert torch.equal(block(x), block.act(x.clone()))
        assert not torch.equal(build_network(arch("resenc", "pytorch"), 2, 3).encoder[1][1](x), block.act(x.clone()))


@pytest.mark.parametrize("family", ["unet", "resenc", "revmbconv"])
def test_without_the_key_the_familys_default_init_applies(family: str) -> None:
    """No "init" key: the family's default_init; "pytorch" keeps the layers' own uniform init; "he" differs."""
    entry = arch(family, None)
    if family == "revmbconv":
        entry.update(expansion_ratios=[1, 2, 2])
    weights = {}
    for init in (None, "pytorch", "he"):
        torch.manual_seed(0)
        weights[init] = convs(build_network(entry if init is None else {**entry, "init": init}, 2, 3))[1].weight
    assert torch.equal(weights[None], weights[get_family(family).default_init])
    assert not torch.equal(weights["pytorch"], weights["he"])
    fan_in = nn.init._calculate_correct_fan(weights["pytorch"], "fan_in")
    assert weights["pytorch"].abs().max() <= 1 / math.sqrt(fan_in) + 1e-6   # kaiming_uniform(a=sqrt(5)) bound


def test_unknown_init_is_rejected() -> None:
    """A misspelt scheme fails validation naming the choices."""
    with pytest.raises(ValueError, match="unknown init 'kaiming'.*pytorch"):
        validate_architecture(arch("unet", "kaiming"))


@pytest.mark.parametrize(("family", "expected"), [("unet", "he"), ("resenc", "he"), ("revmbconv", "pytorch")])
def test_planned_entries_start_with_the_measured_init(family: str, expected: str) -> None:
    """A freshly planned unet/resenc entry records "he" (measured ahead on brain structures) and builds He weights."""
    entry = architecture_for_patch(family, [32, 32, 32])
    assert entry["init"] == expected
    torch.manual_seed(0)
    conv = max(convs(build_network(entry, 1, 3)), key=lambda c: c.weight.numel())
    fan_in = nn.init._calculate_correct_fan(conv.weight, "fan_in")
    he_std = math.sqrt(2.0 / ((1 + HE_NEGATIVE_SLOPE ** 2) * fan_in))
    uniform_std = 1 / math.sqrt(3 * fan_in)   # kaiming_uniform(a=sqrt(5)): bound 1/sqrt(fan_in)
    std = conv.weight.std().item()
    assert std == pytest.approx(he_std if expected == "he" else uniform_std, rel=0.1)
