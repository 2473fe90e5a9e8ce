"""scripts/bench_backends.py's parts: the accuracy rule, Dice, calibration patches, the nnU-Net weight names, int8.

The whole script needs nnU-Net's environment and minutes (`--quick`); these check what decides its
table's verdicts and what makes its int8 and trained-weight rows possible, on tiny data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from script_loading import SCRIPTS, load_script

from segkit.networks import build_network


@pytest.fixture(scope="module")
def bench():
    """The script as a module (scripts/ on the path for its own imports)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        yield load_script("bench_backends")
    finally:
        sys.path.remove(str(SCRIPTS))


def small_arch() -> dict:
    """A 3-stage unet architecture in the shape segkit_plans writes for nnU-Net's network."""
    return {"family": "unet", "spatial_dims": 3, "features_per_stage": [4, 8, 16],
            "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
            "blocks_per_stage": [2, 2, 2], "decoder_blocks_per_stage": [2, 2], "norm": "instance",
            "deep_supervision": True}


def test_accuracy_rule_needs_both_agreement_and_every_class_dice(bench):
    rule = bench.ACCURACY_RULE
    assert bench.accuracy_holds(rule["min_agreement"], {"necrosis": rule["max_abs_dice_difference"]})
    assert not bench.accuracy_holds(rule["min_agreement"] - 1e-4, {"necrosis": 0.0})
    assert not bench.accuracy_holds(1.0, {"necrosis": 0.0, "edema": -rule["max_abs_dice_difference"] - 1e-4})


def test_dice_per_class_counts_overlap_and_absent_classes(bench):
    truth = np.zeros((2, 4, 4), dtype=np.uint8)
    truth[0, :2] = 1        # 8 voxels
    labels = truth.copy()
    labels[0, 0] = 0        # 4 of them missed
    labels[1, 0, 0] = 2     # one false edema voxel
    dice = bench.dice_per_class(labels, truth)
    assert dice["necrosis"] == pytest.approx(2 * 4 / 12)
    assert dice["edema"] == 0.0 and dice["enhancing"] == 1.0


def test_calibration_patches_are_seeded_patch_sized_crops_of_the_training_cases(bench):
    rng = np.random.default_rng(1)
    cases = [(rng.normal(size=(2, 6, 10, 12)).astype(np.float32), None),
             (rng.normal(size=(2, 4, 12, 12)).astype(np.float32), None)]
    patches = bench.calibration_patches(cases, [6, 8, 8], 3)
    assert [p.shape for p in patches] == [(1, 2, 6, 8, 8)] * 3 and all(p.dtype == np.float32 for p in patches)
    assert np.array_equal(patches[1][0, :, 4:], np.zeros((2, 2, 8, 8)))   # the 4-slice case, zero-padded to 6
    first = patches[0][0]
    assert any(np.array_equal(first, cases[0][0][:, :, y:y + 8, x:x + 8]) for y in range(3) for x in range(5))
    assert all(np.array_equal(a, b) for a, b in zip(patches, bench.calibration_patches(cases, [6, 8, 8], 3)))


def test_training_patch_halves_the_patch_in_multiples_of_the_total_stride(bench):
    strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]]     # total stride 8 x 16 x 16
    assert bench.training_patch([40, 80, 80], strides) == [16, 32, 32]
    assert bench.training_patch([28, 56, 56], strides) == [16, 32, 32]    # never below twice the stride
    assert bench.training_patch([64, 160, 128], strides) == [32, 80, 64]


def test_nnunet_names_cover_every_weight_of_the_segkit_network(bench):
    """write_nnunet_weights copies trained weights by these names: none may be missing or extra."""
    from nnunet_bench_common import nnunet_names, nnunet_to_segkit_state

    arch = small_arch()
    state = build_network(arch, 4, 4).state_dict()
    names = nnunet_names(arch)
    assert set(names) == set(state) and len(set(names.values())) == len(names)
    theirs = {names[k]: v.numpy() for k, v in state.items()}
    back = nnunet_to_segkit_state(theirs, arch)
    assert all(torch.equal(back[k], state[k]) for k in state)


@pytest.mark.slow   # NNCF's import and calibration: ~16 s under load
def test_int8_folder_is_a_calibrated_quantised_copy_openvino_runs(bench, tmp_path):
    pytest.importorskip("nncf")
    pytest.importorskip("openvino")
    import onnx

    from segkit.models.onnx import NETWORK_FILE, export_network

    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv3d(2, 8, 3, padding=1), torch.nn.ReLU(),
                                  torch.nn.Conv3d(8, 3, 1)).eval()
    source = tmp_path / "onnx" / "3d_fullres"
    (source / "fold_0").mkdir(parents=True)
    (source / "plans.json").write_text("{}")
    (source / "fold_0" / NETWORK_FILE).write_bytes(export_network(network, 2, [8, 8, 8], {"segkit_format": "x"}))
    rng = np.random.default_rng(0)
    samples = [rng.normal(size=(1, 2, 8, 8, 8)).astype(np.float32) for _ in range(2)]
    info = bench.quantised_folder(source, samples, tmp_path / "int8" / "3d_fullres")
    quantised = onnx.load(str(tmp_path / "int8" / "3d_fullres" / "fold_0" / NETWORK_FILE))
    assert (tmp_path / "int8" / "3d_fullres" / "plans.json").is_file() and info["patches"] == 2
    assert "QuantizeLinear" in {node.op_type for node in quantised.graph.node}
    assert {p.key: p.value for p in quantised.metadata_props}["segkit_format"] == "x"   # the contract check's key
    assert bench.openvino_bf16(source / "fold_0" / NETWORK_FILE) in ("hardware", "emulated", "ignored")


