"""Swin UNETR (optional family, MONAI behind the `swin` extra): listing without MONAI, the install message,
the builder from a plan entry, the output contract, a training step, the planner's patch rule."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from segkit.cli import main
from segkit.errors import UserError
from segkit.networks import build_network
from segkit.networks.registry import family_names, get_family
from segkit.planning.architecture import architecture_for_patch
from segkit.planning.memory import count_parameters, estimate_peak_bytes
from segkit.planning.memory_search import tradeoff_table
from segkit.planning.planner import PlanOptions, _Pricer, plan_configuration
from segkit.plans import Configuration
from segkit.training.fitting import candidates
from segkit.training.losses import build_loss
from segkit.training.trainer import deep_supervision_scales


def small_entry(patch: list[int] | None = None, feature_size: int = 12) -> dict:
    """A swinunetr entry as the planner makes it, narrowed to feature size 12 and one Swin block per layer."""
    arch = architecture_for_patch("swinunetr", patch or [32, 32, 64])
    arch["features_per_stage"] = [feature_size * f for f in (1, 1, 2, 4, 8, 16)]
    arch["blocks_per_stage"] = [1, 1, 1, 1, 1, 1]
    return arch


@pytest.fixture
def without_monai(monkeypatch):
    """MONAI made unimportable for one test (as on an install without the `swin` extra)."""
    for name in [m for m in sys.modules if m == "monai" or m.startswith("monai.")] + ["monai"]:
        monkeypatch.setitem(sys.modules, name, None)


def test_listed_and_planned_entry_without_monai(without_monai) -> None:
    """Registering, listing and making an entry need no MONAI; building or pricing one names the extra."""
    assert "swinunetr" in family_names()
    assert get_family("swinunetr").topology is not None
    arch = small_entry()
    assert arch["strides"] == [[1, 1, 1]] + [[2, 2, 2]] * 5 and arch["deep_supervision"] is False
    for attempt in (lambda: build_network(arch, 1, 2), lambda: estimate_peak_bytes(arch, [32, 32, 64], 2, 1, 2)):
        with pytest.raises(UserError, match=r"install segkit-revmb\[swin\]"):
            attempt()


def test_cli_without_monai_is_one_message(without_monai, capsys) -> None:
    """`--network swinunetr` without MONAI: one line naming the extra, exit code 2."""
    assert main(["bench-model", "--network", "swinunetr", "--patch-size", "32", "32", "64", "--no-measure"]) == 2
    err = capsys.readouterr().err.strip()
    assert "segkit-revmb[swin]" in err and len(err.splitlines()) == 1


def test_patch_must_be_a_multiple_of_32() -> None:
    """The family's fixed topology: five 2x downsamplings on every axis, whatever the spacing."""
    with pytest.raises(ValueError, match=r"multiple of \[32, 32, 32\]"):
        architecture_for_patch("swinunetr", [48, 64, 64])


def test_entry_checks_name_the_problem() -> None:
    """Features that are not feature_size x [1, 1, 2, 4, 8, 16] (size a multiple of 12) are refused."""
    pytest.importorskip("monai")
    pytest.importorskip("einops")
    arch = small_entry()
    arch["features_per_stage"] = [16, 16, 32, 64, 128, 256]
    with pytest.raises(ValueError, match="multiple of 12"):
        build_network(arch, 1, 2)


def test_builds_from_the_entry_with_the_memory_models_parameter_count() -> None:
    """Exact parameter count (meta-device build) equals the built module's; MONAI's settings come from the entry."""
    pytest.importorskip("monai")
    pytest.importorskip("einops")
    arch = small_entry()
    arch["num_heads"] = [2, 4, 6, 12]
    arch["window_size"] = 4
    net = build_network(arch, 2, 3)
    assert count_parameters(arch, 2, 3) == sum(p.numel() for p in net.parameters())
    swin = net.network.swinViT
    assert swin.embed_dim == 12 and swin.window_size == (4, 4, 4)
    assert [layer[0].blocks[0].attn.num_heads for layer in (swin.layers1, swin.layers2, swin.layers3, swin.layers4)] \
        == [2, 4, 6, 12]


