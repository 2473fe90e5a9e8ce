"""Real-volume `segkit predict` with every backend in one run, nnUNetv2_predict as reference in the same run.

The setup of bench_predict_vs_nnunet.py: nnU-Net v2 plans the phantom dataset; its 3d_fullres
PlainConvUNet (16.47 M parameters at the default shapes) is built in both tools with the *same
weights*, first trained for --train-steps seeded Adam steps (on half-size patches) of segkit's
preprocessing of a training case (so the label maps have real boundaries, not the near-ties of an untrained network;
the trained weights go into nnU-Net's checkpoint too). segkit's folder is exported with
`segkit export-model --format onnx`; for OpenVINO int8 that ONNX network is quantised by NNCF
(post-training, calibrated on --calibration-patches random patches of the *training* cases,
preprocessed; never the benchmark case). Every run predicts the same test case as a CLI
in its own process (start-up, reading and writing included) with mirroring TTA and step 0.5:

- `nnUNetv2_predict -device cpu` (fp32; the reference, run in the same script);
- `segkit predict --backend torch --precision fp32` and `--precision bf16` (bf16 is oneDNN's
  emulation where the CPU has no AVX512-BF16/AMX: the table says so);
- `segkit predict -m model_onnx.zip --backend onnxruntime` (fp32);
- `segkit predict -m model_onnx.zip --backend openvino --precision fp32`, and `--precision bf16`
  unless OpenVINO ignores the hint on this CPU (checked on the compiled network's runtime
  precisions; emulated where OPTIMIZATION_CAPABILITIES lacks BF16);
- `segkit predict -m <int8 folder> --backend openvino` (the NNCF-quantised network);
- with --imported: `segkit predict -m nnunet_onnx.zip --backend onnxruntime`, the nnU-Net folder
  exported by `segkit export-model <nnU-Net folder> --format onnx`.

--volume colin27 runs the same protocol on a real image: the test case is Colin27's T1 (`ch2.nii.gz`,
Debian's mricron-data) resampled to --spacing mm (default 3: 60 x 72 x 60, 259,200 voxels, one
channel) by check_backend_families.resampled_image, the volume of the family check; the truth for
Dice is the AAL atlas on it, merged into cortex / cerebellum / deep grey (check_backend_families).
nnU-Net fingerprints and plans the training set, realdata.py's four Colin27 training subjects
(seeded smooth deformations of the head and the skull-stripped brain, two mirrored, two with a bias
field; AAL carried through each deformation) at the same spacing, so neither tool resamples the test
case. nnU-Net's planner picks another patch and topology for that one-channel isotropic dataset; the
script records its choice (`nnunet_planned`) and forces ISSUE_NETWORK, nnU-Net's own 3d_fullres plan
for the phantom (patch 40 x 80 x 80, 5 stages, 32-320 features: 16.47 M parameters), into both
tools' plans. The network trains on every training subject in turn (the phantom: its first case).

Before the timed runs one untimed warm-up imports each tool's libraries (disk cache). Per run:
wall seconds, peak PSS summed over the process tree (scripts/process_memory.py), the voxels
agreeing with segkit torch fp32 and with nnU-Net, and Dice of each class against the truth (the
phantom's true label map; the atlas on Colin27), with its difference to torch fp32. A reduced precision "holds" when it meets
ACCURACY_RULE below. In-process, the network's logits on the preprocessed case (sliding window, no
TTA) give the largest logit difference of each ONNX network against torch fp32. Results: printed,
as JSON (--json) and as a markdown table (--markdown).

    SEGKIT_BENCH_VENV=.bench-venv python scripts/bench_backends.py --json docs/benchmarks/backends.json \\
        --markdown docs/benchmarks/backends_table.md
    SEGKIT_BENCH_VENV=.bench-venv python scripts/bench_backends.py --volume colin27 \\
        --json docs/benchmarks/backends_colin27.json --markdown docs/benchmarks/backends_colin27_table.md
    python scripts/bench_backends.py --quick      # every row on a narrowed network and a one-tile case (minutes)
    python scripts/bench_backends.py --volume colin27 --quick    # the same on Colin27 at 6 mm
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
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nnunet_bench_common import (  # noqa: E402
    BENCH_VENV,
    DATASET_ID,
    DATASET_NAME,
    machine_line,
    make_models,
    narrow,
    plan_phantom_with_nnunet,
    plan_with_nnunet,
    segkit_command,
    segkit_plans,
    write_nnunet_weights,
    write_test_case,
)
from process_memory import measured  # noqa: E402

CASE = "phantom_999"
CLASSES = {"necrosis": 1, "edema": 2, "enhancing": 3}
# --volume colin27: Colin27's T1 at --spacing (check_backend_families' volume), truth: the AAL atlas merged into
# check_backend_families.ATLAS_CLASSES (in this order)
REAL_CASE = "colin27"
REAL_CLASSES = {"cortex": 1, "cerebellum": 2, "deep_grey": 3}
REAL_DATASET = f"Dataset{DATASET_ID:03d}_RealBrain"
# nnU-Net's own 3d_fullres plan for the phantom (3 x 1.2 x 1.2 mm, 4 channels): the issue's 16.47 M-parameter
# PlainConvUNet. For the real dataset (one channel, isotropic) nnU-Net plans another patch and topology; the
# script records that plan and forces this one, so both volumes time the same network.
ISSUE_NETWORK = {"patch_size": [40, 80, 80], "n_stages": 5, "features_per_stage": [32, 64, 128, 256, 320],
                 "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
                 "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
                 "n_conv_per_stage": [2, 2, 2, 2, 2], "n_conv_per_stage_decoder": [2, 2, 2, 2]}
# a reduced precision (torch bf16, OpenVINO bf16 / int8) "holds" when its label map, with TTA, agrees with
# torch fp32's on this share of the voxels and no class's Dice against the truth moves by more than this
ACCURACY_RULE = {"min_agreement": 0.995, "max_abs_dice_difference": 0.01}
REFERENCE = "segkit torch fp32"
PEER = "nnUNetv2_predict (fp32)"
QUICK = {"train_shape": [32, 56, 56], "train_cases": 2, "test_shape": [32, 56, 56], "spacing": 6.0, "features": 4,
         "train_steps": 2, "calibration_patches": 2}


def accuracy_holds(agreement_value: float, dice_differences: dict[str, float]) -> bool:
    """ACCURACY_RULE: enough voxels agree with torch fp32 and no class's Dice moved too far."""
    return (agreement_value >= ACCURACY_RULE["min_agreement"]
            and all(abs(d) <= ACCURACY_RULE["max_abs_dice_difference"] for d in dice_differences.values()))