# ---- --volume colin27: the real test volume, its training set and the forced network -----------------------

needs_colin27 = pytest.mark.skipif(not (Path("/usr/share/mricron/templates") / "aal.nii.gz").is_file(),
                                   reason="Colin27 / AAL not installed (scripts/setup_realdata.sh: mricron-data)")


@needs_colin27
def test_real_case_is_colin27_at_the_spacing_with_its_atlas_truth(bench, tmp_path):
    from segkit.io.image import read_image

    truth = bench.write_real_case(tmp_path, 6.0)
    image = read_image(tmp_path / "colin27_0000.nii.gz", np.float32)
    assert image.array.shape == truth.shape == (30, 36, 30)          # 181 x 217 x 181 mm at 6 mm, z y x
    assert image.geometry.spacing == (6.0, 6.0, 6.0)
    # the new grid keeps the source's corner: first voxel centre 2.5 mm inwards (ch2: direction -x, -y, +z)
    assert np.allclose(image.geometry.origin, (87.5, 122.5, -68.5))
    counts = np.bincount(truth.ravel(), minlength=4)
    assert len(counts) == 4 and counts[1] > counts[2] > counts[3] > 0    # cortex > cerebellum > deep grey
    brain = truth > 0
    assert np.median(image.array[brain]) > 2 * max(1.0, float(np.median(image.array[~brain])))   # labels on the head


@needs_colin27
def test_real_training_set_is_deformed_colin27_with_the_four_classes(bench, tmp_path, monkeypatch):
    import json

    import nibabel as nib
    import realdata

    monkeypatch.setattr(realdata, "TRAIN_SUBJECTS", realdata.TRAIN_SUBJECTS[:2])   # one plain, one mirrored
    bench.build_real_dataset(tmp_path, 8.0)
    dataset = json.loads((tmp_path / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, **bench.REAL_CLASSES} and dataset["channel_names"] == {"0": "T1"}
    labels = [np.asarray(nib.load(tmp_path / "labelsTr" / f"colin_00{i}.nii.gz").dataobj) for i in (1, 2)]
    images = [np.asarray(nib.load(tmp_path / "imagesTr" / f"colin_00{i}_0000.nii.gz").dataobj) for i in (1, 2)]
    for label, image in zip(labels, images):
        assert label.shape == image.shape and set(np.unique(label)) == {0, 1, 2, 3}
        assert np.allclose(np.abs(np.diag(nib.load(tmp_path / "labelsTr" / "colin_001.nii.gz").affine)[:3]), 8.0)
    assert not np.array_equal(labels[0], labels[1])     # each subject its own deformation
    truth = bench.write_real_case(tmp_path / "test", 8.0)
    assert not any(label.shape == truth.shape and np.array_equal(label, truth) for label in labels)   # not the test


def test_forced_network_is_the_issue_s_16_47_m_parameter_unet_and_the_plan_is_recorded(bench):

    kwargs = {"n_stages": 5, "features_per_stage": [32, 64, 128, 256, 320], "kernel_sizes": [[3, 3, 3]] * 5,
              "strides": [[1, 1, 1]] + [[2, 2, 2]] * 4, "n_conv_per_stage": [2] * 5,
              "n_conv_per_stage_decoder": [2] * 4}
    peer = {"configurations": {"3d_fullres": {
        "patch_size": [64, 80, 64], "spacing": [3.0, 3.0, 3.0], "median_image_size_in_voxels": [60, 72, 60],
        "batch_size": 2, "use_mask_for_norm": [True], "architecture": {"arch_kwargs": dict(kwargs)}}}}
    planned = bench.force_issue_network(peer)
    assert planned == {"patch_size": [64, 80, 64], **kwargs}
    config = peer["configurations"]["3d_fullres"]
    assert config["patch_size"] == [40, 80, 80] and config["spacing"] == [3.0, 3.0, 3.0]
    plans = bench.real_segkit_plans(peer)
    assert plans["num_channels"] == 1 and plans["num_outputs"] == 4 and len(plans["normalization"]) == 1
    assert plans["outputs"] == {"cortex": [1], "cerebellum": [2], "deep_grey": [3]}
    network = build_network(plans["configurations"]["3d_fullres"]["architecture"], 1, 4)
    assert round(sum(p.numel() for p in network.parameters()) / 1e6, 2) == 16.47


def test_dice_per_class_takes_the_volume_s_classes(bench):
    truth = np.array([[[0, 1, 2, 3]]])
    labels = np.array([[[0, 1, 2, 1]]])
    dice = bench.dice_per_class(labels, truth, bench.REAL_CLASSES)
    assert dice == {"cortex": pytest.approx(2 / 3), "cerebellum": 1.0, "deep_grey": 0.0}
