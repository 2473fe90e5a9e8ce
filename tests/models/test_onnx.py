"""ONNX networks: every family exports, and ONNX Runtime / OpenVINO compute torch's logits on other tile shapes."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from segkit.errors import UserError
from segkit.inference.acceleration import prepare_for_inference
from segkit.inference.backends import onnx_runner
from segkit.models.onnx import (
    INPUT_NAME,
    OPSET,
    OUTPUT_NAME,
    export_network,
    metadata,
    plain_network,
    read_network,
)
from segkit.models.pruning import write_pruning
from segkit.networks import build_network
from segkit.networks.registry import get_family
from segkit.plans import Plans

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None
                                 or importlib.util.find_spec("onnx") is None,
                                 reason="onnx / onnxruntime not installed (pip install 'segkit-revmb[onnx]')")]
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
HAS_MONAI = importlib.util.find_spec("monai") is not None
KERNELS = [[1, 3, 3], [3, 3, 3], [3, 3, 3]]
STRIDES = [[1, 1, 1], [1, 2, 2], [2, 2, 2]]


def small_arch(family: str) -> tuple[dict, list[int], list[int]]:
    """(architecture entry, export patch, another tile shape the exported network must also take)."""
    if family == "swinunetr":
        from segkit.planning.architecture import architecture_for_patch

        arch = architecture_for_patch("swinunetr", [32, 32, 64])
        arch["features_per_stage"] = [12 * f for f in (1, 1, 2, 4, 8, 16)]
        # one stage of two blocks: its second is a shifted-window block, after which torch's exporter lost the
        # channel count its instance norm needs (the planner's default depth 2 failed to export before the fix)
        arch["blocks_per_stage"] = [1, 2, 1, 1, 1, 1]
        return arch, [32, 32, 64], [32, 64, 64]
    arch = {"family": family, "spatial_dims": 3, "kernel_sizes": KERNELS, "strides": STRIDES, "norm": "instance",
            "deep_supervision": True}
    if family.startswith("stunet"):
        arch.update(get_family(family).stage_defaults(3, 1))
    else:
        arch.update(features_per_stage=[8, 16, 24], blocks_per_stage=[1, 2, 1], decoder_blocks_per_stage=[1, 1])
    if family == "revmbconv":
        arch.update(expansion_ratios=[1, 2, 2], reversible=True, checkpointing=False)
    return arch, [4, 16, 16], [6, 24, 32]


FAMILIES = ["unet", "resenc", "revmbconv", "unetpp", "stunet-s",
            pytest.param("swinunetr", marks=[pytest.mark.slow,
                                             pytest.mark.skipif(not HAS_MONAI, reason="MONAI not installed")])]


def plans_view(arch: dict, patch: list[int]) -> Plans:
    """A two-channel, three-output softmax plan whose 3d_fullres entry has this architecture and patch."""
    return Plans.from_json({"num_channels": 2, "num_outputs": 3, "label_mode": "softmax",
                            "normalization": [{"scheme": "zscore"}] * 2,
                            "configurations": {"3d_fullres": {"spatial_dims": 3, "patch_size": patch,
                                                              "target_spacing": [1.0, 1.0, 1.0],
                                                              "architecture": arch}}})


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of voxels whose argmax label is the same."""
    return float((a.argmax(1) == b.argmax(1)).float().mean())


@pytest.mark.parametrize("family", FAMILIES)
def test_family_exports_and_backends_match_torch(family: str, tmp_path) -> None:
    """The exported network (plain forward, pruned UNet++) gives torch's inference logits on ORT and OpenVINO."""
    torch.manual_seed(0)
    arch, patch, other = small_arch(family)
    trained = build_network(arch, 2, 3)
    checkpoint = {"architecture": arch, "in_channels": 2, "num_outputs": 3, "network_state": trained.state_dict()}
    if family == "unetpp":
        write_pruning(tmp_path, {"prune_level": 1, "depth": 2, "levels": []})
    # the reference is what segkit's torch backend runs: the entry's own mode (reversible), GroupNorm, pruned
    reference = build_network(arch, 2, 3)
    reference.load_state_dict(trained.state_dict())
    reference.deep_supervision = False
    if family == "unetpp":
        reference.prune_level = 1
    prepare_for_inference(reference, 3, channels_last=False)
    plans = plans_view(arch, patch)
    dynamic = get_family(arch["family"]).onnx_dynamic_spatial
    data = export_network(plain_network(checkpoint, tmp_path), 2, patch, metadata(arch, 2, 3, plans, "3d_fullres"),
                          dynamic)
    path = tmp_path / "network.onnx"
    path.write_bytes(data)
    assert read_network(path, 2, 3, 3) == data
    import onnx

    model = onnx.load_from_string(data)
    assert model.opset_import[0].version == OPSET
    assert [i.name for i in model.graph.input] == [INPUT_NAME] and [o.name for o in model.graph.output] == [OUTPUT_NAME]
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["segkit_patch_size"]) == patch and props["segkit_label_mode"] == "softmax"
    # dynamic spatial axes: another multiple of the strides; swinunetr's trace keeps the patch (batch still dynamic)
    assert props["segkit_dynamic_spatial"] == str(dynamic).lower()
    batch = torch.randn(2, 2, *(other if dynamic else patch))
    with torch.no_grad():
        expected = reference(batch)
    backends = ["onnxruntime"] + (["openvino"] if HAS_OPENVINO else [])
    for backend in backends:
        logits = onnx_runner(backend, data, "fp32")(batch)
        assert logits.shape == expected.shape and logits.dtype == torch.float32
        difference = float((logits - expected).abs().max())
        print(f"{family} {backend}: largest logit difference {difference:.2e}, "
              f"agreement {agreement(logits, expected):.6f}")
        assert difference < 1e-3 * max(1.0, float(expected.abs().max()))
        assert agreement(logits, expected) >= 0.9999


def test_reader_refuses_damaged_and_mismatched_networks(tmp_path) -> None:
    """A file that is not ONNX, or whose channels/outputs differ from the plans, is one UserError naming the file."""
    torch.manual_seed(0)
    arch, patch, _ = small_arch("unet")
    net = build_network(arch, 2, 3)
    net.deep_supervision = False
    plans = plans_view(arch, patch)
    path = tmp_path / "network.onnx"
    path.write_bytes(export_network(net.eval(), 2, patch, metadata(arch, 2, 3, plans, "3d_fullres")))
    with pytest.raises(UserError, match="need 4 channels") as info:
        read_network(path, 4, 3, 3)
    assert info.value.path == str(path)
    with pytest.raises(UserError, match="outputs"):
        read_network(path, 2, 5, 3)
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(export_network(net, 2, patch))      # no segkit metadata
    with pytest.raises(UserError, match="not a segkit ONNX network"):
        read_network(plain, 2, 3, 3)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(UserError, match="ONNX"):
        read_network(broken, 2, 3, 3)