def read_labels(path: Path) -> np.ndarray:
    """A label map as a (z, y, x) array."""
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def dice_per_class(labels: np.ndarray, truth: np.ndarray, classes: dict[str, int] = CLASSES) -> dict[str, float]:
    """Dice of each class (default the phantom's; 1.0 where both maps lack it)."""
    result = {}
    for name, value in classes.items():
        a, b = labels == value, truth == value
        total = int(a.sum() + b.sum())
        result[name] = 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total
    return result


def build_real_dataset(root: Path, spacing_mm: float) -> Path:
    """The real training set: realdata's Colin27 training subjects (seeded deformations) at spacing_mm, 4 classes.

    realdata.TRAIN_SUBJECTS (head and skull-stripped, two mirrored, two with a bias field), labelled with the
    AAL atlas carried through each deformation and merged as check_backend_families.ATLAS_CLASSES.
    The benchmark's test volume (write_real_case) is the undeformed head, never trained on.
    """
    import realdata
    from check_backend_families import ATLAS_CLASSES

    classes = dict(zip(REAL_CLASSES, ATLAS_CLASSES))
    for index, (case_id, source, mirror, bias) in enumerate(realdata.TRAIN_SUBJECTS):
        realdata.build_training_subject(case_id, source, mirror, bias, index, root, classes, spacing_mm)
    realdata._write_dataset_json(root, "RealBrainBackends", "T1", list(REAL_CLASSES), len(realdata.TRAIN_SUBJECTS))
    return root


