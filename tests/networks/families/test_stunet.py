"""STU-Net presets: the paper's parameter counts, the block/upsampling structure, memory tally, planning."""

from __future__ import annotations

import json

import pytest
import torch
from planning_data import one_channel_dataset, synthetic_fingerprint
from torch import nn

from segkit.cli import main
from segkit.networks import build_network
from segkit.networks.families.stunet import (
    PAPER_IN_CHANNELS,
    PAPER_OUTPUTS,
    PAPER_PARAMETERS,
    STUNET_PRESETS,
    InterpolateUp,
    StuResBlock,
    paper_architecture,
)
from segkit.networks.measurement.measure import saved_activation_bytes
from segkit.networks.registry import get_family
from segkit.planning.architecture import make_architecture
from segkit.planning.memory import count_parameters, estimate_peak_bytes
from segkit.planning.planner import PlanOptions, plan_dataset
from segkit.planning.topology import fit_patch_to_topology
from segkit.training.losses import build_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_arch(preset: str = "s", dims: int = 3, stages: int = 3) -> dict:
    """A preset's entry on a small anisotropic topology (features and blocks from the preset's defaults)."""
    if dims == 3:
        kernels = [[1, 3, 3]] + [[3, 3, 3]] * (stages - 1)
        strides = [[1, 1, 1], [1, 2, 2]] + [[2, 2, 2]] * (stages - 2)
    else:
        kernels, strides = [[3, 3]] * stages, [[1, 1]] + [[2, 2]] * (stages - 1)
    return {"family": f"stunet-{preset}", "spatial_dims": dims, "kernel_sizes": kernels, "strides": strides,
            "norm": "instance", "deep_supervision": True,
            **get_family(f"stunet-{preset}").stage_defaults(stages, 1)}


@pytest.mark.parametrize("preset", list(STUNET_PRESETS))
def test_parameter_counts_reproduce_the_paper(preset: str) -> None:
    """1 input channel, 105 outputs, 6 stages of 3x3x3: within 2 % of the paper (in fact within 0.03 %);
    the tally's count is the built module's (S for real, the larger presets on the meta device)."""
    arch = paper_architecture(preset)
    counted = count_parameters(arch, PAPER_IN_CHANNELS, PAPER_OUTPUTS)
    assert counted == pytest.approx(PAPER_PARAMETERS[preset], rel=0.02)
    assert counted == pytest.approx(PAPER_PARAMETERS[preset], rel=3e-4)
    device = "cpu" if preset == "s" else "meta"   # H would be 5.8 GB of float32 weights
    with torch.device(device):
        net = build_network(arch, PAPER_IN_CHANNELS, PAPER_OUTPUTS)
    assert sum(p.numel() for p in net.parameters()) == counted


def test_presets_scale_depth_and_width_together() -> None:
    """S/B/L/H: widths base x (1, 2, 4, 8, 16, 16) with base 16/32/64/96, blocks 1/1/2/3 per stage and resolution."""
    for preset, (base, blocks) in STUNET_PRESETS.items():
        arch = paper_architecture(preset)
        assert arch["features_per_stage"] == [base * f for f in (1, 2, 4, 8, 16, 16)]
        assert arch["blocks_per_stage"] == [blocks] * 6 and arch["decoder_blocks_per_stage"] == [blocks] * 5
    assert get_family("stunet-b").stage_defaults(8, 1)["features_per_stage"][-3:] == [512] * 3


def test_structure_follows_the_authors_code() -> None:
    """Upsampling by interpolation + 1x1 conv (no transposed conv); the first block of each stage projects its skip."""
    net = build_network(small_arch("l"), 2, 3)
    assert not any(isinstance(m, (nn.ConvTranspose2d, nn.ConvTranspose3d)) for m in net.modules())
    assert all(isinstance(stage.upsample, InterpolateUp) for stage in net.decoder)
    for stage in [*net.encoder, *(d.blocks for d in net.decoder)]:
        blocks = list(stage)
        assert len(blocks) == 2 and all(isinstance(b, StuResBlock) for b in blocks)
        assert isinstance(blocks[0].skip, nn.Conv3d) and blocks[0].skip.kernel_size == (1, 1, 1)
        assert isinstance(blocks[1].skip, nn.Identity)
    assert net.encoder[1][0].skip.stride == (1, 2, 2)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("preset", ["s", "l"])
