"""UNet++: nested nodes, deep supervision on the nested outputs, exact pruning, memory tally, planning."""

from __future__ import annotations

import json

import pytest
import torch

from segkit.cli import main
from segkit.networks import build_network
from segkit.networks.families.unetpp import UNetPlusPlus
from segkit.networks.measurement.measure import saved_activation_bytes
from segkit.planning.memory import count_parameters, estimate_peak_bytes
from segkit.training.losses import build_loss
from segkit.training.trainer import deep_supervision_scales

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def unetpp_arch(dims: int = 3, stages: int = 4, deep_supervision: bool = True) -> dict:
    """A small anisotropic UNet++ entry (L = stages - 1 nested outputs)."""
    if dims == 3:
        kernels = [[1, 3, 3]] + [[3, 3, 3]] * (stages - 1)
        strides = [[1, 1, 1], [1, 2, 2]] + [[2, 2, 2]] * (stages - 2)
    else:
        kernels = [[3, 3]] * stages
        strides = [[1, 1]] + [[2, 2]] * (stages - 1)
    return {"family": "unetpp", "spatial_dims": dims, "features_per_stage": [8, 16, 24, 32, 32][:stages],
            "kernel_sizes": kernels, "strides": strides, "blocks_per_stage": [2, 1, 2, 1, 2][:stages],
            "decoder_blocks_per_stage": [1, 2, 1, 2][:stages - 1], "norm": "instance",
            "deep_supervision": deep_supervision}


def nested_outputs(net: UNetPlusPlus, x: torch.Tensor) -> list[torch.Tensor]:
    """The deep-supervision outputs X^{0,L}, ..., X^{0,1} without grad."""
    net.deep_supervision = True
    with torch.no_grad():
        return net(x)


@pytest.mark.parametrize("dims", [2, 3])
def test_nested_outputs_and_single_output(dims: int) -> None:
    """Deep supervision: L full-resolution logits; otherwise one tensor, the X^{0,L} head."""
    torch.manual_seed(0)
    net = build_network(unetpp_arch(dims), 2, 3)
    x = torch.randn(2, 2, *([4, 16, 16] if dims == 3 else [16, 16]))
    outputs = nested_outputs(net, x)
    assert len(outputs) == 3 and all(o.shape == (2, 3, *x.shape[2:]) for o in outputs)
    assert not torch.equal(outputs[0], outputs[-1])
    net.deep_supervision = False
    with torch.no_grad():
        assert torch.equal(net(x), outputs[0])


@pytest.mark.parametrize("level", [1, 2, 3])
def test_pruned_network_equals_the_full_networks_nested_head(level: int) -> None:
    """prune_level P predicts X^{0,P} bit for bit, running only the encoder stages and nodes X^{0,P} needs."""
    torch.manual_seed(1)
    arch = unetpp_arch()
    net = build_network(arch, 2, 3).eval()
    x = torch.randn(1, 2, 4, 16, 16)
    full = nested_outputs(net, x)
    pruned = build_network({**arch, "deep_supervision": False, "prune_level": level}, 2, 3).eval()
    pruned.load_state_dict(net.state_dict())
    ran: list[str] = []
    hooks = [module.register_forward_hook(lambda m, i, o, name=name: ran.append(name))
             for name, module in pruned.named_modules() if name.count(".") == 1 and name.split(".")[0] == "encoder"
             or name.count(".") == 2 and name.split(".")[0] == "columns"]
    with torch.no_grad():
        output = pruned(x)
    assert torch.equal(output, full[3 - level])
    encoder_stages = sorted(n for n in ran if n.startswith("encoder."))
    nodes = sorted(n for n in ran if n.startswith("columns."))
    assert encoder_stages == [f"encoder.{i}" for i in range(level + 1)]
    assert len(nodes) == level * (level + 1) // 2   # X^{i,j} with j >= 1 and i + j <= P
    for hook in hooks:
        hook.remove()


