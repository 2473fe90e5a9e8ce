"""Shared helpers for the benchmarks against nnU-Net v2: the phantom dataset and the peer's CLI.

segkit runs in this interpreter's environment (.venv); nnU-Net v2 runs as its own CLI from
the peer environment (.bench-venv), never imported here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from segkit.jsonio import write_json
from segkit.phantom import CHANNELS, PhantomSpec, make_case, write_case

REPO = Path(__file__).resolve().parents[1]
BENCH_VENV = Path(os.environ.get("SEGKIT_BENCH_VENV", REPO / ".bench-venv"))   # e.g. a worktree uses main's
DATASET_ID = 901
DATASET_NAME = f"Dataset{DATASET_ID:03d}_Phantom"


def generate_phantom(root: Path, num_cases: int, shape: tuple[int, int, int], spacing_mode: str) -> Path:
    """Write the phantom dataset (nnU-Net v2 layout); 'varied' draws a spacing per case so resampling happens."""
    rng = np.random.default_rng(1234)
    root.mkdir(parents=True, exist_ok=True)
    for index in range(num_cases):
        if spacing_mode == "varied":
            spacing = (float(rng.uniform(2.0, 3.6)), *[float(rng.uniform(0.9, 1.3))] * 2)
        else:
            spacing = PhantomSpec.spacing
        images, label, geometry = make_case(index, PhantomSpec(shape=shape, spacing=spacing))
        write_case(root, "nnunet", index + 1, images, label, geometry)
    write_json(root / "dataset.json", {
        "name": "Phantom", "channel_names": {str(i): name for i, name in enumerate(CHANNELS)},
        "labels": {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3},
        "numTraining": num_cases, "file_ending": ".nii.gz"})
    return root


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """The phantom-dataset options both nnU-Net comparison scripts take."""
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--shape", type=int, nargs=3, default=[96, 128, 128], help="z y x")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--spacing", choices=("varied", "uniform"), default="varied")
    parser.add_argument("--keep", help="keep the work folder here instead of a temp folder")


def prepare_nnunet_dataset(args: argparse.Namespace, base: Path) -> tuple[Path, dict[str, str]]:
    """Generate the phantom, point nnU-Net's folders into base and link the dataset there."""
    dataset = generate_phantom(base / "raw" / "Phantom", args.cases, tuple(args.shape), args.spacing)
    env = nnunet_env(base)
    link_into_nnunet_raw(dataset, base)
    return dataset, env


def plan_phantom_with_nnunet(base: Path, cases: int, shape: tuple[int, int, int], processes: int = 2
                             ) -> tuple[Path, dict[str, str]]:
    """The uniform-spacing phantom in base, fingerprinted and planned by nnU-Net (untimed setup); (dataset, env)."""
    dataset = generate_phantom(base / "raw" / "Phantom", cases, shape, "uniform")
    return dataset, plan_with_nnunet(dataset, base, DATASET_NAME, processes)


def plan_with_nnunet(dataset: Path, base: Path, name: str = DATASET_NAME, processes: int = 2) -> dict[str, str]:
    """Link a raw dataset into base as nnU-Net dataset `name` (id DATASET_ID), fingerprint and plan it; the env."""
    env = nnunet_env(base)
    link_into_nnunet_raw(dataset, base, name)
    timed(["nnUNetv2_extract_fingerprint", "-d", str(DATASET_ID), "-np", str(processes)], env, "nnU-Net fingerprint")
    timed(["nnUNetv2_plan_experiment", "-d", str(DATASET_ID)], env, "nnU-Net plan")
    return env


def nnunet_env(base: Path) -> dict[str, str]:
    """Environment with nnUNet_raw/_preprocessed/_results inside base, and one thread per worker."""
    env = dict(os.environ)
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[name] = str(base / name)
        (base / name).mkdir(parents=True, exist_ok=True)
    env["PATH"] = f"{BENCH_VENV / 'bin'}:{env['PATH']}"
    env.pop("VIRTUAL_ENV", None)
    return env


