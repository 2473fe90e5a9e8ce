"""CPU prediction time of one case: `segkit predict` vs `nnUNetv2_predict -device cpu`, same network and patch.

nnU-Net plans the phantom dataset (fingerprint + plan, untimed); an untrained nnU-Net
checkpoint of its 3d_fullres U-Net is written into a fake trained-model folder. segkit gets
a model folder with the same plan (target spacing, normalisation, patch, topology) and the
*same weights* (copied from nnU-Net's state dict), so both tools run the identical network
and their label maps can be compared. Both run as CLIs in this one script, with mirroring
TTA and step 0.5 (the defaults of both), on the same test case.

    .venv/bin/python scripts/bench_predict_vs_nnunet.py --test-shape 48 96 96 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nnunet_bench_common import (  # noqa: E402
    BENCH_VENV,
    DATASET_ID,
    DATASET_NAME,
    generate_phantom,
    link_into_nnunet_raw,
    machine_line,
    nnunet_env,
    nnunet_plans,
    segkit_command,
    timed,
)

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


def nnunet_to_segkit_state(weights: dict[str, np.ndarray], arch: dict) -> dict:
    """Map nnU-Net PlainConvUNet weights onto segkit's unet state_dict names."""
    import torch

    state = {}
    for s, count in enumerate(arch["blocks_per_stage"]):
        for j in range(count):
            for part, ours in (("conv", "0"), ("norm", "1")):
                for kind in ("weight", "bias"):
                    state[f"encoder.{s}.{j}.{ours}.{kind}"] = weights[f"encoder.stages.{s}.0.convs.{j}.{part}.{kind}"]
    for d, count in enumerate(arch["decoder_blocks_per_stage"]):
        for kind in ("weight", "bias"):
            state[f"decoder.{d}.upsample.{kind}"] = weights[f"decoder.transpconvs.{d}.{kind}"]
            state[f"heads.{d}.{kind}"] = weights[f"decoder.seg_layers.{d}.{kind}"]
            for j in range(count):
                for part, ours in (("conv", "0"), ("norm", "1")):
                    state[f"decoder.{d}.blocks.{j}.{ours}.{kind}"] = weights[f"decoder.stages.{d}.convs.{j}.{part}.{kind}"]
    return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in state.items()}


def make_models(base: Path, dataset: Path, env: dict, adjust_peer=None,
                to_segkit_plans=None) -> tuple[Path, Path, int, dict]:
    """nnU-Net's fake trained folder and segkit's model folder with the same weights; (dirs, params, plans).

    adjust_peer(plans) may change nnU-Net's plans in place first (e.g. a smaller network);
    to_segkit_plans(peer) builds segkit's plans (default: the 4-channel phantom's).
    """
    import torch

    from segkit.jsonio import write_json
    from segkit.networks import build_network

    peer = nnunet_plans(base)
    if adjust_peer is not None:
        adjust_peer(peer)
    nn_model = base / "nnUNet_results" / DATASET_NAME / TRAINER_DIR
    (nn_model / "fold_0").mkdir(parents=True, exist_ok=True)
    (nn_model / "plans.json").write_text(json.dumps(peer, indent=2))
    shutil.copyfile(dataset / "dataset.json", nn_model / "dataset.json")
    fingerprint = base / "nnUNet_preprocessed" / DATASET_NAME / "dataset_fingerprint.json"
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


def main() -> None:
    """Plan with nnU-Net, build both model folders, then time both predictors on the test case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-shape", type=int, nargs=3, default=[40, 72, 72], help="training cases (z y x)")
    parser.add_argument("--train-cases", type=int, default=3)
    parser.add_argument("--test-shape", type=int, nargs=3, default=[48, 96, 96], help="the predicted case (z y x)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per tool (alternating)")
    parser.add_argument("--extra", nargs="*", default=["fp32"], help="extra segkit runs: fp32, bf16, no-tta")
    parser.add_argument("--keep", help="keep the work folder here instead of a temp folder")
    args = parser.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="segkit_bench_pred_"))
    try:
        dataset = generate_phantom(base / "raw" / "Phantom", args.train_cases, tuple(args.train_shape), "uniform")
        env = nnunet_env(base)
        link_into_nnunet_raw(dataset, base)
        timed(["nnUNetv2_extract_fingerprint", "-d", str(DATASET_ID), "-np", "2"], env, "nnU-Net fingerprint")
        timed(["nnUNetv2_plan_experiment", "-d", str(DATASET_ID)], env, "nnU-Net plan")
        nn_model, sk_model, params, plans = make_models(base, dataset, env)
        test_dir = base / "raw" / "Phantom" / "imagesTs"
        write_test_case(test_dir, tuple(args.test_shape))
        nn_cmd = ["nnUNetv2_predict", "-i", str(test_dir), "-o", "OUT", "-d", str(DATASET_ID), "-c", "3d_fullres",
                  "-f", "0", "-device", "cpu"]
        sk_cmd = segkit_command() + ["predict", "-i", str(test_dir), "-o", "OUT", "-m", str(sk_model), "--device", "cpu"]
        times: dict[str, list[float]] = {"nnU-Net": [], "segkit": []}
        for repeat in range(args.repeats):
            for name, cmd, run_env in (("nnU-Net", nn_cmd, env), ("segkit", sk_cmd, None)):
                out = base / f"pred_{name}_{repeat}"
                shutil.rmtree(out, ignore_errors=True)
                times[name].append(timed([str(out) if c == "OUT" else c for c in cmd], run_env, f"{name} predict"))
        extra_times = {}
        for extra in args.extra:
            flags = {"fp32": ["--precision", "fp32"], "bf16": ["--precision", "bf16"], "no-tta": ["--no-tta"]}[extra]
            out = base / f"pred_segkit_{extra}"
            extra_times[extra] = timed([str(out) if c == "OUT" else c for c in sk_cmd] + flags, None, f"segkit {extra}")
        config = plans["configurations"]["3d_fullres"]
        case = "phantom_999.nii.gz"
        import torch

        from segkit.inference.acceleration import resolve_precision
        print(f"\nmachine: {machine_line()} (shared with other work; load varies)")
        print(f"segkit default precision on this CPU: {resolve_precision('auto', torch.device('cpu'))} "
              f"(nnU-Net: fp32 on CPU)")
        print(f"network: nnU-Net 3d_fullres PlainConvUNet, {params / 1e6:.2f} M parameters, identical weights in both; "
              f"patch {config['patch_size']}, features {config['architecture']['features_per_stage']}")
        print(f"test case: 4 channels, shape (z,y,x) {tuple(args.test_shape)}, spacing {config['target_spacing']} "
              f"(no resampling); TTA: 8 mirrors; step 0.5")
        for name, values in times.items():
            print(f"{name} predict: " + ", ".join(f"{v:.1f} s" for v in values))
        ratio = min(times["nnU-Net"]) / min(times["segkit"])
        print(f"speed-up (best of each): {ratio:.2f}x")
        for extra, seconds in extra_times.items():
            flag = "--no-tta" if extra == "no-tta" else f"--precision {extra}"
            print(f"segkit {flag}: {seconds:.1f} s ({min(times['nnU-Net']) / seconds:.2f}x nnU-Net); "
                  f"label agreement with segkit's default run "
                  f"{agreement(base / f'pred_segkit_{extra}' / case, base / 'pred_segkit_0' / case):.4f}")
        print(f"label agreement segkit vs nnU-Net (same weights): "
              f"{agreement(base / 'pred_segkit_0' / case, base / 'pred_nnU-Net_0' / case):.4f}")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
