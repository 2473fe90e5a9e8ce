"""Preprocessing time of the same phantom dataset: `segkit preprocess` vs `nnUNetv2_preprocess`.

Both tools get the same target spacing and normalisation (segkit's plans copy nnU-Net's
3d_fullres choices) and the same number of worker processes; both are timed as CLI runs in
one script run. nnU-Net's fingerprint and planning run first and are not timed here.

    .venv/bin/python scripts/bench_preprocess_vs_nnunet.py --cases 20 --workers 2 --spacing varied
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from nnunet_bench_common import (
    BENCH_VENV,
    DATASET_ID,
    add_dataset_arguments,
    machine_line,
    nnunet_plans,
    prepare_nnunet_dataset,
    segkit_command,
    timed,
)

AGREEMENT_CHECK = """
import sys, blosc2, numpy as np
peer_dir, our_dir = sys.argv[1], sys.argv[2]
import pathlib
worst, shapes_equal, seg_equal = 0.0, 0, []
cases = sorted(p.name[:-5] for p in pathlib.Path(peer_dir).glob('*.b2nd') if not p.name.endswith('_seg.b2nd'))
for case in cases:
    theirs = blosc2.open(f'{peer_dir}/{case}.b2nd', mode='r')[:]
    ours = np.load(f'{our_dir}/{case}.npy')
    if theirs.shape != ours.shape:
        continue
    shapes_equal += 1
    worst = max(worst, float(np.abs(theirs - ours).mean()))
    peer_seg = blosc2.open(f'{peer_dir}/{case}_seg.b2nd', mode='r')[:][0]
    seg_equal.append(float((peer_seg == np.load(f'{our_dir}/{case}_seg.npy')).mean()))
print(f'{shapes_equal}/{len(cases)} cases with identical shapes; worst mean |data difference| {worst:.2e}; '
      f'label voxels equal: min {min(seg_equal):.6f}')
"""

SCHEMES = {"ZScoreNormalization": "zscore", "CTNormalization": "ct", "NoNormalization": "none",
           "RescaleTo01Normalization": "rescale_0_1"}


def segkit_plans_from_nnunet(peer: dict, num_channels: int) -> dict:
    """A segkit plans dict with nnU-Net's 3d_fullres target spacing and normalisation."""
    config = peer["configurations"]["3d_fullres"]
    normalization = []
    for index, (scheme, use_mask) in enumerate(zip(config["normalization_schemes"], config["use_mask_for_norm"])):
        entry = {"scheme": SCHEMES[scheme]}
        if entry["scheme"] == "zscore":
            entry["use_nonzero_mask"] = bool(use_mask)
        if entry["scheme"] == "ct":
            stats = peer["foreground_intensity_properties_per_channel"][str(index)]
            entry.update(clip=[stats["percentile_00_5"], stats["percentile_99_5"]], mean=stats["mean"], std=stats["std"])
        normalization.append(entry)
    return {"schema_version": 1, "num_channels": num_channels, "normalization": normalization,
            "labels": {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3}, "label_mode": "softmax",
            "outputs": {"necrosis": [1], "edema": [2], "enhancing": [3]}, "num_outputs": 4,
            "configurations": {"3d_fullres": {"spatial_dims": 3, "target_spacing": config["spacing"],
                                              "resampling": {"image_order": 3, "label": "onehot_linear",
                                                             "anisotropy_threshold": 3.0}}}}


def folder_bytes(folder: Path) -> int:
    """Total size of the files in a folder tree."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    """Generate, plan with nnU-Net (untimed), then time both preprocessors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dataset_arguments(parser)
    args = parser.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="segkit_bench_pp_"))
    try:
        dataset, env = prepare_nnunet_dataset(args, base)
        timed(["nnUNetv2_extract_fingerprint", "-d", str(DATASET_ID), "-np", str(args.workers)], env, "nnU-Net fingerprint")
        timed(["nnUNetv2_plan_experiment", "-d", str(DATASET_ID)], env, "nnU-Net plan")
        plans = segkit_plans_from_nnunet(nnunet_plans(base), 4)
        plans_file = base / "segkit_plans.json"
        plans_file.write_text(json.dumps(plans, indent=2))
        nn_seconds = timed(["nnUNetv2_preprocess", "-d", str(DATASET_ID), "-c", "3d_fullres", "-np", str(args.workers)],
                           env, "nnU-Net preprocess")
        sk_seconds = timed(segkit_command() + ["preprocess", str(dataset), "--work-dir", str(base / "segkit"),
                                               "--plans", str(plans_file), "-c", "3d_fullres", "-j", str(args.workers)],
                           None, "segkit preprocess")
        sk_dir = base / "segkit" / "preprocessed" / "3d_fullres"
        shapes = [np.load(p, mmap_mode="r").shape for p in sorted(sk_dir.glob("*_seg.npy"))]
        print(f"\nmachine: {machine_line()}")
        print(f"dataset: {args.cases} cases, 4 channels, shape (z,y,x) {tuple(args.shape)}, spacing {args.spacing}; "
              f"target spacing {plans['configurations']['3d_fullres']['target_spacing']}")
        print(f"resampled shapes (segkit): first {shapes[0]}, median {tuple(np.median(shapes, axis=0).astype(int))}")
        print(f"workers: {args.workers}")
        print(f"nnU-Net v2 preprocess: {nn_seconds:.1f} s")
        print(f"segkit preprocess:     {sk_seconds:.1f} s")
        print(f"speed-up: {nn_seconds / sk_seconds:.2f}x")
        nn_dir = base / "nnUNet_preprocessed" / "Dataset901_Phantom" / "nnUNetPlans_3d_fullres"
        agreement = subprocess.run([str(BENCH_VENV / "bin" / "python"), "-c", AGREEMENT_CHECK, str(nn_dir), str(sk_dir)],
                                   capture_output=True, text=True)
        print(f"agreement with nnU-Net's arrays: {agreement.stdout.strip() or agreement.stderr.strip()[-300:]}")
        print(f"output size: segkit {folder_bytes(sk_dir) / 2**20:.0f} MiB, nnU-Net {folder_bytes(nn_dir) / 2**20:.0f} MiB")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