def write_real_case(folder: Path, spacing_mm: float) -> np.ndarray:
    """Colin27's T1 at spacing_mm (check_backend_families' volume, raw intensities) as a test case; its AAL truth."""
    from check_backend_families import ATLAS, DEFAULT_IMAGE, atlas_labels, resampled_image

    from segkit.io.image import write_image

    data, geometry = resampled_image(DEFAULT_IMAGE, spacing_mm)
    folder.mkdir(parents=True, exist_ok=True)
    write_image(data[0], geometry, folder / f"{REAL_CASE}_0000.nii.gz")
    return atlas_labels(ATLAS, data.shape[1:])


def force_issue_network(peer: dict) -> dict:
    """Put ISSUE_NETWORK into nnU-Net's 3d_fullres plan in place; what nnU-Net had planned (patch, topology)."""
    config = peer["configurations"]["3d_fullres"]
    kwargs = config["architecture"]["arch_kwargs"]
    planned = {"patch_size": config["patch_size"], **{k: kwargs[k] for k in ISSUE_NETWORK if k != "patch_size"}}
    config["patch_size"] = list(ISSUE_NETWORK["patch_size"])
    kwargs.update({k: v for k, v in ISSUE_NETWORK.items() if k != "patch_size"})
    return planned


def real_segkit_plans(peer: dict) -> dict:
    """segkit plans with nnU-Net's choices for the one-channel T1 dataset and its four classes."""
    plans = segkit_plans(peer)
    plans.update(dataset_name="RealBrainBackends", num_channels=1, channel_names=["T1"],
                 labels={"background": 0, **REAL_CLASSES}, outputs={name: [v] for name, v in REAL_CLASSES.items()},
                 num_outputs=len(REAL_CLASSES) + 1, normalization=plans["normalization"][:1])
    return plans


