"""Real-volume `segkit predict` with each backend (torch bf16 / fp32, ONNX Runtime, OpenVINO), nnUNetv2_predict as reference.

The setup of bench_predict_vs_nnunet.py: nnU-Net v2 plans the phantom dataset; its 3d_fullres
PlainConvUNet (16.47 M parameters at the default shapes) gets an untrained checkpoint, and segkit
a model folder with the *same weights*. segkit's folder is also exported with
`segkit export-model --format onnx`. Every run predicts the same 4-channel test case as a CLI
(start-up, reading and writing included) with mirroring TTA and step 0.5:

- `nnUNetv2_predict -device cpu` (fp32; the reference, run in the same script);
- `segkit predict --backend torch --precision bf16` (only where the CPU has hardware bf16) and `fp32`;
- `segkit predict -m model_onnx.zip --backend onnxruntime` (fp32);
- the same with `nnunet_onnx.zip`, made by `segkit export-model <nnU-Net model folder> --format onnx`
  (the nnU-Net folder imported by segkit's translation and exported in one command);
- `segkit predict -m model_onnx.zip --backend openvino --precision fp32` (+ `bf16` on hardware bf16).

Per run: wall seconds, peak PSS (proportional set size summed over the process and its children,
sampled every 0.1 s from /proc/<pid>/smaps_rollup: shared library pages split between the
processes that map them), and the label agreement with segkit torch fp32 and with nnU-Net.
In-process, the network's logits on the preprocessed case (sliding window, no TTA) give the
largest logit difference of each ONNX backend against torch fp32. OpenVINO int8 needs a
calibrated quantisation (NNCF) and is not run. Results: printed and written as JSON (--json).

    python scripts/bench_backends.py --json docs/benchmarks/backends.json [--repeats 1]
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
    DATASET_ID,
    agreement,
    machine_line,
    make_models,
    plan_phantom_with_nnunet,
    segkit_command,
    write_test_case,
)

CASE = "phantom_999.nii.gz"


def tree_pss_kib(root: int) -> int:
    """PSS (KiB) of a process and all its descendants (0 for ones that ended meanwhile)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                total += next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))
        except (OSError, StopIteration, ValueError):
            continue
    return total


