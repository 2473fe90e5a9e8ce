"""nnU-Net v2 model folders: safe checkpoint reading, conversion and prediction (no nnunetv2 needed).

The synthetic folders are written the way nnU-Net v2 writes them: plans.json in its schema,
dataset.json, and `torch.save` of a plain dict with `network_weights` in nnU-Net's key layout
(including its duplicate `all_modules` / `decoder.encoder` views), numpy scalars in the log and a
torch.device in init_args.
"""

from __future__ import annotations

import fractions
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from segkit.cli import main
from segkit.errors import UserError
from segkit.inference.model import load_model
from segkit.inference.predictor import InferenceOptions, network_probabilities, window_settings
from segkit.inference.sliding_window import (
    gaussian_importance_map,
    logits_to_probabilities,
    nnunet_gaussian_map,
    sliding_window_logits,
)
from segkit.io.image import Geometry, read_image, write_image
from segkit.jsonio import read_json, write_json
from segkit.models.nnunet import convert_nnunet_model, is_nnunet_model_folder, read_nnunet_checkpoint
from segkit.networks import build_network
from segkit.plans import read_plans
from segkit.preprocessing import preprocess_images
from segkit.preprocessing.normalize import normalize_channels

FEATURES = [4, 8, 16]
KERNELS_3D = [[1, 3, 3], [3, 3, 3], [3, 3, 3]]
STRIDES_3D = [[1, 1, 1], [1, 2, 2], [2, 2, 2]]


def _conv_entries(prefix: str, c_out: int, c_in: int, kernel: list[int], rng: torch.Generator,
                  bias: bool = True, norm: bool = True) -> dict:
    """nnU-Net ConvDropoutNormReLU parameters, with its duplicate all_modules view."""
    weights = {"conv.weight": torch.randn(c_out, c_in, *kernel, generator=rng) * 0.3}
    if bias:
        weights["conv.bias"] = torch.randn(c_out, generator=rng) * 0.1
    if norm:
        weights["norm.weight"] = 1 + 0.1 * torch.randn(c_out, generator=rng)
        weights["norm.bias"] = 0.1 * torch.randn(c_out, generator=rng)
    out = {f"{prefix}.{k}": v for k, v in weights.items()}
    views = {"conv": "0", "norm": "1"}
    out.update({f"{prefix}.all_modules.{views[k.split('.')[0]]}.{k.split('.')[1]}": v for k, v in weights.items()})
    return out


def nnunet_weights(family: str, in_channels: int, num_outputs: int, kernels: list, strides: list,
                   seed: int = 0) -> dict:
    """A state dict in nnU-Net's PlainConvUNet / ResidualEncoderUNet key layout (written independently of segkit)."""
    rng = torch.Generator().manual_seed(seed)
    state: dict = {}
    encoder: dict = {}
    if family == "unet":
        c_prev = in_channels
        for s, f in enumerate(FEATURES):
            for i in range(2):
                encoder.update(_conv_entries(f"encoder.stages.{s}.0.convs.{i}", f, c_prev if i == 0 else f,
                                             kernels[s], rng))
            c_prev = f
    else:
        encoder.update(_conv_entries("encoder.stem.convs.0", FEATURES[0], in_channels, kernels[0], rng))
        c_prev = FEATURES[0]
        for s, f in enumerate(FEATURES):
            for b in range(2 if s else 1):
                c_in = c_prev if b == 0 else f
                prefix = f"encoder.stages.{s}.blocks.{b}"
                encoder.update(_conv_entries(f"{prefix}.conv1", f, c_in, kernels[s], rng))
                encoder.update(_conv_entries(f"{prefix}.conv2", f, f, kernels[s], rng))
                stride = strides[s] if b == 0 else [1] * len(kernels[s])
                if c_in != f:
                    index = 1 if max(stride) > 1 else 0
                    encoder.update(_conv_entries(f"{prefix}.skip.{index}", f, c_in, [1] * len(kernels[s]), rng,
                                                 bias=False))
            c_prev = f
    state.update(encoder)
    state.update({f"decoder.encoder.{k[len('encoder.'):]}": v for k, v in encoder.items()})
    for d, s in enumerate(range(len(FEATURES) - 2, -1, -1)):
        f = FEATURES[s]
        state[f"decoder.transpconvs.{d}.weight"] = torch.randn(FEATURES[s + 1], f, *strides[s + 1], generator=rng) * 0.3
        state[f"decoder.transpconvs.{d}.bias"] = torch.randn(f, generator=rng) * 0.1
        state.update(_conv_entries(f"decoder.stages.{d}.convs.0", f, 2 * f, kernels[s], rng))
        state[f"decoder.seg_layers.{d}.weight"] = torch.randn(num_outputs, f, *[1] * len(kernels[s]), generator=rng)
        state[f"decoder.seg_layers.{d}.bias"] = torch.randn(num_outputs, generator=rng) * 0.1
    return state