def link_into_nnunet_raw(dataset: Path, base: Path, name: str = DATASET_NAME) -> Path:
    """Expose the dataset as nnUNet_raw/<name> (default Dataset901_Phantom; symlinks, no copy)."""
    target = base / "nnUNet_raw" / name
    target.mkdir(parents=True, exist_ok=True)
    for name in ("imagesTr", "labelsTr", "dataset.json"):
        if not (target / name).exists():
            (target / name).symlink_to((dataset / name).resolve())
    return target


def timed(command: list[str], env: dict[str, str] | None = None, label: str = "") -> float:
    """Run a command to completion, fail loudly on error, return wall seconds."""
    print(f"$ {' '.join(command)}", flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stdout[-4000:], file=sys.stderr)
        raise SystemExit(f"{label or command[0]} failed with exit code {result.returncode}")
    print(f"  {label}: {seconds:.1f} s", flush=True)
    return seconds


def nnunet_plans(base: Path, name: str = DATASET_NAME) -> dict:
    """nnU-Net's nnUNetPlans.json for the benchmark dataset."""
    return json.loads((base / "nnUNet_preprocessed" / name / "nnUNetPlans.json").read_text())


def segkit_command() -> list[str]:
    """How to run the segkit CLI with this interpreter."""
    return [sys.executable, "-m", "segkit"]


def machine_line() -> str:
    """One line describing the machine."""
    import platform
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


# ---------------------------------------------------------------- nnU-Net's network with segkit's twin

TRAINER_DIR = "nnUNetTrainer__nnUNetPlans__3d_fullres"

# runs in the peer venv: build nnU-Net's network from its plans, save an untrained checkpoint, export the weights
MAKE_NNUNET_CHECKPOINT = """
import json, sys, numpy as np, torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
model_dir, weights_out = sys.argv[1], sys.argv[2]
plans = json.load(open(f'{model_dir}/plans.json')); dataset_json = json.load(open(f'{model_dir}/dataset.json'))
pm = PlansManager(plans); cm = pm.get_configuration('3d_fullres')
n_in = determine_num_input_channels(pm, cm, dataset_json)
n_out = pm.get_label_manager(dataset_json).num_segmentation_heads
torch.manual_seed(0)
net = nnUNetTrainer.build_network_architecture(pm, cm, n_in, n_out, enable_deep_supervision=True)
torch.save({'network_weights': net.state_dict(), 'init_args': {'plans': plans, 'configuration': '3d_fullres', 'fold': 0,
            'dataset_json': dataset_json, 'device': torch.device('cpu')}, 'trainer_name': 'nnUNetTrainer',
            'inference_allowed_mirroring_axes': (0, 1, 2), 'current_epoch': 1}, f'{model_dir}/fold_0/checkpoint_final.pth')
np.savez(weights_out, **{k: v.numpy() for k, v in net.state_dict().items()})
print(sum(p.numel() for p in net.parameters()))
"""


def segkit_plans(peer: dict) -> dict:
    """segkit plans.json with nnU-Net's 3d_fullres choices (spacing, normalisation, patch, U-Net topology)."""
    config = peer["configurations"]["3d_fullres"]
    kwargs = config["architecture"]["arch_kwargs"]
    stages = len(kwargs["features_per_stage"])
    arch = {"family": "unet", "spatial_dims": 3, "features_per_stage": kwargs["features_per_stage"],
            "kernel_sizes": kwargs["kernel_sizes"], "strides": kwargs["strides"],
            "blocks_per_stage": kwargs["n_conv_per_stage"],
            "decoder_blocks_per_stage": kwargs["n_conv_per_stage_decoder"][: stages - 1],
            "norm": "instance", "deep_supervision": True}
    normalization = [{"scheme": "zscore", "use_nonzero_mask": bool(mask)} for mask in config["use_mask_for_norm"]]
    return {"schema_version": 1, "dataset_name": "Phantom", "num_channels": 4,
            "channel_names": ["FLAIR", "T1", "T1ce", "T2"],
            "labels": {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3}, "label_mode": "softmax",
            "outputs": {"necrosis": [1], "edema": [2], "enhancing": [3]}, "regions_class_order": None,
            "num_outputs": 4, "normalization": normalization,
            "configurations": {"3d_fullres": {
                "spatial_dims": 3, "target_spacing": config["spacing"], "patch_size": config["patch_size"],
                "median_shape": config["median_image_size_in_voxels"], "batch_size": config["batch_size"],
                "mirror_axes": [0, 1, 2], "architecture": arch, "previous_stage": None,
                "resampling": {"image_order": 3, "label": "onehot_linear", "anisotropy_threshold": 3.0}}}}