def test_prune_level_out_of_range_is_refused() -> None:
    """A prune level outside 1..L names the valid range."""
    net = build_network({**unetpp_arch(), "deep_supervision": False, "prune_level": 4}, 1, 2)
    with pytest.raises(ValueError, match="between 1 and 3"):
        net(torch.zeros(1, 1, 4, 16, 16))


def test_deep_supervision_step_reaches_every_head() -> None:
    """A training step with the deep-supervision loss: equal weights for the nested heads, gradients in all of them."""
    torch.manual_seed(2)
    net = build_network(unetpp_arch(), 1, 3)
    patch = [4, 16, 16]
    scales = deep_supervision_scales(net, 1, patch, torch.device("cpu"))
    assert scales == [[1, 1, 1]] * 3
    loss_fn = build_loss("softmax", scales)
    x = torch.randn(2, 1, *patch)
    target = torch.randint(0, 3, (2, 1, *patch))
    net.train()
    loss = loss_fn(net(x), [target] * 3)
    loss.backward()
    for head in net.heads:
        assert head.weight.grad is not None and float(head.weight.grad.abs().sum()) > 0
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("deep_supervision", [True, False])
def test_tally_counts_parameters_and_saved_activations(dims: int, deep_supervision: bool) -> None:
    """The memory model's parameter count is the module's, its activations what autograd saves (within 1%)."""
    torch.manual_seed(3)
    arch = unetpp_arch(dims, deep_supervision=deep_supervision)
    net = build_network(arch, 2, 3)
    assert count_parameters(arch, 2, 3) == sum(p.numel() for p in net.parameters())
    patch = [4, 16, 16] if dims == 3 else [32, 32]
    x = torch.randn(2, 2, *patch)
    with torch.no_grad():
        outputs = net(x)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    targets = [torch.randint(0, 3, (2, *o.shape[2:])) for o in outputs]
    predicted = estimate_peak_bytes(arch, patch, 2, 2, 3)
    assert predicted["activations"] == pytest.approx(saved_activation_bytes(net, x, targets), rel=0.01)


def test_more_nodes_cost_more_than_the_plain_unet() -> None:
    """The nested pathways hold more than the plain U-Net of the same stages; deeper/wider entries predict more."""
    arch = unetpp_arch()
    base = estimate_peak_bytes(arch, [8, 32, 32], 2, 1, 3)
    plain = estimate_peak_bytes({**arch, "family": "unet"}, [8, 32, 32], 2, 1, 3)
    assert base["activations"] > plain["activations"] and base["parameter_count"] > plain["parameter_count"]
    wider = {**arch, "features_per_stage": [2 * f for f in arch["features_per_stage"]]}
    assert estimate_peak_bytes(wider, [8, 32, 32], 2, 1, 3)["total"] > base["total"]
    assert estimate_peak_bytes(arch, [8, 48, 48], 2, 1, 3)["total"] > base["total"]


def test_plan_network_unetpp_builds_from_the_plan(tiny_dataset, tmp_path) -> None:
    """`segkit plan --network unetpp` plans unetpp entries priced by its tally; build_network makes them."""
    work = tmp_path / "work"
    assert main(["plan", str(tiny_dataset), "--work-dir", str(work), "--network", "unetpp",
                 "--configurations", "3d_fullres", "2d", "--gpu-memory", "0.5"]) == 0
    plans = json.loads((work / "plans.json").read_text())
    for entry in plans["configurations"].values():
        arch = entry["architecture"]
        assert arch["family"] == "unetpp"
        predicted = estimate_peak_bytes(arch, entry["patch_size"], entry["batch_size"], plans["num_channels"],
                                        plans["num_outputs"])
        assert entry["memory"]["predicted_peak_bytes"] == predicted["total"] <= 0.5 * 1024 ** 3
        net = build_network(arch, plans["num_channels"], plans["num_outputs"])
        assert sum(p.numel() for p in net.parameters()) == predicted["parameter_count"]
        with torch.no_grad():
            outputs = net(torch.zeros(1, plans["num_channels"], *entry["patch_size"]))
        assert len(outputs) == len(arch["strides"]) - 1