def nnunet_plans(family: str, configuration: str, patch: list[int], spacing: list[float], kernels: list,
                 strides: list, transpose: tuple[int, int, int] = (0, 1, 2)) -> dict:
    """plans.json in nnU-Net v2's schema (one configuration) with ZScore and CT channels."""
    conv = "torch.nn.modules.conv.Conv3d" if len(patch) == 3 else "torch.nn.modules.conv.Conv2d"
    norm = "torch.nn.modules.instancenorm.InstanceNorm3d" if len(patch) == 3 else "torch.nn.modules.instancenorm.InstanceNorm2d"
    blocks = ({"n_conv_per_stage": [2, 2, 2]} if family == "unet" else {"n_blocks_per_stage": [1, 2, 2]})
    network = ("dynamic_network_architectures.architectures.unet.PlainConvUNet" if family == "unet"
               else "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet")
    resampling = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    return {
        "dataset_name": "Dataset042_Tiny", "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [2.0, 1.0, 1.0], "image_reader_writer": "SimpleITKIO",
        "transpose_forward": list(transpose), "transpose_backward": [list(transpose).index(a) for a in range(3)],
        "foreground_intensity_properties_per_channel": {
            "1": {"mean": 40.0, "std": 30.0, "percentile_00_5": -20.0, "percentile_99_5": 120.0}},
        "configurations": {configuration: {
            "data_identifier": f"nnUNetPlans_{configuration}", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": patch, "median_image_size_in_voxels": [12, 24, 24][-len(patch):],
            "spacing": spacing, "normalization_schemes": ["ZScoreNormalization", "CTNormalization"],
            "use_mask_for_norm": [False, False],
            "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": resampling,
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_seg_kwargs": {**resampling, "is_seg": True, "order": 1},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {**resampling, "order": 1},
            "architecture": {"network_class_name": network, "arch_kwargs": {
                "n_stages": 3, "features_per_stage": FEATURES, "conv_op": conv, "kernel_sizes": kernels,
                "strides": strides, **blocks, "n_conv_per_stage_decoder": [1, 1], "conv_bias": True,
                "norm_op": norm, "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
            "batch_dice": True}},
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
    }


def nnunet_checkpoint(weights: dict, plans: dict, configuration: str, mirror_axes: tuple, fold: int) -> dict:
    """The dict nnUNetTrainer.save_checkpoint writes (log values are numpy scalars, as in real runs)."""
    return {"network_weights": weights, "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.01}]},
            "grad_scaler_state": None,
            "logging": {"mean_fg_dice": [np.float64(0.5)], "ema_fg_dice": [np.float64(0.5)],
                        "dice_per_class_or_region": [[np.float64(0.4), np.float64(0.6)]],
                        "train_losses": [np.float64(-0.3)], "val_losses": [np.float32(-0.2)], "lrs": [0.01],
                        "epoch_start_timestamps": [1.0], "epoch_end_timestamps": [2.0]},
            "_best_ema": np.float64(0.5), "current_epoch": 1,
            "init_args": {"plans": plans, "configuration": configuration, "fold": fold,
                          "dataset_json": {}, "device": torch.device("cpu")},
            "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": mirror_axes}


DATASET = {"channel_names": {"0": "MRI", "1": "CT"}, "labels": {"background": 0, "a": 1, "b": 2},
           "numTraining": 2, "file_ending": ".nii.gz"}


def write_nnunet_folder(root: Path, family: str = "unet", configuration: str = "3d_fullres",
                        transpose: tuple[int, int, int] = (0, 1, 2), folds: tuple[int, ...] = (0,),
                        dataset: dict | None = None, seed: int = 0) -> Path:
    """nnUNet_results/Dataset042_Tiny/nnUNetTrainer__nnUNetPlans__<configuration> with seeded weights."""
    dataset = dataset or DATASET
    two_d = configuration == "2d"
    kernels = [k[1:] for k in KERNELS_3D] if two_d else KERNELS_3D
    strides = [s[1:] for s in STRIDES_3D] if two_d else STRIDES_3D
    nn_kernels = [[k[t] for t in transpose] for k in kernels] if not two_d else kernels
    nn_strides = [[s[t] for t in transpose] for s in strides] if not two_d else strides
    patch = [16, 16] if two_d else [8, 16, 16]
    spacing = [1.0, 1.0] if two_d else [2.0, 1.0, 1.0]
    if not two_d:
        patch, spacing = [patch[t] for t in transpose], [spacing[t] for t in transpose]
    folder = root / "Dataset042_Tiny" / f"nnUNetTrainer__nnUNetPlans__{configuration}"
    folder.mkdir(parents=True)
    plans = nnunet_plans(family, configuration, patch, spacing, nn_kernels, nn_strides, transpose)
    write_json(folder / "plans.json", plans)
    write_json(folder / "dataset.json", dataset)
    num_outputs = (len(dataset["labels"]) - 1 if any(isinstance(v, list) for v in dataset["labels"].values())
                   else len(dataset["labels"]))
    mirror = (0, 1) if two_d else (0, 1, 2)
    for fold in folds:
        weights = nnunet_weights(family, 2, num_outputs, nn_kernels, nn_strides, seed + fold)
        (folder / f"fold_{fold}").mkdir()
        torch.save(nnunet_checkpoint(weights, plans, configuration, mirror, fold),
                   folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder


def write_case(folder: Path, case_id: str = "case_000", shape: tuple[int, int, int] = (12, 24, 24)) -> None:
    """A two-channel case (MRI-like, CT-like) at spacing (2, 1, 1) mm."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    z, y, x = np.indices(shape)
    blob = ((z - 6) ** 2 / 16 + (y - 12) ** 2 / 40 + (x - 11) ** 2 / 30) < 1
    mri = (100 + 50 * blob + rng.normal(0, 5, shape)).astype(np.float32)
    ct = (-10 + 80 * blob + rng.normal(0, 3, shape)).astype(np.float32)
    geometry = Geometry(spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()),
                        size=shape[::-1])
    write_image(mri, geometry, folder / f"{case_id}_0000.nii.gz")
    write_image(ct, geometry, folder / f"{case_id}_0001.nii.gz")


def test_detects_only_nnunet_folders(tmp_path: Path) -> None:
    folder = write_nnunet_folder(tmp_path)
    assert is_nnunet_model_folder(folder)
    assert not is_nnunet_model_folder(folder / "fold_0")
    (folder / "fold_0" / "checkpoint_final.pth").rename(folder / "fold_0" / "checkpoint_final.pt")
    assert not is_nnunet_model_folder(folder)


def test_checkpoint_with_numpy_scalars_and_device_loads(tmp_path: Path) -> None:
    folder = write_nnunet_folder(tmp_path)
    checkpoint = read_nnunet_checkpoint(folder / "fold_0" / "checkpoint_final.pth")
    assert checkpoint["inference_allowed_mirroring_axes"] == (0, 1, 2)
    assert float(checkpoint["_best_ema"]) == 0.5


def test_object_outside_allowlist_is_refused_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_nnunet_folder(tmp_path)
    path = folder / "fold_0" / "checkpoint_final.pth"
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["logging"]["extra"] = fractions.Fraction(1, 3)   # any class outside the allowlist
    torch.save(checkpoint, path)
    with pytest.raises(UserError, match="outside segkit's allowlist .*fractions.Fraction"):
        read_nnunet_checkpoint(path)
    assert main(["import-nnunet", str(folder), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fractions.Fraction" in err and "allowlist" in err
    assert not (tmp_path / "out").exists()
    write_case(tmp_path / "images")
    assert main(["predict", "-i", str(tmp_path / "images"), "-o", str(tmp_path / "pred"), "-m", str(folder)]) == 2
    assert "allowlist" in capsys.readouterr().err


def test_converted_plans_follow_nnunet(tmp_path: Path) -> None:
    folder = write_nnunet_folder(tmp_path, family="resenc")
    out = convert_nnunet_model(folder, tmp_path / "segkit_model")
    plans = read_json(out / "plans.json")
    entry = plans["configurations"]["3d_fullres"]
    assert plans["canonical_orientation"] == "as_stored"
    assert plans["normalization"] == [{"scheme": "zscore", "use_nonzero_mask": False},
                                      {"scheme": "ct", "clip": [-20.0, 120.0], "mean": 40.0, "std": 30.0}]
    assert plans["label_mode"] == "softmax" and plans["num_outputs"] == 3
    assert entry["architecture"]["family"] == "resenc" and entry["architecture"]["skip_bias"] is False
    assert entry["target_spacing"] == [2.0, 1.0, 1.0] and entry["patch_size"] == [8, 16, 16]
    assert entry["mirror_axes"] == [0, 1, 2]
    checkpoint = torch.load(out / "fold_0" / "checkpoint_final.pt", weights_only=True)
    assert checkpoint["format"] == "segkit-checkpoint-1"


def test_region_dataset_becomes_sigmoid_plans(tmp_path: Path) -> None:
    dataset = {**DATASET, "labels": {"background": 0, "whole": [1, 2], "core": [2]}, "regions_class_order": [1, 2]}
    folder = write_nnunet_folder(tmp_path, dataset=dataset)
    plans = read_json(convert_nnunet_model(folder, tmp_path / "m") / "plans.json")
    assert plans["label_mode"] == "sigmoid" and plans["outputs"] == {"whole": [1, 2], "core": [2]}
    assert plans["regions_class_order"] == [1, 2] and plans["num_outputs"] == 2


def test_2d_keeps_the_slice_spacing(tmp_path: Path) -> None:
    folder = write_nnunet_folder(tmp_path, configuration="2d")
    entry = read_json(convert_nnunet_model(folder, tmp_path / "m") / "plans.json")["configurations"]["2d"]
    assert entry["spatial_dims"] == 2 and entry["slice_axis"] == 0 and entry["keep_spacing_axes"] == [0]
    assert entry["patch_size"] == [16, 16] and entry["mirror_axes"] == [0, 1]


def test_transpose_forward_is_folded_into_the_weights(tmp_path: Path) -> None:
    """nnU-Net runs M(x.transpose(t)).transpose(t^-1); the converted network must compute that on x."""
    transpose = (1, 2, 0)
    moved = write_nnunet_folder(tmp_path / "b", transpose=transpose)
    # M itself: the same checkpoint under plans that declare no transpose (network axes = array axes)
    as_is = tmp_path / "c" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (as_is / "fold_0").mkdir(parents=True)
    write_json(as_is / "plans.json", nnunet_plans("unet", "3d_fullres", [16, 16, 8], [1.0, 1.0, 2.0],
                                                  [[k[t] for t in transpose] for k in KERNELS_3D],
                                                  [[s[t] for t in transpose] for s in STRIDES_3D]))
    write_json(as_is / "dataset.json", DATASET)
    (as_is / "fold_0" / "checkpoint_final.pth").write_bytes((moved / "fold_0" / "checkpoint_final.pth").read_bytes())

    def network(model: Path) -> tuple[torch.nn.Module, dict]:
        arch = read_json(model / "plans.json")["configurations"]["3d_fullres"]["architecture"]
        net = build_network(arch, 2, 3)
        net.load_state_dict(torch.load(model / "fold_0" / "checkpoint_final.pt", weights_only=True)["network_state"])
        net.deep_supervision = False
        return net.eval(), arch

    net_m, _ = network(convert_nnunet_model(as_is, tmp_path / "mc"))
    net_b, arch_b = network(convert_nnunet_model(moved, tmp_path / "mb"))
    assert arch_b["kernel_sizes"] == KERNELS_3D and arch_b["strides"] == STRIDES_3D
    assert read_json(tmp_path / "mb" / "plans.json")["configurations"]["3d_fullres"]["patch_size"] == [8, 16, 16]
    x = torch.randn(1, 2, 8, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net_m(x.permute(0, 1, *[2 + t for t in transpose]))
        expected = expected.permute(0, 1, *[2 + transpose.index(a) for a in range(3)])
        torch.testing.assert_close(net_b(x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("family,configuration", [("unet", "3d_fullres"), ("resenc", "3d_fullres"), ("unet", "2d")])
def test_predict_from_nnunet_folder_equals_imported_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          family: str, configuration: str) -> None:
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))
    folder = write_nnunet_folder(tmp_path / "results", family=family, configuration=configuration, folds=(0, 1))
    write_case(tmp_path / "images")
    assert main(["predict", "-i", str(tmp_path / "images"), "-o", str(tmp_path / "direct"), "-m", str(folder),
                 "--precision", "fp32"]) == 0
    assert main(["import-nnunet", str(folder), str(tmp_path / "imported")]) == 0
    assert sorted(p.name for p in (tmp_path / "imported").glob("fold_*")) == ["fold_0", "fold_1"]
    assert main(["predict", "-i", str(tmp_path / "images"), "-o", str(tmp_path / "via_import"),
                 "-m", str(tmp_path / "imported"), "--precision", "fp32"]) == 0
    direct_image = read_image(tmp_path / "direct" / "case_000.nii.gz")
    direct, geometry = direct_image.array, direct_image.geometry
    imported = read_image(tmp_path / "via_import" / "case_000.nii.gz").array
    assert direct.shape == (12, 24, 24) and geometry.spacing == pytest.approx((1.0, 1.0, 2.0))
    assert set(np.unique(direct)) <= {0, 1, 2} and len(np.unique(direct)) > 1
    np.testing.assert_array_equal(direct, imported)
    assert len(list((tmp_path / "cache" / "nnunet").iterdir())) == 1   # converted into the cache once


def test_2d_preprocessing_keeps_each_case_slice_spacing(tmp_path: Path) -> None:
    folder = write_nnunet_folder(tmp_path, configuration="2d")
    plans = read_plans(convert_nnunet_model(folder, tmp_path / "m") / "plans.json")
    images = np.random.default_rng(0).normal(size=(2, 7, 20, 20)).astype(np.float32) + 5
    data, properties = preprocess_images(images, (3.3, 0.5, 0.5), plans, "2d")
    assert properties["target_spacing"] == [3.3, 1.0, 1.0]
    assert data.shape == (2, 7, 10, 10)   # slices kept, in-plane resampled 0.5 -> 1.0 mm


def test_rgb_normalisation_divides_by_255() -> None:
    images = np.array([[[[0.0, 127.5, 255.0]]]], dtype=np.float32)
    out = normalize_channels(images, np.zeros((1, 1, 3), np.int16), [{"scheme": "rgb_0_1"}])
    np.testing.assert_allclose(out[0, 0, 0], [0.0, 0.5, 1.0])


def test_nnunet_tile_weights_follow_nnunets_gaussian() -> None:
    """Filtered delta at size // 2 (nnU-Net's compute_gaussian), not the centred analytic Gaussian."""
    weights = nnunet_gaussian_map((4, 8, 8))
    assert np.unravel_index(np.argmax(weights), weights.shape) == (2, 4, 4) and weights.max() == 1.0
    delta = np.zeros((4, 8, 8))
    delta[2, 4, 4] = 1
    expected = gaussian_filter(delta, [0.5, 1.0, 1.0], 0, mode="constant", cval=0)
    np.testing.assert_allclose(weights, expected / expected.max(), rtol=1e-5)
    assert weights.min() > 0
    analytic = gaussian_importance_map((4, 8, 8))
    assert not np.allclose(weights, analytic, atol=1e-3)   # the two policies really differ


def test_imported_plans_ask_for_nnunets_inference_policy(tmp_path: Path) -> None:
    entry = read_json(convert_nnunet_model(write_nnunet_folder(tmp_path), tmp_path / "m") / "plans.json")
    assert entry["configurations"]["3d_fullres"]["inference"] == {"tile_weights": "nnunet_gaussian",
                                                                   "accumulation": "fp16", "fold_average": "logits"}


def test_logit_fold_average_differs_from_probability_average(tmp_path: Path) -> None:
    """Two folds: with fold_average 'logits' the result is softmax(mean logits), as nnU-Net ensembles folds
    (its float16 sum of the folds' float16 logits, then the float16 mean)."""
    folder = write_nnunet_folder(tmp_path / "r", folds=(0, 1))
    model = load_model(convert_nnunet_model(folder, tmp_path / "m"), device="cpu")
    data = np.random.default_rng(0).normal(size=(2, 8, 16, 16)).astype(np.float32)
    options = InferenceOptions(precision="fp32", tta=False)
    settings = window_settings(model, options)
    logits = []
    for state in model.fold_states:
        model.network.load_state_dict(state)
        logits.append(sliding_window_logits(model.network, data, 3, settings, "cpu"))
    mean = ((logits[0].half() + logits[1].half()) / 2).float()
    expected = logits_to_probabilities(mean, "softmax").numpy()
    np.testing.assert_allclose(network_probabilities(model, data, options), expected, atol=1e-5)
    mean_probabilities = ((logits_to_probabilities(logits[0], "softmax") + logits_to_probabilities(logits[1], "softmax"))
                          / 2).numpy()
    assert not np.allclose(expected, mean_probabilities, atol=1e-4)