def nnunet_names(arch: dict) -> dict[str, str]:
    """segkit unet state_dict name -> nnU-Net PlainConvUNet name, for the architecture's stages."""
    names = {}
    for s, count in enumerate(arch["blocks_per_stage"]):
        for j in range(count):
            for part, ours in (("conv", "0"), ("norm", "1")):
                for kind in ("weight", "bias"):
                    names[f"encoder.{s}.{j}.{ours}.{kind}"] = f"encoder.stages.{s}.0.convs.{j}.{part}.{kind}"
    for d, count in enumerate(arch["decoder_blocks_per_stage"]):
        for kind in ("weight", "bias"):
            names[f"decoder.{d}.upsample.{kind}"] = f"decoder.transpconvs.{d}.{kind}"
            names[f"heads.{d}.{kind}"] = f"decoder.seg_layers.{d}.{kind}"
            for j in range(count):
                for part, ours in (("conv", "0"), ("norm", "1")):
                    names[f"decoder.{d}.blocks.{j}.{ours}.{kind}"] = f"decoder.stages.{d}.convs.{j}.{part}.{kind}"
    return names


def nnunet_to_segkit_state(weights: dict[str, np.ndarray], arch: dict) -> dict:
    """Map nnU-Net PlainConvUNet weights onto segkit's unet state_dict names."""
    import torch

    return {ours: torch.from_numpy(np.ascontiguousarray(weights[theirs])) for ours, theirs in nnunet_names(arch).items()}


# runs in the peer venv: copy segkit's weights (under nnU-Net's names) into nnU-Net's checkpoint, in place.
# nnU-Net's state_dict names some tensors twice (the decoder's reference to the encoder, `all_modules`
# beside `conv`/`norm`); torch.save keeps them one storage, so every name must end up written.
REPLACE_NNUNET_WEIGHTS = """
import sys, numpy as np, torch
checkpoint_file, weights_file = sys.argv[1], sys.argv[2]
checkpoint = torch.load(checkpoint_file, map_location='cpu', weights_only=False)
weights = dict(np.load(weights_file))
state = checkpoint['network_weights']
unknown = sorted(set(weights) - set(state))
if unknown:
    sys.exit(f'segkit weights nnU-Net has no place for: {unknown[:5]}')
written = set()
for key, value in weights.items():
    state[key].copy_(torch.from_numpy(value))
    written.add(state[key].untyped_storage().data_ptr())
missed = [key for key, tensor in state.items() if tensor.untyped_storage().data_ptr() not in written]
if missed:
    sys.exit(f'nnU-Net weights segkit did not write: {missed[:5]}')
torch.save(checkpoint, checkpoint_file)
"""


def write_nnunet_weights(nn_model: Path, state: dict, arch: dict, env: dict) -> None:
    """Replace the weights of nnU-Net's fold_0 checkpoint by segkit's (e.g. trained) unet state, same network."""
    weights_file = nn_model / "segkit_weights.npz"
    np.savez(weights_file, **{theirs: state[ours].detach().cpu().numpy() for ours, theirs in nnunet_names(arch).items()})
    done = subprocess.run([str(BENCH_VENV / "bin" / "python"), "-c", REPLACE_NNUNET_WEIGHTS,
                           str(nn_model / "fold_0" / "checkpoint_final.pth"), str(weights_file)],
                          capture_output=True, text=True, env=env)
    weights_file.unlink()
    if done.returncode != 0:
        raise SystemExit(f"could not write the weights into nnU-Net's checkpoint:\n{done.stderr[-3000:]}")


