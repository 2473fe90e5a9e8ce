"""Acceptance benchmark for running nnU-Net v2 model folders with segkit (issue #15).

Run with the peer environment that has nnunetv2 installed (segkit itself runs from its own venv):

    /work/main/.bench-venv/bin/python scripts/bench_nnunet_import.py [--segkit-python .venv/bin/python]

For each of three nnU-Net v2 model folders -- PlainConvUNet 3d_fullres (2 folds), ResidualEncoderUNet
3d_fullres and PlainConvUNet 2d -- the script builds nnU-Net's own network class from hand-written
plans in nnU-Net's schema, trains it for a few steps on a seeded two-channel phantom (so the
outputs follow image structure), and saves it in nnU-Net's checkpoint format (the dict
nnUNetTrainer.save_checkpoint writes, numpy scalars in the log included). Test cases come at two
spacings (one equals the target spacing, one needs resampling). It then runs

    nnUNetv2_predict_from_modelfolder -i IMAGES -o OUT -m FOLDER -f ... -device cpu -npp 1 -nps 1   (TTA on)
    segkit predict -i IMAGES -o OUT -m FOLDER --precision fp32        (converts into $SEGKIT_CACHE first)
    segkit predict -i IMAGES -o OUT -m FOLDER                          (default precision)

and reports, per model, the voxel agreement and per-class Dice between nnU-Net's and segkit's fp32
label maps (acceptance: >= 99.5 % and >= 0.99) and the whole-command wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

REPO = Path(__file__).resolve().parents[1]
CHANNELS = {"0": "MRI", "1": "CT"}
LABELS = {"background": 0, "organ": 1, "lesion": 2}
CT_PROPERTIES = {"mean": 60.0, "std": 40.0, "percentile_00_5": -50.0, "percentile_99_5": 200.0, "max": 250.0,
                 "min": -80.0, "median": 60.0}
TARGET_SPACING = [2.0, 1.0, 1.0]   # (z, y, x)


def phantom_case(rng: np.random.Generator, shape: tuple[int, int, int], spacing: list[float]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Two channels (MRI-like, CT-like) and labels: an ellipsoid organ with a lesion, placed at random (in mm)."""
    zz, yy, xx = [np.arange(n) * s for n, s in zip(shape, spacing)]
    z, y, x = np.meshgrid(zz, yy, xx, indexing="ij")
    extent = [n * s for n, s in zip(shape, spacing)]
    centre = [e * rng.uniform(0.4, 0.6) for e in extent]
    radii = [e * rng.uniform(0.22, 0.3) for e in extent]
    organ = sum(((c - m) / r) ** 2 for c, m, r in zip((z, y, x), centre, radii)) < 1
    lesion_centre = [m + r * rng.uniform(-0.3, 0.3) for m, r in zip(centre, radii)]
    lesion = sum(((c - m) / (r * 0.35)) ** 2 for c, m, r in zip((z, y, x), lesion_centre, radii)) < 1
    labels = np.zeros(shape, np.uint8)
    labels[organ] = 1
    labels[organ & lesion] = 2
    body = sum(((c - e / 2) / (e * 0.48)) ** 2 for c, e in zip((y, x), extent[1:])) < 1
    mri = np.where(body, 80.0, 0.0) + 60.0 * organ + 50.0 * (labels == 2) + rng.normal(0, 8, shape) * body
    ct = np.where(body, 10.0, -80.0) + 70.0 * organ - 40.0 * (labels == 2) + rng.normal(0, 6, shape)
    return np.stack([mri, ct]).astype(np.float32), labels


def write_nifti(array: np.ndarray, spacing: list[float], path: Path) -> None:
    """A (z, y, x) array as NIfTI with (z, y, x) spacing."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing([float(s) for s in spacing[::-1]])
    sitk.WriteImage(image, str(path))


def normalise(images: np.ndarray) -> np.ndarray:
    """nnU-Net's ZScoreNormalization (channel 0, no mask) and CTNormalization (channel 1) for the training crops."""
    out = images.copy()
    out[0] = (out[0] - out[0].mean()) / max(out[0].std(), 1e-8)
    out[1] = (np.clip(out[1], CT_PROPERTIES["percentile_00_5"], CT_PROPERTIES["percentile_99_5"])
              - CT_PROPERTIES["mean"]) / CT_PROPERTIES["std"]
    return out


