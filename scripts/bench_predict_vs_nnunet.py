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
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nnunet_bench_common import (  # noqa: E402
    DATASET_ID,
    agreement,
    machine_line,
    make_models,
    plan_phantom_with_nnunet,
    segkit_command,
    timed,
    write_test_case,
)


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
        dataset, env = plan_phantom_with_nnunet(base, args.train_cases, tuple(args.train_shape))
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