def narrow(features: int):
    """adjust_peer: nnU-Net's 3d_fullres with features, 2x features, ... (capped at 8x) per stage."""
    def adjust(peer: dict) -> None:
        kwargs = peer["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
        kwargs["features_per_stage"] = [min(features * 2 ** s, features * 8) for s in range(len(kwargs["features_per_stage"]))]
    return adjust


def make_models(base: Path, dataset: Path, env: dict, adjust_peer=None,
                to_segkit_plans=None, name: str = DATASET_NAME) -> tuple[Path, Path, int, dict]:
    """nnU-Net's fake trained folder and segkit's model folder with the same weights; (dirs, params, plans).

    adjust_peer(plans) may change nnU-Net's plans in place first (e.g. a smaller network);
    to_segkit_plans(peer) builds segkit's plans (default: the 4-channel phantom's); name: the nnU-Net dataset.
    """
    import torch

    from segkit.jsonio import write_json
    from segkit.networks import build_network

    peer = nnunet_plans(base, name)
    if adjust_peer is not None:
        adjust_peer(peer)
    nn_model = base / "nnUNet_results" / name / TRAINER_DIR
    (nn_model / "fold_0").mkdir(parents=True, exist_ok=True)
    (nn_model / "plans.json").write_text(json.dumps(peer, indent=2))
    shutil.copyfile(dataset / "dataset.json", nn_model / "dataset.json")
    fingerprint = base / "nnUNet_preprocessed" / name / "dataset_fingerprint.json"
    shutil.copyfile(fingerprint, nn_model / "dataset_fingerprint.json")
    weights_file = base / "nnunet_weights.npz"
    made = subprocess.run([str(BENCH_VENV / "bin" / "python"), "-c", MAKE_NNUNET_CHECKPOINT, str(nn_model),
                           str(weights_file)], capture_output=True, text=True, env=env)
    if made.returncode != 0:
        raise SystemExit(f"could not build nnU-Net's checkpoint:\n{made.stderr[-3000:]}")
    nn_params = int(made.stdout.strip().splitlines()[-1])
    plans = (to_segkit_plans or segkit_plans)(peer)
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    channels, outputs = int(plans["num_channels"]), int(plans["num_outputs"])
    network = build_network(arch, channels, outputs)
    with np.load(weights_file) as weights:
        network.load_state_dict(nnunet_to_segkit_state(dict(weights), arch))
    sk_model = base / "segkit_work" / "models" / "3d_fullres"
    write_json(sk_model / "plans.json", plans)
    shutil.copyfile(dataset / "dataset.json", sk_model / "dataset.json")
    (sk_model / "fold_0").mkdir(parents=True, exist_ok=True)
    torch.save({"format": "segkit-checkpoint-1", "network_state": network.state_dict(), "architecture": arch,
                "in_channels": channels, "num_outputs": outputs, "configuration": "3d_fullres", "plans_sha256": "",
                "epoch": 0},
               sk_model / "fold_0" / "checkpoint_final.pt")
    sk_params = sum(p.numel() for p in network.parameters())
    if sk_params != nn_params:
        raise SystemExit(f"parameter counts differ: segkit {sk_params}, nnU-Net {nn_params}")
    return nn_model, sk_model, nn_params, plans


def write_test_case(folder: Path, shape: tuple[int, int, int]) -> None:
    """One 4-channel phantom test case (same spacing as training: no resampling for either tool)."""
    from segkit.phantom import PhantomSpec, make_case, write_case

    images, _, geometry = make_case(999, PhantomSpec(shape=shape))
    write_case(folder.parent, "nnunet", 999, images, None, geometry, split="Ts")


def agreement(first: Path, second: Path) -> float:
    """Fraction of voxels with equal labels in two label files."""
    import SimpleITK as sitk

    a = sitk.GetArrayFromImage(sitk.ReadImage(str(first)))
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(second)))
    return float((a == b).mean())