def test_tally_counts_parameters_and_saved_activations(preset: str, dims: int) -> None:
    """The memory model's parameters are the module's; its activations what autograd saves (within 1 %)."""
    torch.manual_seed(0)
    arch = small_arch(preset, dims)
    if preset == "l":
        arch["features_per_stage"] = [8, 16, 32]   # L's depth (2 blocks) at a test-sized width
    net = build_network(arch, 2, 3)
    assert count_parameters(arch, 2, 3) == sum(p.numel() for p in net.parameters())
    patch = [4, 16, 16] if dims == 3 else [32, 32]   # norm statistics (uncounted) matter only on tiny maps
    x = torch.randn(2, 2, *patch)
    with torch.no_grad():
        shapes = [o.shape[2:] for o in net(x)]
    targets = [torch.randint(0, 3, (2, *s)) for s in shapes]
    predicted = estimate_peak_bytes(arch, patch, 2, 2, 3)
    assert predicted["activations"] == pytest.approx(saved_activation_bytes(net, x, targets), rel=0.01)


def test_deep_supervision_step_reaches_every_head() -> None:
    """One output per decoder resolution, highest first; a DS loss step sends gradients to every weighted head."""
    torch.manual_seed(1)
    net = build_network(small_arch(stages=4), 1, 3)
    x = torch.randn(2, 1, 4, 32, 32)
    outputs = net(x)
    scales = [[1, 1, 1], [1, 2, 2], [2, 4, 4]]
    assert [tuple(o.shape[2:]) for o in outputs] == [(4, 32, 32), (4, 16, 16), (2, 8, 8)]
    targets = [torch.randint(0, 3, (2, 1, *o.shape[2:])) for o in outputs]
    build_loss("softmax", scales)(outputs, targets).backward()
    # net.heads run coarsest first; segkit's weights (as nnU-Net's) give the lowest resolution weight 0,
    # so its head gets a zero gradient and the others a non-zero one
    grads = [float(head.weight.grad.abs().sum()) for head in net.heads]
    assert grads[0] == 0.0 and grads[1] > 0 and grads[2] > 0
    assert all(p.grad is not None for p in net.parameters())
    net.deep_supervision = False
    with torch.no_grad():
        assert net(x).shape == (2, 3, 4, 32, 32)




@pytest.fixture()
def one_channel_info(tmp_path):
    return one_channel_dataset(tmp_path, "CT")


@pytest.mark.parametrize("budget_gib", [0.5, 4.0, 24.0])
def test_stunet_plans_the_largest_preset_that_fits(one_channel_info, budget_gib: float) -> None:
    """`stunet`: the patch is planned with S, then the largest preset whose step fits at that patch."""
    budget = int(budget_gib * 1024 ** 3)
    plans = plan_dataset(one_channel_info, synthetic_fingerprint([96, 96, 96]),
                         PlanOptions(network="stunet", budget_bytes=budget, configurations=("3d_fullres",)))
    entry = plans["configurations"]["3d_fullres"]
    arch = entry["architecture"]
    assert arch["family"] in get_family("stunet").presets and plans["network"] == "stunet"
    assert entry["memory"]["fits_budget"]
    _, topology = fit_patch_to_topology(entry["patch_size"], [1.0, 1.0, 1.0])
    presets = get_family("stunet").presets
    bigger = presets[presets.index(arch["family"]) + 1:]
    for name in bigger:   # every larger preset would not fit at this patch
        assert estimate_peak_bytes(make_architecture(name, topology), entry["patch_size"], 2, 1, 3)["total"] > budget
    fixed = plan_dataset(one_channel_info, synthetic_fingerprint([96, 96, 96]),
                         PlanOptions(network="stunet-s", budget_bytes=budget, configurations=("3d_fullres",)))
    assert fixed["configurations"]["3d_fullres"]["patch_size"] == entry["patch_size"]
    if budget_gib == 0.5:
        assert arch["family"] == "stunet-s"
    if budget_gib == 24.0:
        assert arch["family"] in ("stunet-l", "stunet-h")


def test_plan_cli_fixed_preset_and_cpu_default(tiny_dataset, tmp_path) -> None:
    """`--network stunet-b` keeps B (the patch shrinks to fit); `stunet` planned for this CPU stays at S."""
    work = tmp_path / "b"
    assert main(["plan", str(tiny_dataset), "--work-dir", str(work), "--network", "stunet-b",
                 "--configurations", "3d_fullres", "--gpu-memory", "1"]) == 0
    entry = json.loads((work / "plans.json").read_text())["configurations"]["3d_fullres"]
    assert entry["architecture"]["family"] == "stunet-b"
    assert entry["architecture"]["features_per_stage"][0] == 32
    net = build_network(entry["architecture"], 4, 4)
    assert sum(p.numel() for p in net.parameters()) == entry["memory"]["breakdown"]["parameter_count"]
    work = tmp_path / "cpu"
    assert main(["plan", str(tiny_dataset), "--work-dir", str(work), "--network", "stunet",
                 "--configurations", "3d_fullres"]) == 0
    plans = json.loads((work / "plans.json").read_text())
    if plans["device"] == "cpu":
        assert plans["configurations"]["3d_fullres"]["architecture"]["family"] == "stunet-s"