@pytest.mark.parametrize("deep_supervision", [True, False])
def test_training_step_with_one_output(deep_supervision: bool) -> None:
    """The trainer's deep-supervision plumbing takes the single output: one scale, weight 1, a real SGD step."""
    pytest.importorskip("monai")
    pytest.importorskip("einops")
    torch.manual_seed(0)
    arch = small_entry()
    arch["deep_supervision"] = deep_supervision
    net = build_network(arch, 1, 3)
    patch = [32, 32, 64]
    scales = deep_supervision_scales(net, 1, patch, torch.device("cpu"))
    assert scales == [[1, 1, 1]]
    out = net(torch.randn(2, 1, *patch))
    assert isinstance(out, list) == deep_supervision
    loss_fn = build_loss("softmax", len(scales))
    target = torch.randint(0, 3, (2, 1, *patch))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [p.detach().clone() for p in net.parameters()]
    loss = loss_fn(out, [target] if deep_supervision else target)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    changed = sum(not torch.equal(a, p) for a, p in zip(before, net.parameters()))
    assert changed > len(before) // 2
    if not deep_supervision:       # the step's own output is already the prediction form: one tensor
        assert out.shape == (2, 3, *patch)
        return
    net.deep_supervision = False   # prediction: one tensor
    with torch.no_grad():
        assert net(torch.randn(1, 1, *patch)).shape == (1, 3, *patch)


def test_planner_only_proposes_multiples_of_32(monkeypatch) -> None:
    """Over spacings, shapes and budgets the planned patch is a multiple of 32 on every axis (fit stubbed)."""
    pytest.importorskip("monai")
    pytest.importorskip("einops")
    from segkit.networks.families import swinunetr

    # the fit is measured once per machine; this test is about the patch rule, so a plausible fit stands in
    monkeypatch.setattr(swinunetr, "memory_fit", lambda arch, i, o: {"constant_bytes": 2e8, "bytes_per_voxel": 3e3})
    price = _Pricer(1, 3)
    for spacing in ([1.0, 1.0, 1.0], [3.0, 0.8, 0.8], [2.0, 2.0, 5.0]):
        for shape in ([80, 100, 85], [40, 300, 300], [150, 150, 150]):
            for budget_gib in (0.01, 0.5, 2.0, 8.0):
                options = PlanOptions(network="swinunetr", budget_bytes=int(budget_gib * 2 ** 30))
                entry = plan_configuration("3d_fullres", spacing, shape, 10, price, options)
                assert all(p % 32 == 0 and p >= 32 for p in entry["patch_size"]), (spacing, shape, entry["patch_size"])
                assert math.prod(p // 32 for p in entry["patch_size"]) >= 2   # trainable: > 1 bottleneck voxel
                assert entry["architecture"]["strides"] == [[1, 1, 1]] + [[2, 2, 2]] * 5
                assert math.prod(entry["patch_size"]) <= math.prod([math.ceil(s / 32) * 32 for s in shape])
    # largest patch only: depth/width would each need a measurement
    table = tradeoff_table(Configuration.from_json("3d_fullres", entry), 2 ** 30, 1, 3)
    assert "plain" in table and table.splitlines()[-1].split()[-1] == "-"


def test_cpu_fit_keeps_the_stages_and_the_divisor() -> None:
    """The CPU time-budget fit never drops a swinunetr stage and shrinks patches to multiples of 32 only."""
    arch = small_entry([96, 128, 128])
    arch["features_per_stage"] = [24 * f for f in (1, 1, 2, 4, 8, 16)]
    entry = Configuration.from_json("3d_fullres", {"architecture": arch, "patch_size": [96, 128, 128], "batch_size": 2,
                                                   "target_spacing": [1.0, 1.0, 1.0]})
    found = list(candidates(entry, min_width=12))
    assert found[-1][1].patch_size == (32, 64, 64)    # 0.75x twice; 32^3 would leave one bottleneck voxel
    for _, candidate in found:
        assert candidate.architecture.num_stages == 6
        assert all(p % 32 == 0 for p in candidate.patch_size)
        assert math.prod(p // 32 for p in candidate.patch_size) >= 2
        assert candidate.architecture.features_per_stage[0] % 12 == 0


@pytest.mark.slow
def test_calibrated_fit_predicts_a_measured_peak_within_15_percent(tmp_path, monkeypatch) -> None:
    """Cheap acceptance: fit from the two calibration steps, then a third patch measured: within +-15 %."""
    pytest.importorskip("monai")
    pytest.importorskip("einops")
    from segkit.networks.measurement.measure import measure_in_subprocess
    from segkit.networks.measurement.memory_fit import read_fits

    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path))
    torch.set_num_threads(1)
    arch = small_entry()
    patch = [32, 64, 64]
    predicted = estimate_peak_bytes(arch, patch, 1, 1, 3)
    assert len(read_fits(tmp_path / "memory_fits.json")) == 1       # measured once, cached
    measured = measure_in_subprocess({"arch": arch, "patch_size": patch, "batch_size": 1, "in_channels": 1,
                                      "num_outputs": 3, "steps": 2, "threads": 1})["peak_bytes"]
    assert abs((predicted["total"] - predicted["parameters"]) / measured - 1) <= 0.15
