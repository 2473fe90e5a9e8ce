"""Reversible coupling: gradients equal plain autograd, dummy-grad case, RNG replay, autocast, DDP."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from segkit.networks import build_network, set_mode
from segkit.networks.blocks.reversible import CouplingBlock, ReversibleSequence, to_grid

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def deep_arch(blocks: int = 8, grid_bits: int | None = 16) -> dict:
    """A two-stage RevMBConv U-Net with `blocks` coupling blocks per stage (anisotropic first stage)."""
    return {"family": "revmbconv", "spatial_dims": 3, "features_per_stage": [8, 16],
            "kernel_sizes": [[1, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [2, 2, 2]],
            "blocks_per_stage": [blocks, blocks], "decoder_blocks_per_stage": [blocks],
            "expansion_ratios": [2, 2], "norm": "instance", "deep_supervision": True,
            "reversible": True, "checkpointing": False, "coupling_grid_bits": grid_bits}


def perturb_affine(net: nn.Module, seed: int = 1) -> None:
    """Move norm weights/biases away from (1, 0) so no gradient is zero by symmetry."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in net.parameters():
            if param.dim() == 1:
                param.add_(0.2 * torch.randn(param.shape, generator=generator, dtype=param.dtype))


def gradients(net: nn.Module, x: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """Input gradient (if x requires grad) and every parameter gradient of a fixed random-weighted loss."""
    set_mode(net, mode)
    net.zero_grad(set_to_none=True)
    x.grad = None
    outputs = net(x)
    generator = torch.Generator().manual_seed(7)
    loss = sum((o * torch.randn(o.shape, generator=generator, dtype=o.dtype)).mean() for o in outputs)
    loss.backward()
    grads = [x.grad.clone()] if x.requires_grad else []
    return grads + [p.grad.clone() for p in net.parameters()]


def max_relative_error(grads: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    """Largest per-tensor ||g - r|| / ||r||."""
    return max(((g.double() - r.double()).norm() / r.double().norm()).item() for g, r in zip(grads, reference))


def test_gradients_equal_plain_autograd_float32() -> None:
    """8 blocks per stage, float32: reversible and checkpointed gradients match plain ones (<= 1e-5)."""
    torch.manual_seed(0)
    net = build_network(deep_arch(8), 2, 3)
    perturb_affine(net)
    x = torch.randn(1, 2, 4, 8, 8, requires_grad=True)
    reference = gradients(net, x, "plain")
    assert all(r.norm() > 0 for r in reference)
    assert max_relative_error(gradients(net, x, "reversible"), reference) <= 1e-5
    assert max_relative_error(gradients(net, x, "checkpoint"), reference) <= 1e-5


def test_gradients_equal_plain_autograd_float64_ordinary_coupling() -> None:
    """Without the coupling grid (plain float additions), float64 gradients agree to 1e-10."""
    torch.manual_seed(0)
    net = build_network(deep_arch(8, grid_bits=None), 2, 3).double()
    perturb_affine(net)
    x = torch.randn(1, 2, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    reference = gradients(net, x, "plain")
    assert max_relative_error(gradients(net, x, "reversible"), reference) <= 1e-10


def test_parameters_get_gradients_when_input_does_not_require_grad() -> None:
    """A stage input without requires_grad still yields parameter gradients equal to plain autograd."""
    torch.manual_seed(0)
    blocks = [CouplingBlock(nn.Sequential(nn.Conv3d(2, 2, 3, padding=1), nn.SiLU()),
                            nn.Sequential(nn.Conv3d(2, 2, 3, padding=1), nn.SiLU())) for _ in range(3)]
    seq = ReversibleSequence(blocks, "reversible")
    x = torch.randn(1, 4, 4, 6, 6)
    assert not x.requires_grad
    out = seq(x)
    assert out.requires_grad
    out.square().sum().backward()
    rev = [p.grad.clone() for p in seq.parameters()]
    seq.zero_grad(set_to_none=True)
    seq.mode = "plain"
    seq(x).square().sum().backward()
    assert max_relative_error(rev, [p.grad for p in seq.parameters()]) <= 1e-5


class NoisyBranch(nn.Module):
    """A stochastic branch: adds fresh uniform noise from the global CPU generator."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """conv(x) * (1 + noise)."""
        return torch.tanh(self.conv(x)) * (1 + torch.rand_like(x))


def test_random_state_is_replayed_and_caller_rng_untouched() -> None:
    """Stochastic branches see the same numbers in recompute; backward leaves the global RNG as plain does."""
    torch.manual_seed(0)
    seq = ReversibleSequence([CouplingBlock(NoisyBranch(2), NoisyBranch(2)) for _ in range(4)], "plain")
    x = torch.randn(1, 4, 4, 6, 6, requires_grad=True)
    results = {}
    for mode in ("plain", "reversible"):
        seq.mode = mode
        seq.zero_grad(set_to_none=True)
        x.grad = None
        torch.manual_seed(123)
        out = seq(x)
        out.square().sum().backward()
        results[mode] = ([x.grad.clone()] + [p.grad.clone() for p in seq.parameters()], out.detach(),
                         torch.get_rng_state())
    assert torch.equal(results["plain"][1], results["reversible"][1])
    assert max_relative_error(results["reversible"][0], results["plain"][0]) <= 1e-5
    assert torch.equal(results["plain"][2], results["reversible"][2])


def test_state_dict_keys_equal_across_modes() -> None:
    """reversible true/false/checkpointing build the same parameters; weights load across modes."""
    arch = deep_arch(2)
    nets = [build_network({**arch, **change}, 1, 2) for change in
            ({"reversible": True}, {"reversible": False}, {"checkpointing": True})]
    keys = [list(net.state_dict().keys()) for net in nets]
    assert keys[0] == keys[1] == keys[2]
    nets[1].load_state_dict(nets[0].state_dict())
    x = torch.randn(1, 1, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(nets[0](x)[0], nets[1](x)[0])


def test_reconstruction_is_exact_on_the_grid_after_32_blocks() -> None:
    """Running 32 blocks forward then inverting them returns the grid-rounded input bit for bit."""
    from segkit.networks.families.revmbconv import mbconv_sequence

    torch.manual_seed(0)
    seq = mbconv_sequence(8, 32, 2.0, [3, 3, 3], "channel_group", "plain")
    x = torch.randn(1, 8, 4, 8, 8)
    with torch.no_grad():
        y1, y2 = seq(x).chunk(2, dim=1)
        for block in reversed(seq.blocks):
            y2 = y2 - to_grid(block.g(y1), block.grid_bits)
            y1 = y1 - to_grid(block.f(y2), block.grid_bits)
    assert torch.equal(torch.cat([y1, y2], 1), to_grid(x, 16))


def test_autocast_keeps_streams_float32() -> None:
    """Under bf16 autocast the stage output is float32 and reversible gradients equal plain ones."""
    torch.manual_seed(0)
    net = build_network(deep_arch(2), 2, 3)
    x = torch.randn(1, 2, 4, 8, 8, requires_grad=True)
    grads = {}
    for mode in ("plain", "reversible"):
        set_mode(net, mode)
        net.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            stage_out = net.encoder[0](x)
            assert stage_out.dtype == torch.float32
            loss = sum(o.float().square().mean() for o in net(x))
        loss.backward()
        grads[mode] = [p.grad.clone() for p in net.parameters()]
    assert max_relative_error(grads["reversible"], grads["plain"]) <= 1e-5


def test_works_under_distributed_data_parallel(tmp_path) -> None:
    """A 1-process gloo DDP wrapper gives the same parameter gradients as the bare reversible network."""
    import torch.distributed as dist

    torch.manual_seed(0)
    net = build_network(deep_arch(2), 1, 2)
    bare = copy.deepcopy(net)
    x = torch.randn(1, 1, 4, 8, 8)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'ddp'}", rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(net)
        sum(o.square().mean() for o in ddp(x)).backward()
    finally:
        dist.destroy_process_group()
    sum(o.square().mean() for o in bare(x)).backward()
    assert max_relative_error([p.grad for p in net.parameters()], [p.grad for p in bare.parameters()]) <= 1e-6


def test_unknown_mode_is_rejected() -> None:
    """A typo in the mode fails loudly."""
    with pytest.raises(ValueError):
        ReversibleSequence([], "revers")


def test_he_init_keeps_reversible_gradients_equal_to_plain() -> None:
    """init "he" (larger conv weights) still gives reversible = plain gradients: the norms bound the branch outputs."""
    torch.manual_seed(0)
    net = build_network({**deep_arch(4), "init": "he"}, 2, 3)
    assert all(m.bias is None or not m.bias.any() for m in net.modules() if isinstance(m, nn.Conv3d))
    perturb_affine(net)
    x = torch.randn(1, 2, 4, 8, 8, requires_grad=True)
    reference = gradients(net, x, "plain")
    assert all(r.norm() > 0 for r in reference)
    assert max_relative_error(gradients(net, x, "reversible"), reference) <= 1e-5
