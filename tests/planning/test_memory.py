"""Memory model: exact parameter and saved-activation counts, monotonicity, budget searches."""

from __future__ import annotations

import pytest
import torch
from network_data import memory_arch_for as arch_for

from segkit.networks import build_network
from segkit.networks.measurement.measure import saved_activation_bytes
from segkit.planning.memory import count_parameters, estimate_peak_bytes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


CASES = [("unet", "plain"), ("resenc", "plain"), ("revmbconv", "plain"), ("revmbconv", "reversible"),
         ("revmbconv", "checkpoint")]


@pytest.mark.parametrize("family,mode", CASES)
def test_stored_activations_match_autograd_saved_tensors(family: str, mode: str) -> None:
    """The model's 'activations' equal the bytes autograd really saves (within 1%) for each family/mode."""
    torch.manual_seed(0)
    arch, patch = arch_for(family, mode), [4, 16, 16]
    net = build_network(arch, 2, 3)
    x = torch.randn(2, 2, *patch)
    with torch.no_grad():
        shapes = [o.shape[2:] for o in net(x)]
    targets = [torch.randint(0, 3, (2, *s)) for s in shapes]
    measured = saved_activation_bytes(net, x, targets)
    predicted = estimate_peak_bytes(arch, patch, 2, 2, 3)
    assert predicted["activations"] == pytest.approx(measured, rel=0.01)
    assert predicted["parameters"] == 4 * sum(p.numel() for p in net.parameters())


def test_breakdown_and_optimizer_state() -> None:
    """total = weights + optimizer + the larger of (activations + transient) and gradients; SGD 1 momentum, Adam 2."""
    arch = arch_for("unet")
    sgd = estimate_peak_bytes(arch, [8, 32, 32], 2, 1, 2)
    adam = estimate_peak_bytes(arch, [8, 32, 32], 2, 1, 2, optimizer="adam")
    parts = ("parameters", "gradients", "optimizer", "activations", "transient")
    assert sgd["total"] == sgd["parameters"] + sgd["optimizer"] + max(sgd["activations"] + sgd["transient"],
                                                                      sgd["gradients"] + 10 * 2 ** 20)
    assert sgd["total"] <= sum(sgd[k] for k in parts)
    assert sgd["parameters"] == sgd["gradients"] == sgd["optimizer"] == 4 * count_parameters(arch, 1, 2)
    assert adam["optimizer"] == 2 * sgd["optimizer"]
    assert estimate_peak_bytes(arch, [8, 32, 32], 2, 1, 2, dtype_bytes=2)["activations"] == sgd["activations"] // 2


@pytest.mark.parametrize("family,mode", CASES)
def test_monotone_in_patch_batch_depth_width(family: str, mode: str) -> None:
    """More voxels, samples, blocks or features never predict less memory."""
    arch = arch_for(family, mode)
    base = estimate_peak_bytes(arch, [8, 32, 32], 2, 1, 2)["total"]
    assert estimate_peak_bytes(arch, [8, 48, 48], 2, 1, 2)["total"] > base
    assert estimate_peak_bytes(arch, [8, 32, 32], 3, 1, 2)["total"] > base
    deeper = {**arch, "blocks_per_stage": [b * 2 for b in arch["blocks_per_stage"]]}
    assert estimate_peak_bytes(deeper, [8, 32, 32], 2, 1, 2)["total"] > base
    wider = {**arch, "features_per_stage": [f * 2 for f in arch["features_per_stage"]]}
    assert estimate_peak_bytes(wider, [8, 32, 32], 2, 1, 2)["total"] > base


def test_reversible_stores_one_tensor_per_stage_whatever_the_depth() -> None:
    """Reversible activations do not grow with depth; checkpointing does (slowly), plain grows fastest."""
    patch = [8, 64, 64]
    acts = {}
    for mode in ("reversible", "checkpoint", "plain"):
        shallow = arch_for("revmbconv", mode)
        deep = {**shallow, "blocks_per_stage": [8, 8, 8], "decoder_blocks_per_stage": [8, 8]}
        acts[mode] = [estimate_peak_bytes(a, patch, 2, 1, 2)["activations"] for a in (shallow, deep)]
    assert acts["reversible"][0] == acts["reversible"][1]
    assert acts["reversible"][1] < acts["checkpoint"][1] < acts["plain"][1]
    assert acts["plain"][1] - acts["plain"][0] > 4 * (acts["checkpoint"][1] - acts["checkpoint"][0])


@pytest.mark.parametrize("family,mode", [("unet", "plain"), ("resenc", "plain"), ("revmbconv", "plain"),
                                         ("revmbconv", "reversible")])
def test_stored_activations_match_in_2d(family: str, mode: str) -> None:
    """The same accounting holds for 2D networks (anisotropic strides)."""
    torch.manual_seed(0)
    arch = {**arch_for(family, mode), "spatial_dims": 2, "kernel_sizes": [[3, 3]] * 3, "strides": [[1, 1], [2, 1], [2, 2]]}
    net = build_network(arch, 3, 4)
    x = torch.randn(2, 3, 32, 32)
    targets = [torch.randint(0, 4, (2, 32, 32)), torch.randint(0, 4, (2, 16, 32))]
    measured = saved_activation_bytes(net, x, targets)
    assert estimate_peak_bytes(arch, [32, 32], 2, 3, 4)["activations"] == pytest.approx(measured, rel=0.01)