def training_cases(dataset: Path, plans: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """segkit's preprocessing of the dataset's training cases: (image (C, z, y, x), label (z, y, x) int64)."""
    from segkit.io.image import read_image
    from segkit.plans import Plans
    from segkit.preprocessing.pipeline import preprocess_arrays

    view = Plans.from_json(plans)
    cases = []
    for label_file in sorted((dataset / "labelsTr").glob("*.nii.gz")):
        case = label_file.name[: -len(".nii.gz")]
        channels = [read_image(p, np.float32) for p in sorted((dataset / "imagesTr").glob(f"{case}_*.nii.gz"))]
        label = read_image(label_file, np.float32).array
        geometry = channels[0].geometry
        data, seg, _ = preprocess_arrays(np.stack([c.array for c in channels]), label, geometry.array_spacing, view,
                                         "3d_fullres", direction=geometry.direction)
        cases.append((data.astype(np.float32), np.maximum(seg, 0).astype(np.int64)))   # -1: outside the mask
    return cases


def training_patch(patch: list[int], strides: list[list[int]]) -> list[int]:
    """About half the inference patch per axis (a multiple of the network's total stride, at least twice it): cheap steps."""
    total = np.prod(np.array(strides), axis=0)
    return [max(2 * int(t), int(p // 2 // t * t)) for p, t in zip(patch, total)]


def train_model(sk_model: Path, nn_model: Path, cases: list, patch: list[int], steps: int, env: dict) -> float:
    """Train segkit's network (check_backend_families.train_on_cases, step i on cases[i % n]); both tools get the weights.

    The steps use training_patch(patch): the network is fully convolutional, and a quarter of the
    voxels per step buys more steps in the same time.
    """
    import torch
    from check_backend_families import train_on_cases

    from segkit.networks import build_network

    checkpoint_file = sk_model / "fold_0" / "checkpoint_final.pt"
    checkpoint = torch.load(checkpoint_file, map_location="cpu", weights_only=False)
    network = build_network(checkpoint["architecture"], checkpoint["in_channels"], checkpoint["num_outputs"])
    network.load_state_dict(checkpoint["network_state"])
    torch.manual_seed(0)
    loss = train_on_cases(network, cases, training_patch(patch, checkpoint["architecture"]["strides"]), steps, "unet")
    checkpoint["network_state"] = network.state_dict()
    checkpoint["epoch"] = 1
    torch.save(checkpoint, checkpoint_file)
    write_nnunet_weights(nn_model, network.state_dict(), checkpoint["architecture"], env)
    return loss


def calibration_patches(cases: list, patch: list[int], count: int) -> list[np.ndarray]:
    """count seeded random (1, C, *patch) crops of the preprocessed training cases (zero-padded where smaller)."""
    rng = np.random.default_rng(0)
    patches = []
    for index in range(count):
        image = cases[index % len(cases)][0]
        grow = [(0, max(0, p - n)) for n, p in zip(image.shape[1:], patch)]
        image = np.pad(image, [(0, 0), *grow])
        start = [int(rng.integers(0, n - p + 1)) for n, p in zip(image.shape[1:], patch)]
        crop = image[(slice(None), *(slice(s, s + p) for s, p in zip(start, patch)))]
        patches.append(np.ascontiguousarray(crop[None], dtype=np.float32))
    return patches


def quantised_folder(onnx_dir: Path, samples: list[np.ndarray], target: Path) -> dict:
    """A copy of the ONNX model folder whose networks NNCF quantised to int8 (post-training, calibrated on samples)."""
    import nncf
    import onnx

    from segkit.models.onnx import INPUT_NAME, NETWORK_FILE

    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(onnx_dir, target)
    start = time.perf_counter()
    for network_file in sorted(target.glob(f"fold_*/{NETWORK_FILE}")):
        model = onnx.load(str(network_file))
        quantised = nncf.quantize(model, nncf.Dataset(samples, lambda x: {INPUT_NAME: x}), subset_size=len(samples))
        onnx.save(quantised, str(network_file))
    return {"seconds": round(time.perf_counter() - start, 1), "nncf": nncf.__version__, "patches": len(samples),
            "patch_shape": list(samples[0].shape)}


def openvino_bf16(network_file: Path) -> str:
    """What OpenVINO's bf16 hint does here: 'hardware', 'emulated' (bf16 kernels without BF16 capability) or 'ignored'."""
    import openvino as ov

    core = ov.Core()
    hardware = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    compiled = core.compile_model(core.read_model(str(network_file)), "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
    precisions = {str(op.get_rt_info()["runtimePrecision"].astype(str)) for op in compiled.get_runtime_model().get_ops()
                  if "runtimePrecision" in op.get_rt_info()}
    if "bf16" not in precisions:
        return "ignored"
    return "hardware" if hardware else "emulated"


def logit_differences(model_dir: Path, onnx_dirs: dict[str, tuple[Path, str]], test_dir: Path, case: str) -> dict:
    """Largest |logit| difference of each ONNX network vs torch fp32 on the preprocessed test case (no TTA)."""
    from segkit.inference.memory_backoff import window_logits
    from segkit.inference.model import load_model
    from segkit.inference.predictor import InferenceOptions, window_settings
    from segkit.io.image import read_image
    from segkit.preprocessing.pipeline import preprocess_images

    reference = load_model(model_dir, device="cpu", backend="torch", precision="fp32")
    channels = [read_image(path, np.float32) for path in sorted(test_dir.glob(f"{case}_*.nii.gz"))]
    images, geometry = np.stack([c.array for c in channels]), channels[0].geometry
    data, _ = preprocess_images(images, geometry.array_spacing, reference.plans, reference.configuration,
                                direction=geometry.direction)
    options = InferenceOptions(tta=False, precision="fp32")
    expected = window_logits(reference, data, window_settings(reference, options))
    result = {}
    for name, (onnx_dir, backend) in onnx_dirs.items():
        model = load_model(onnx_dir, device="cpu", backend=backend, precision="fp32")
        logits = window_logits(model, data, window_settings(model, options))
        result[name] = {"max_abs_logit_difference": float((logits - expected).abs().max()),
                        "largest_logit": float(expected.abs().max()),
                        "label_agreement_no_tta": float((logits.argmax(0) == expected.argmax(0)).float().mean())}
        print(f"  {name}: largest logit difference {result[name]['max_abs_logit_difference']:.3g} "
              f"(logits up to {result[name]['largest_logit']:.3g})", flush=True)
        del logits
    return result


def warm_up(env: dict, nn_env: dict) -> None:
    """Import each tool's libraries once, untimed, so the first timed run does not pay for a cold disk cache."""
    subprocess.run([sys.executable, "-c", "import torch, onnxruntime, openvino, SimpleITK, segkit.cli"], env=env,
                   check=True)
    subprocess.run([str(BENCH_VENV / "bin" / "python"), "-c", "import nnunetv2.inference.predict_from_raw_data"],
                   env=nn_env, check=True)


def markdown_table(record: dict) -> str:
    """The results as a markdown table with its conditions."""
    classes = record["classes"]
    rows = ["| run | arithmetic | time (s) | peak PSS (MiB) | peak anonymous PSS (MiB) | voxels agreeing with "
            f"segkit torch fp32 | with nnUNetv2_predict | Dice vs {record['truth']} ({' / '.join(classes)}) | "
            "largest Dice change vs torch fp32 | accuracy holds |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, row in record["runs"].items():
        if "not_run" in row:
            rows.append(f"| {name} | {row['arithmetic']} | not run: {row['not_run']} | | | | | | | |")
            continue
        dice = " / ".join(f"{row['dice'][c]:.4f}" for c in classes)
        change = max(abs(d) for d in row["dice_difference"].values())
        holds = {True: "yes", False: "**no**", None: "--", "reference": "(reference)", "peer": "(peer)"}[
            row.get("accuracy_holds")]
        rows.append(f"| {name} | {row['arithmetic']} | {min(row['seconds']):.1f} | {max(row['peak_pss_mib']):.0f} | "
                    f"{max(row['peak_pss_anon_mib']):.0f} | {row['agreement_with_torch_fp32']:.4%} | "
                    f"{row['agreement_with_nnunet']:.4%} | {dice} | {change:.4f} | {holds} |")
    logits = "; ".join(f"{name} {v['max_abs_logit_difference']:.3g}" for name, v in record["logits_no_tta"].items())
    rule = ACCURACY_RULE
    notes = [f"`{' '.join(record['command'])}` ({record['date']}, {record['machine']}, {record['threads']} threads, "
             f"load average {record['loadavg']['before'][0]:.1f} before / {record['loadavg']['after'][0]:.1f} after; "
             f"one untimed warm-up import per tool, {record['repeats']} timed round(s), the fastest shown).",
             f"Network: {record['network']}, patch {record['patch_size']}, trained {record['train_steps']} steps "
             f"(last loss {record['train_loss']}) on {record['training']}; test case: {record['volume']}, "
             f"{record['test_shape']}, with mirroring TTA, step 0.5.",
             f"int8: NNCF {record['int8']['nncf']} post-training quantisation on {record['int8']['patches']} "
             f"training patches ({record['int8']['seconds']} s). Accuracy holds: >= {rule['min_agreement']:.1%} of "
             f"the voxels agree with torch fp32 and every class's Dice within {rule['max_abs_dice_difference']} "
             f"of torch fp32's. Largest logit difference vs torch fp32 (no TTA): {logits}.",
             f"`export-model --format onnx`: {record['export']['seconds']} s, peak PSS "
             f"{record['export']['peak_pss_mib']} MiB."]
    return "\n".join(rows) + "\n\n" + "\n".join(notes) + "\n"


def volume_line(args: argparse.Namespace, truth: np.ndarray) -> str:
    """What the test case is, for the table."""
    voxels = f"{truth.size:,} voxels"
    if args.volume == "colin27":
        return (f"Colin27 T1 (ch2.nii.gz, mricron-data) resampled to {args.spacing:g} mm, {voxels}, one channel; "
                "Dice against the AAL atlas on it (merged: cortex / cerebellum / deep grey)")
    return f"the phantom's 4-channel case (synthetic), {voxels}; Dice against its true label map"


def main() -> None:
    """Plan with nnU-Net, build, train and export the models, then run every backend on the test case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"every row on a small case and a narrowed network, to test the script ({QUICK})")
    parser.add_argument("--volume", choices=("phantom", "colin27"), default="phantom",
                        help="the test case: the phantom's 4-channel case (synthetic), or Colin27's real T1 at "
                             "--spacing, trained on realdata's deformed Colin27 subjects, with nnU-Net's phantom "
                             "network forced (ISSUE_NETWORK)")
    parser.add_argument("--spacing", type=float, default=3.0,
                        help="--volume colin27: mm of the test volume and the training subjects (3: 60 x 72 x 60)")
    parser.add_argument("--train-shape", type=int, nargs=3, default=[40, 72, 72], help="phantom training cases")
    parser.add_argument("--train-cases", type=int, default=3, help="phantom training cases (colin27: all four)")
    parser.add_argument("--test-shape", type=int, nargs=3, default=[48, 96, 96], help="the phantom test case")
    parser.add_argument("--features", type=int, help="narrow the U-Net to this first-stage width (default: nnU-Net's)")
    parser.add_argument("--train-steps", type=int, default=30, help="seeded Adam steps before the runs (0: untrained)")
    parser.add_argument("--calibration-patches", type=int, default=12, help="training patches NNCF calibrates int8 on")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads of every run")
    parser.add_argument("--imported", action="store_true", help="also run the nnU-Net folder exported to ONNX (ORT)")
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds (runs alternate within a round)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--markdown", help="write the table here")
    parser.add_argument("--keep", help="keep the work folder here instead of a temp folder")
    args = parser.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    import torch

    from segkit.inference.acceleration import cpu_has_fast_bf16
    from segkit.models.onnx import NETWORK_FILE
    from segkit.models.resolve import package_choice

    torch.set_num_threads(args.threads)   # this process's training, calibration and logits: the runs' thread count
    started = time.perf_counter()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="segkit_bench_backends_"))
    base.mkdir(parents=True, exist_ok=True)
    base = base.resolve()
    try:
        real = args.volume == "colin27"
        planned: dict = {}
        if real:
            dataset = build_real_dataset(base / "raw" / "RealBrain", args.spacing)
            test_dir, case, classes = base / "raw" / "RealBrain" / "imagesTs", REAL_CASE, REAL_CLASSES
            truth = write_real_case(test_dir, args.spacing)
            nn_env = plan_with_nnunet(dataset, base, REAL_DATASET)
        else:
            dataset, nn_env = plan_phantom_with_nnunet(base, args.train_cases, tuple(args.train_shape))
            test_dir, case, classes = base / "raw" / "Phantom" / "imagesTs", CASE, CLASSES
            write_test_case(test_dir, tuple(args.test_shape))
            from segkit.phantom import PhantomSpec, make_case

            truth = make_case(999, PhantomSpec(shape=tuple(args.test_shape)))[1]
        threads = str(args.threads)
        nn_env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}

        def adjust(peer: dict) -> None:
            """The real dataset's plan gets the issue's network; --features narrows it."""
            if real:
                planned.update(force_issue_network(peer))
            if args.features:
                narrow(args.features)(peer)

        nn_model, sk_model, params, plans = make_models(
            base, dataset, nn_env, adjust, real_segkit_plans if real else None, REAL_DATASET if real else DATASET_NAME)
        patch = plans["configurations"]["3d_fullres"]["patch_size"]
        # the phantom trains on its first case (as measured before); the real volume on every training subject
        all_cases = training_cases(dataset, plans)
        cases = all_cases if real else all_cases[:1]
        loss = None
        if args.train_steps:
            start = time.perf_counter()
            loss = round(train_model(sk_model, nn_model, cases, patch, args.train_steps, nn_env), 4)
            print(f"  trained {args.train_steps} steps in {time.perf_counter() - start:.0f} s, last loss {loss}",
                  flush=True)
        package = base / "model_onnx.zip"
        seconds, peaks = measured(segkit_command() + ["export-model", str(sk_model), "-o", str(package), "--format",
                                                      "onnx"], env, "segkit export-model --format onnx", base)
        export = {"seconds": round(seconds, 1), "peak_pss_mib": round(peaks["pss"] / 2 ** 20)}
        onnx_dir = package_choice(package, None, "final").model_dirs["3d_fullres"]
        int8_dir = base / "int8" / "3d_fullres"
        calibration = calibration_patches(all_cases, patch, args.calibration_patches)
        int8 = quantised_folder(onnx_dir, calibration, int8_dir)
        print(f"  int8: NNCF quantisation on {int8['patches']} training patches in {int8['seconds']} s", flush=True)
        torch_bf16 = "bf16 (hardware)" if cpu_has_fast_bf16() else "bf16 (emulated: no AVX512-BF16/AMX)"
        ov_bf16 = openvino_bf16(onnx_dir / "fold_0" / NETWORK_FILE)
        predict = segkit_command() + ["predict", "-i", str(test_dir), "-o", "OUT", "--device", "cpu", "--threads",
                                      threads]
        runs: dict[str, tuple[list[str], dict, str]] = {
            PEER: (["nnUNetv2_predict", "-i", str(test_dir), "-o", "OUT", "-d", str(DATASET_ID), "-c", "3d_fullres",
                    "-f", "0", "-device", "cpu"], nn_env, "fp32"),
            REFERENCE: (predict + ["-m", str(sk_model), "--precision", "fp32"], env, "fp32"),
            "segkit torch bf16": (predict + ["-m", str(sk_model), "--precision", "bf16"], env, torch_bf16),
            "segkit onnxruntime fp32": (predict + ["-m", str(package), "--backend", "onnxruntime"], env, "fp32"),
            "segkit openvino fp32": (predict + ["-m", str(package), "--backend", "openvino", "--precision", "fp32"],
                                     env, "fp32"),
            "segkit openvino bf16": (predict + ["-m", str(package), "--backend", "openvino", "--precision", "bf16"],
                                     env, f"bf16 ({ov_bf16})"),
            "segkit openvino int8": (predict + ["-m", str(int8_dir), "--backend", "openvino", "--precision", "fp32"],
                                     env, "int8 (NNCF), fp32 elsewhere"),
        }
        skipped = {}
        if ov_bf16 == "ignored":
            skipped["segkit openvino bf16"] = runs.pop("segkit openvino bf16")[2], "OpenVINO ignores the bf16 hint here"
        if args.imported:
            imported = base / "nnunet_onnx.zip"
            measured(segkit_command() + ["export-model", str(nn_model), "-o", str(imported), "--format", "onnx"], env,
                     "segkit export-model <nnU-Net folder> --format onnx", base)
            runs["segkit onnxruntime fp32, nnU-Net folder exported"] = (
                predict + ["-m", str(imported), "--backend", "onnxruntime"], env, "fp32")
        warm_up(env, nn_env)
        results: dict[str, list[dict]] = {name: [] for name in runs}
        loads = {"before": os.getloadavg()}
        for repeat in range(args.repeats):
            for index, (name, (command, run_env, _)) in enumerate(runs.items()):
                out = base / f"pred_{index}_{repeat}"
                shutil.rmtree(out, ignore_errors=True)
                seconds, peaks = measured([str(out) if c == "OUT" else c for c in command], run_env, name, base)
                results[name].append({"seconds": round(seconds, 2), "peak_pss_mib": round(peaks["pss"] / 2 ** 20, 1),
                                      "peak_pss_anon_mib": round(peaks["pss_anon"] / 2 ** 20, 1),
                                      "load_after": os.getloadavg()[0]})
        loads["after"] = os.getloadavg()
        labels = {name: read_labels(base / f"pred_{i}_0" / f"{case}.nii.gz") for i, name in enumerate(runs)}
        reference_dice = dice_per_class(labels[REFERENCE], truth, classes)
        summary: dict[str, dict] = {}
        for name, (_, _, arithmetic) in runs.items():
            dice = dice_per_class(labels[name], truth, classes)
            row = {"arithmetic": arithmetic, "seconds": [r["seconds"] for r in results[name]],
                   "peak_pss_mib": [r["peak_pss_mib"] for r in results[name]],
                   "peak_pss_anon_mib": [r["peak_pss_anon_mib"] for r in results[name]],
                   "load_after": [r["load_after"] for r in results[name]],
                   "agreement_with_torch_fp32": float((labels[name] == labels[REFERENCE]).mean()),
                   "agreement_with_nnunet": float((labels[name] == labels[PEER]).mean()),
                   "dice": dice, "dice_difference": {c: dice[c] - reference_dice[c] for c in classes}}
            if "bf16" in arithmetic or "int8" in arithmetic:   # reduced precision: is it as accurate as fp32?
                row["accuracy_holds"] = accuracy_holds(row["agreement_with_torch_fp32"], row["dice_difference"])
            elif name in (REFERENCE, PEER):
                row["accuracy_holds"] = "reference" if name == REFERENCE else "peer"
            summary[name] = row
        for name, (arithmetic, reason) in skipped.items():
            summary[name] = {"arithmetic": arithmetic, "not_run": reason}
        print("\nlogits on the preprocessed case (sliding window, no TTA) vs torch fp32:", flush=True)
        logits = logit_differences(sk_model, {"onnxruntime fp32": (onnx_dir, "onnxruntime"),
                                              "openvino fp32": (onnx_dir, "openvino"),
                                              "openvino int8": (int8_dir, "openvino")}, test_dir, case)
        record = {"script": "scripts/bench_backends.py", "command": ["python", "scripts/bench_backends.py", *sys.argv[1:]],
                  "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine_line(),
                  "cpu_hardware_bf16": cpu_has_fast_bf16(), "openvino_bf16": ov_bf16, "threads": args.threads,
                  "repeats": args.repeats, "loadavg": loads, "quick": args.quick,
                  "network": f"nnU-Net 3d_fullres PlainConvUNet, {params / 1e6:.2f} M parameters",
                  "patch_size": patch, "test_shape": list(truth.shape), "train_steps": args.train_steps,
                  "volume": volume_line(args, truth), "truth": "AAL atlas" if real else "truth",
                  "classes": list(classes), "nnunet_planned": planned or None,
                  "training": (f"{len(cases)} real training subjects (realdata.TRAIN_SUBJECTS at {args.spacing} mm)"
                               if real else "the first phantom training case"),
                  "train_loss": loss, "export": export, "int8": int8, "accuracy_rule": ACCURACY_RULE,
                  "runs": summary, "logits_no_tta": logits,
                  "script_seconds": round(time.perf_counter() - started, 1)}
        table = markdown_table(record)
        print(json.dumps(record, indent=2))
        print("\n" + table)
        print(f"whole script: {record['script_seconds']:.0f} s", flush=True)
        for path, text in ((args.json, json.dumps(record, indent=2) + "\n"), (args.markdown, table)):
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(text)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