def measured(command: list[str], env: dict[str, str] | None, label: str) -> dict:
    """Run a command; wall seconds and peak PSS of its process tree (fails loudly on an error)."""
    print(f"$ {' '.join(command)}", flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        peak = 0
        while process.poll() is None:
            peak = max(peak, tree_pss_kib(process.pid))
            time.sleep(0.1)
        seconds = time.perf_counter() - start
        if process.returncode != 0:
            log.seek(0)
            print(log.read().decode(errors="replace")[-4000:], file=sys.stderr)
            raise SystemExit(f"{label} failed with exit code {process.returncode}")
    print(f"  {label}: {seconds:.1f} s, peak PSS {peak / 1024:.0f} MiB", flush=True)
    return {"seconds": round(seconds, 2), "peak_pss_mib": round(peak / 1024, 1)}


def logit_differences(model_dir: Path, package: Path, test_dir: Path, backends: list[str]) -> dict:
    """Largest |logit| difference of each ONNX backend vs torch fp32 on the preprocessed test case (no TTA)."""
    from segkit.inference.memory_backoff import window_logits
    from segkit.inference.model import load_model
    from segkit.inference.predictor import InferenceOptions, window_settings
    from segkit.io.image import read_image
    from segkit.models.resolve import package_choice
    from segkit.preprocessing.pipeline import preprocess_images

    reference = load_model(model_dir, device="cpu", backend="torch", precision="fp32")
    channels = [read_image(path, np.float32) for path in sorted(test_dir.glob("phantom_999_*.nii.gz"))]
    images, geometry = np.stack([c.array for c in channels]), channels[0].geometry
    data, _ = preprocess_images(images, geometry.array_spacing, reference.plans, reference.configuration,
                                direction=geometry.direction)
    options = InferenceOptions(tta=False, precision="fp32")
    expected = window_logits(reference, data, window_settings(reference, options))
    onnx_dir = package_choice(package, None, "final").model_dirs["3d_fullres"]
    result = {}
    for backend in backends:
        model = load_model(onnx_dir, device="cpu", backend=backend, precision="fp32")
        logits = window_logits(model, data, window_settings(model, options))
        result[backend] = {"max_abs_logit_difference": float((logits - expected).abs().max()),
                           "voxels": int(np.prod(logits.shape[1:])),
                           "label_agreement_no_tta": float((logits.argmax(0) == expected.argmax(0)).float().mean())}
        print(f"  {backend}: largest logit difference {result[backend]['max_abs_logit_difference']:.3g} "
              f"(logits up to {float(expected.abs().max()):.3g})", flush=True)
        del logits
    return result


def main() -> None:
    """Plan with nnU-Net, build both model folders and the ONNX package, then run every backend on the test case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-shape", type=int, nargs=3, default=[40, 72, 72])
    parser.add_argument("--train-cases", type=int, default=3)
    parser.add_argument("--test-shape", type=int, nargs=3, default=[48, 96, 96])
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds (runs alternate within a round)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--keep", help="keep the work folder here instead of a temp folder")
    args = parser.parse_args()
    import torch

    from segkit.inference.acceleration import cpu_has_fast_bf16

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="segkit_bench_backends_"))
    try:
        dataset, env = plan_phantom_with_nnunet(base, args.train_cases, tuple(args.train_shape))
        nn_model, sk_model, params, plans = make_models(base, dataset, env)
        package = base / "model_onnx.zip"
        export = measured(segkit_command() + ["export-model", str(sk_model), "-o", str(package), "--format", "onnx"],
                          None, "segkit export-model --format onnx")
        # the nnU-Net folder itself, imported (segkit's nnU-Net translation) and exported in one command
        imported = base / "nnunet_onnx.zip"
        measured(segkit_command() + ["export-model", str(nn_model), "-o", str(imported), "--format", "onnx"], None,
                 "segkit export-model <nnU-Net folder> --format onnx")
        test_dir = base / "raw" / "Phantom" / "imagesTs"
        write_test_case(test_dir, tuple(args.test_shape))
        bf16 = cpu_has_fast_bf16()
        predict = segkit_command() + ["predict", "-i", str(test_dir), "-o", "OUT", "--device", "cpu"]
        runs = {"nnUNetv2_predict (fp32)": (["nnUNetv2_predict", "-i", str(test_dir), "-o", "OUT", "-d", str(DATASET_ID),
                                              "-c", "3d_fullres", "-f", "0", "-device", "cpu"], env)}
        if bf16:
            runs["segkit torch bf16"] = (predict + ["-m", str(sk_model), "--precision", "bf16"], None)
        runs["segkit torch fp32"] = (predict + ["-m", str(sk_model), "--precision", "fp32"], None)
        runs["segkit onnxruntime fp32"] = (predict + ["-m", str(package), "--backend", "onnxruntime"], None)
        runs["segkit onnxruntime fp32, nnU-Net folder exported"] = (
            predict + ["-m", str(imported), "--backend", "onnxruntime"], None)
        runs["segkit openvino fp32"] = (predict + ["-m", str(package), "--backend", "openvino", "--precision", "fp32"],
                                        None)
        if bf16:
            runs["segkit openvino bf16"] = (predict + ["-m", str(package), "--backend", "openvino", "--precision",
                                                       "bf16"], None)
        results: dict[str, list[dict]] = {name: [] for name in runs}
        loads = {"before": os.getloadavg()}
        for repeat in range(args.repeats):
            for index, (name, (command, run_env)) in enumerate(runs.items()):
                out = base / f"pred_{index}_{repeat}"
                shutil.rmtree(out, ignore_errors=True)
                record = measured([str(out) if c == "OUT" else c for c in command], run_env, name)
                record["load_after"] = os.getloadavg()[0]
                results[name].append(record)
        loads["after"] = os.getloadavg()
        names = list(runs)
        labels = {name: base / f"pred_{i}_0" / CASE for i, name in enumerate(names)}
        reference, peer = labels["segkit torch fp32"], labels["nnUNetv2_predict (fp32)"]
        summary = {}
        for name in names:
            summary[name] = {"seconds": [r["seconds"] for r in results[name]],
                             "peak_pss_mib": [r["peak_pss_mib"] for r in results[name]],
                             "agreement_with_torch_fp32": agreement(labels[name], reference),
                             "agreement_with_nnunet": agreement(labels[name], peer)}
        print("\nlogits on the preprocessed case (sliding window, no TTA), ONNX backends vs torch fp32:")
        logits = logit_differences(sk_model, package, test_dir, ["onnxruntime", "openvino"])
        config = plans["configurations"]["3d_fullres"]
        record = {"script": "scripts/bench_backends.py", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "machine": machine_line(), "cpu_hardware_bf16": bf16, "threads": torch.get_num_threads(),
                  "loadavg": loads, "network": f"nnU-Net 3d_fullres PlainConvUNet, {params / 1e6:.2f} M parameters",
                  "patch_size": config["patch_size"], "test_shape": args.test_shape, "export": export,
                  "runs": summary, "logits_no_tta": logits}
        print(json.dumps(record, indent=2))
        print(f"\n{'run':34s} {'time s':>10s} {'peak PSS MiB':>13s} {'vs torch fp32':>14s} {'vs nnU-Net':>11s}")
        for name, row in summary.items():
            print(f"{name:34s} {min(row['seconds']):10.1f} {max(row['peak_pss_mib']):13.0f} "
                  f"{row['agreement_with_torch_fp32']:14.5%} {row['agreement_with_nnunet']:11.5%}")
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
