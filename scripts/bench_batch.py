"""Cost of batch mode in `segkit predict`: robustness/report overhead, extras, and --continue checks.

Usage: python scripts/bench_batch.py [--cases 8] [--repeats 2] [--out docs/benchmarks/batch.json]

Builds phantom cases (2 channels, 32x48x48, spacing 3x1.2x1.2 mm, oblique) as NIfTI files
and as DICOM studies, and an untrained small U-Net model folder, then times (best of
--repeats, in-process, after one warm-up run):

1. plain `segkit predict` (the inference helper's pipelined path) on the NIfTI cases;
2. the same with `--batch` (robust per-case runner + report.json after every case);
3. `--batch --statistics` and `--batch --preview`;
4. DICOM studies with and without `--dicom-seg`;
5. a `--continue` rerun over finished NIfTI and DICOM batches (validity checks only).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from segkit.cli import main as segkit_main
from segkit.io.dicom_write import new_uid, write_dicom_series
from segkit.io.image import write_image
from segkit.jsonio import write_json
from segkit.phantom import PhantomSpec, make_case

SPEC = PhantomSpec(shape=(32, 48, 48), spacing=(3.0, 1.2, 1.2))
LABELS = {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3}


def make_model(work: Path) -> Path:
    """An untrained 3-stage U-Net model folder for 2-channel inputs."""
    from segkit.networks import build_network

    arch = {"family": "unet", "spatial_dims": 3, "features_per_stage": [8, 16, 32],
            "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
            "blocks_per_stage": [2, 2, 2], "decoder_blocks_per_stage": [1, 1], "norm": "instance",
            "deep_supervision": True}
    plans = {"schema_version": 1, "dataset_name": "Bench", "num_channels": 2, "channel_names": ["T1", "FLAIR"],
             "labels": LABELS, "label_mode": "softmax", "outputs": {k: [v] for k, v in LABELS.items() if v},
             "regions_class_order": None, "num_outputs": 4,
             "normalization": [{"scheme": "zscore", "use_nonzero_mask": True}] * 2,
             "configurations": {"3d_fullres": {
                 "spatial_dims": 3, "target_spacing": [3.0, 1.2, 1.2], "median_shape": [32, 48, 48],
                 "patch_size": [32, 48, 48], "batch_size": 2, "mirror_axes": [0, 1, 2], "previous_stage": None,
                 "resampling": {"image_order": 3, "label": "onehot_linear", "anisotropy_threshold": 3.0},
                 "architecture": arch}}}
    model_dir = work / "models" / "3d_fullres"
    write_json(model_dir / "plans.json", plans)
    torch.manual_seed(0)
    network = build_network(arch, 2, 4)
    (model_dir / "fold_0").mkdir(parents=True)
    torch.save({"format": "segkit-checkpoint-1", "network_state": network.state_dict(), "architecture": arch,
                "in_channels": 2, "num_outputs": 4, "configuration": "3d_fullres", "plans_sha256": "0" * 64,
                "epoch": 0}, model_dir / "fold_0" / "checkpoint_final.pt")
    return model_dir


def make_inputs(root: Path, cases: int) -> tuple[Path, Path]:
    """NIfTI and DICOM copies of the same phantom cases."""
    nifti, dicom = root / "nifti", root / "dicom"
    for index in range(cases):
        images, _, geometry = make_case(index, SPEC)
        study, frame = new_uid(), new_uid()
        for channel, description in enumerate(("T1 axial", "FLAIR axial")):
            write_image(images[channel].round(), geometry, nifti / f"case{index:02d}_{channel:04d}.nii.gz")
            write_dicom_series(images[channel], geometry, dicom / f"case{index:02d}", description,
                               study_uid=study, frame_of_reference_uid=frame, series_number=channel + 1)
    return nifti, dicom


def timed(argv: list[str], output: Path, repeats: int, keep: bool = False) -> float:
    """Best wall time of `segkit predict argv -o output` over repeats (output removed before each, unless keep)."""
    best = float("inf")
    for _ in range(repeats):
        if not keep:
            shutil.rmtree(output, ignore_errors=True)
        start = time.perf_counter()
        code = segkit_main(["predict", *argv, "-o", str(output)])
        best = min(best, time.perf_counter() - start)
        if code not in (0,):
            raise SystemExit(f"segkit predict {' '.join(argv)} exited {code}")
    return best


def main() -> None:
    """Run the measurements and print/write them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="segkit-bench-batch-"))
    try:
        model = make_model(root / "work")
        nifti, dicom = make_inputs(root / "in", args.cases)
        common = ["-m", str(model), "--device", "cpu", "--no-tta", "--threads", "2"]
        out = root / "out"
        timed(["-i", str(nifti), *common], out, 1)  # warm-up
        results = {
            "plain_nifti": timed(["-i", str(nifti), *common], out, args.repeats),
            "batch_nifti": timed(["-i", str(nifti), *common, "--batch"], out, args.repeats),
            "batch_statistics": timed(["-i", str(nifti), *common, "--statistics"], out, args.repeats),
            "batch_preview": timed(["-i", str(nifti), *common, "--preview"], out, args.repeats),
            "batch_dicom": timed(["-i", str(dicom), *common, "--channel-map", "0=T1*,1=FLAIR*"], out, args.repeats),
            "batch_dicom_seg": timed(["-i", str(dicom), *common, "--channel-map", "0=T1*,1=FLAIR*", "--dicom-seg"],
                                     out, args.repeats),
        }
        results["continue_dicom_seg_all_done"] = timed(
            ["-i", str(dicom), *common, "--channel-map", "0=T1*,1=FLAIR*", "--dicom-seg", "--continue"], out,
            args.repeats, keep=True)
        timed(["-i", str(nifti), *common, "--batch"], out, 1)
        results["continue_nifti_all_done"] = timed(["-i", str(nifti), *common, "--continue"], out, args.repeats,
                                                   keep=True)
        per_case = {key: value / args.cases for key, value in results.items()}
        summary = {"cases": args.cases, "shape": list(SPEC.shape), "repeats": args.repeats,
                   "torch_threads": 2, "seconds_total": results, "seconds_per_case": per_case,
                   "batch_over_plain": results["batch_nifti"] / results["plain_nifti"]}
        print(json.dumps(summary, indent=2))
        if args.out:
            write_json(args.out, summary)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
