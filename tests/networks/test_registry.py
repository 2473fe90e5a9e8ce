"""The network-family registry: a toy family registered with one call is planned, priced, built, offered by the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from planning_data import one_channel_dataset, synthetic_fingerprint

from segkit.cli import main
from segkit.errors import UserError
from segkit.networks import build_network, validate_architecture
from segkit.networks.families.unet import build_unet, tally_unet
from segkit.networks.family import NetworkFamily
from segkit.networks.registry import family_names, get_family, register_family, unregister_family
from segkit.planning.memory import count_parameters, estimate_peak_bytes
from segkit.planning.planner import PlanOptions, plan_dataset
from segkit.planning.run import resolve_network
from segkit.plans import Configuration
from segkit.training.fitting import candidates

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_stage_defaults(stages: int, depth_multiplier: int) -> dict:
    """One conv per stage and resolution, plus a per-stage key of the toy's own."""
    return {"blocks_per_stage": [depth_multiplier] * stages,
            "decoder_blocks_per_stage": [depth_multiplier] * (stages - 1), "toy_gain": [1.0] * stages}


TOY = NetworkFamily(name="toy", build=build_unet, stage_defaults=toy_stage_defaults, tally=tally_unet,
                    workspace_bytes=2 ** 20, description="a one-conv-per-stage U-Net (test only)",
                    stage_keys=("toy_gain",), grows=True, default_init="he")


@pytest.fixture()
def toy_family():
    """The toy family, registered for one test."""
    register_family(TOY)
    yield TOY
    unregister_family(TOY.name)




@pytest.fixture()
def one_channel_info(tmp_path):
    return one_channel_dataset(tmp_path, "MR")


def test_builtin_families_and_duplicate_names() -> None:
    """The built-ins are registered; a second record under a taken name is refused; unknown names list the choices."""
    assert family_names()[:3] == ("unet", "resenc", "revmbconv")
    register_family(get_family("unet"))   # the same record again is harmless
    with pytest.raises(ValueError, match="already registered"):
        register_family(NetworkFamily(name="unet", build=build_unet, stage_defaults=toy_stage_defaults,
                                      tally=tally_unet, workspace_bytes=0))
    with pytest.raises(ValueError, match="unknown network family 'nope'.*revmbconv"):
        get_family("nope")


def test_planner_and_memory_model_use_a_registered_toy_family(toy_family, one_channel_info) -> None:
    """network='toy' plans toy entries (defaults, init, growth) priced by the toy's tally and workspace."""
    fingerprint = synthetic_fingerprint([48, 48, 48], [1.0, 1.0, 1.0])
    plans = plan_dataset(one_channel_info, fingerprint, PlanOptions(network="toy", budget_bytes=2 * 1024 ** 3,
                                                                   configurations=("3d_fullres",)))
    entry = plans["configurations"]["3d_fullres"]
    arch = entry["architecture"]
    stages = len(arch["strides"])
    assert arch["family"] == "toy" and arch["init"] == "he" and arch["toy_gain"] == [1.0] * stages
    assert arch["blocks_per_stage"] == [2] * stages          # grows=True: the spare budget bought depth x2
    predicted = estimate_peak_bytes(arch, entry["patch_size"], entry["batch_size"], 1, 3)
    assert entry["memory"]["predicted_peak_bytes"] == predicted["total"]
    as_unet = estimate_peak_bytes({**arch, "family": "unet"}, entry["patch_size"], entry["batch_size"], 1, 3)
    assert as_unet["total"] - predicted["total"] == get_family("unet").workspace_bytes - TOY.workspace_bytes
    net = build_network(arch, 1, 3)
    assert count_parameters(arch, 1, 3) == sum(p.numel() for p in net.parameters())
    assert all(not m.bias.any() for m in net.modules() if isinstance(m, torch.nn.Conv3d))   # the toy's He default


def test_stage_keys_are_validated_and_cut_with_a_stage(toy_family) -> None:
    """The toy's own per-stage key must have one entry per stage, and the CPU fit drops it with the coarsest stage."""
    arch = {"family": "toy", "spatial_dims": 3, "features_per_stage": [8, 16, 32, 64],
            "kernel_sizes": [[3, 3, 3]] * 4, "strides": [[1, 1, 1]] + [[2, 2, 2]] * 3,
            "blocks_per_stage": [1] * 4, "decoder_blocks_per_stage": [1] * 3, "toy_gain": [1.0] * 4}
    validate_architecture(arch)
    with pytest.raises(ValueError, match="toy needs toy_gain with one entry per stage"):
        validate_architecture({**arch, "toy_gain": [1.0] * 3})
    entry = Configuration.from_json("3d_fullres", {"architecture": arch, "patch_size": [32, 32, 32], "batch_size": 2,
                                                   "target_spacing": [1.0, 1.0, 1.0]})
    shrunk = [c.architecture.as_dict() for _, c in candidates(entry) if c.architecture.num_stages < 4]
    assert shrunk and all(len(a["toy_gain"]) == len(a["strides"]) for a in shrunk)
    validate_architecture(shrunk[0])


def test_cli_offers_a_registered_family(toy_family, tiny_dataset, tmp_path, capsys) -> None:
    """`segkit plan --network toy` plans the toy family (trade-off table included); the help lists it."""
    with pytest.raises(SystemExit):
        main(["plan", "--help"])
    help_text = capsys.readouterr().out
    assert ", ".join(("auto", *family_names())) in " ".join(help_text.split()) and family_names()[-1] == "toy"
    work = tmp_path / "work"
    assert main(["plan", str(tiny_dataset), "--work-dir", str(work), "--network", "toy",
                 "--configurations", "3d_fullres"]) == 0
    plans = json.loads((work / "plans.json").read_text())
    assert plans["network"] == "toy" and plans["configurations"]["3d_fullres"]["architecture"]["family"] == "toy"
    assert "largest patch" in capsys.readouterr().out


def test_cli_refuses_an_unregistered_family(tiny_dataset, tmp_path, capsys) -> None:
    """Without registration 'toy' is an invalid choice (argparse exit 2, the registered names listed)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", str(tiny_dataset), "--work-dir", str(tmp_path / "w"), "--network", "toy"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'toy'" in err and "'revmbconv'" in err
    with pytest.raises(UserError, match="unknown network family 'toy'"):
        resolve_network("toy", planning_for_cpu=True)