def plans_for(kind: str) -> tuple[dict, str]:
    """nnU-Net v2 plans.json (one configuration) and the configuration name for a benchmark model."""
    two_d = kind == "2d"
    dims = 2 if two_d else 3
    kernels = [[3, 3]] * 4 if two_d else [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]
    strides = [[1, 1], [2, 2], [2, 2], [2, 2]] if two_d else [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
    patch = [64, 64] if two_d else [16, 48, 48]
    features = [8, 16, 32, 64]
    if kind == "resenc":
        network = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
        blocks = {"n_blocks_per_stage": [1, 2, 2, 2]}
    else:
        network = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
        blocks = {"n_conv_per_stage": [2, 2, 2, 2]}
    resampling = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    configuration = "2d" if two_d else "3d_fullres"
    plans = {
        "dataset_name": "Dataset777_Phantom", "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": TARGET_SPACING, "original_median_shape_after_transp": [32, 64, 64],
        "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {**CT_PROPERTIES}, "1": CT_PROPERTIES},
        "configurations": {configuration: {
            "data_identifier": f"nnUNetPlans_{configuration}", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": patch, "median_image_size_in_voxels": [32, 64, 64][-dims:],
            "spacing": TARGET_SPACING[-dims:], "normalization_schemes": ["ZScoreNormalization", "CTNormalization"],
            "use_mask_for_norm": [False, False],
            "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": resampling,
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_seg_kwargs": {**resampling, "is_seg": True, "order": 1},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {**resampling, "order": 1},
            "architecture": {"network_class_name": network, "arch_kwargs": {
                "n_stages": 4, "features_per_stage": features,
                "conv_op": f"torch.nn.modules.conv.Conv{dims}d", "kernel_sizes": kernels, "strides": strides,
                **blocks, "n_conv_per_stage_decoder": [1, 1, 1], "conv_bias": True,
                "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dims}d",
                "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
            "batch_dice": True}},
    }
    return plans, configuration


def train_network(plans: dict, configuration: str, train: list, seed: int, steps: int) -> torch.nn.Module:
    """nnU-Net's own network class from the plans, He-initialised (seeded) and trained briefly with CE."""
    from dynamic_network_architectures.initialization.weight_init import InitWeights_He
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    config = plans["configurations"][configuration]
    arch = config["architecture"]
    network = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                     2, len(LABELS), deep_supervision=False)
    network.apply(InitWeights_He(1e-2))
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-3)
    patch = config["patch_size"]
    network.train()
    for _ in range(steps):
        images, labels = train[rng.integers(len(train))]
        if len(patch) == 2:
            z = rng.integers(images.shape[1])
            images, labels = images[:, z], labels[z]
        starts = [rng.integers(0, max(1, n - p) + 1) for n, p in zip(labels.shape, patch)]
        region = tuple(slice(s, s + p) for s, p in zip(starts, patch))
        x = torch.from_numpy(np.ascontiguousarray(images[(slice(None),) + region]))[None]
        y = torch.from_numpy(labels[region].astype(np.int64))[None]
        pad = [v for n, p in zip(reversed(y.shape[1:]), reversed(patch)) for v in (0, p - n)]
        x, y = torch.nn.functional.pad(x, pad), torch.nn.functional.pad(y, pad)
        loss = torch.nn.functional.cross_entropy(network(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return network.eval()


def save_nnunet_checkpoint(network: torch.nn.Module, plans: dict, configuration: str, dataset: dict, fold: int,
                           path: Path) -> None:
    """The dict nnUNetTrainer.save_checkpoint writes (keys and value types as in a real run)."""
    mirror = (0, 1) if configuration == "2d" else (0, 1, 2)
    checkpoint = {
        "network_weights": network.state_dict(),
        "optimizer_state": torch.optim.SGD(network.parameters(), lr=1e-2, momentum=0.99, nesterov=True).state_dict(),
        "grad_scaler_state": None,
        "logging": {"mean_fg_dice": [np.float64(0.9)], "ema_fg_dice": [np.float64(0.9)],
                    "dice_per_class_or_region": [[np.float64(0.9), np.float64(0.8)]],
                    "train_losses": [np.float64(-0.8)], "val_losses": [np.float64(-0.7)], "lrs": [0.01],
                    "epoch_start_timestamps": [time.time()], "epoch_end_timestamps": [time.time()]},
        "_best_ema": np.float64(0.9), "current_epoch": 1,
        "init_args": {"plans": plans, "configuration": configuration, "fold": fold, "dataset_json": dataset,
                      "device": torch.device("cpu")},
        "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": mirror,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)


def build_model_folder(root: Path, kind: str, folds: list[int], train: list, steps: int) -> Path:
    """nnUNet_results/Dataset777_Phantom/nnUNetTrainer__nnUNetPlans__<config> with trained folds."""
    plans, configuration = plans_for(kind)
    dataset = {"channel_names": CHANNELS, "labels": LABELS, "numTraining": len(train), "file_ending": ".nii.gz"}
    folder = root / kind / "Dataset777_Phantom" / f"nnUNetTrainer__nnUNetPlans__{configuration}"
    if all((folder / f"fold_{f}" / "checkpoint_final.pth").is_file() for f in folds):
        return folder   # built by an earlier run in the same --work folder (same seeds)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    for fold in folds:
        network = train_network(plans, configuration, train, seed=fold, steps=steps)
        save_nnunet_checkpoint(network, plans, configuration, dataset, fold,
                               folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder


def timed(command: list[str], env: dict) -> float:
    """Run a command (raise on failure) and return its wall time in seconds."""
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return time.perf_counter() - start


def compare(reference: Path, candidate: Path) -> dict:
    """Voxel agreement and per-class Dice between two folders of label maps (same case names)."""
    equal = total = 0
    overlap: dict[int, list[int]] = {}
    for path in sorted(reference.glob("*.nii.gz")):
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(candidate / path.name)))
        if a.shape != b.shape:
            raise RuntimeError(f"{path.name}: shapes differ {a.shape} vs {b.shape}")
        equal += int((a == b).sum())
        total += a.size
        for value in range(1, len(LABELS)):
            counts = overlap.setdefault(value, [0, 0])
            counts[0] += 2 * int(((a == value) & (b == value)).sum())
            counts[1] += int((a == value).sum() + (b == value).sum())
    return {"agreement": equal / total,
            "dice": {str(v): (c[0] / c[1] if c[1] else 1.0) for v, c in overlap.items()},
            "foreground_voxels": {str(v): c[1] // 2 for v, c in overlap.items()}}


def main() -> int:
    """Build the three model folders, predict with both tools, print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--segkit-python", default=str(REPO / ".venv" / "bin" / "python"))
    parser.add_argument("--steps", type=int, default=40, help="training steps per fold (default 40)")
    parser.add_argument("--cases", type=int, default=2, help="test cases (default 2)")
    parser.add_argument("--models", nargs="+", default=["plain3d", "resenc", "2d"])
    parser.add_argument("--output", type=Path, help="JSON file for the results")
    parser.add_argument("--work", type=Path, help="keep the work folder here (default: a temp folder); model folders "
                                                  "already built there are reused")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_nnunet_import_"))
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    train = [normalise_pair(phantom_case(rng, (32, 64, 64), TARGET_SPACING)) for _ in range(4)]
    images = work / "imagesTs"
    images.mkdir(exist_ok=True)
    for index in range(args.cases):
        # every other case at a spacing that needs resampling to the target (0.8 -> 1.0 in-plane, 2.5 -> 2.0 in z)
        spacing = TARGET_SPACING if index % 2 == 0 else [2.5, 0.8, 0.8]
        shape = (32, 64, 64) if index % 2 == 0 else (26, 80, 80)
        case, _ = phantom_case(rng, shape, spacing)
        for channel in range(2):
            write_nifti(case[channel], spacing, images / f"case_{index:03d}_{channel:04d}.nii.gz")
    nnunet_bin = Path(sys.executable).parent
    env = {**os.environ, "nnUNet_raw": str(work / "raw"), "nnUNet_preprocessed": str(work / "pre"),
           "nnUNet_results": str(work / "results"), "SEGKIT_CACHE": str(work / "segkit_cache"),
           "PYTHONPATH": str(REPO)}
    folds = {"plain3d": [0, 1], "resenc": [0], "2d": [0]}
    kinds = {"plain3d": "3d", "resenc": "resenc", "2d": "2d"}
    results = {"machine": f"{os.cpu_count()} CPU cores (shared with other jobs: under load)",
               "torch": torch.__version__, "models": {}}
    for model in args.models:
        for name in ("nnunet", "segkit_fp32", "segkit_default"):
            shutil.rmtree(work / "predictions" / model / name, ignore_errors=True)
        folder = build_model_folder(work / "results", kinds[model], folds[model], train, args.steps)
        fold_args = [str(f) for f in folds[model]]
        out = {name: work / "predictions" / model / name for name in ("nnunet", "segkit_fp32", "segkit_default")}
        t_nnunet = timed([str(nnunet_bin / "nnUNetv2_predict_from_modelfolder"), "-i", str(images), "-o",
                          str(out["nnunet"]), "-m", str(folder), "-f", *fold_args, "-device", "cpu", "-npp", "1",
                          "-nps", "1", "--disable_progress_bar"], env)
        segkit = [args.segkit_python, "-m", "segkit", "predict", "-i", str(images), "-m", str(folder), "-f", *fold_args]
        # the first segkit run converts the folder into $SEGKIT_CACHE (part of its whole-command time)
        t_fp32 = timed(segkit + ["-o", str(out["segkit_fp32"]), "--precision", "fp32"], env)
        t_default = timed(segkit + ["-o", str(out["segkit_default"])], env)
        entry = {"folds": folds[model], "nnunet_seconds": t_nnunet, "segkit_fp32_seconds_incl_conversion": t_fp32,
                 "segkit_default_seconds": t_default,
                 "time_ratio_fp32": t_fp32 / t_nnunet, "time_ratio_default": t_default / t_nnunet,
                 "fp32": compare(out["nnunet"], out["segkit_fp32"]),
                 "default_precision": compare(out["nnunet"], out["segkit_default"])}
        entry["passes"] = entry["fp32"]["agreement"] >= 0.995 and min(entry["fp32"]["dice"].values()) >= 0.99
        results["models"][model] = entry
        print(json.dumps({model: entry}, indent=1), flush=True)
    results["all_pass"] = all(e["passes"] for e in results["models"].values())
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"all pass: {results['all_pass']}  (work folder {work})")
    return 0 if results["all_pass"] else 1


def normalise_pair(case: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A training case with nnU-Net's normalisation applied to its images."""
    images, labels = case
    return normalise(images), labels


if __name__ == "__main__":
    sys.exit(main())
