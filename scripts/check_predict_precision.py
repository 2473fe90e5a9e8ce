"""Does bf16 inference change a trained model's segmentation? fp32 vs bf16 `segkit predict` on labelled cases.

Predicts the first N cases of DATASET/imagesTr with a trained model twice (--precision fp32,
--precision bf16, both with TTA), and prints per case the voxel agreement between the two
label maps and each one's mean foreground Dice against labelsTr, plus both run times.

    .venv/bin/python scripts/check_predict_precision.py WORK/models/3d_fullres DATASET --cases 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def dice(a: np.ndarray, b: np.ndarray, value: int) -> float:
    """Dice of one label value (1.0 when absent from both)."""
    pa, pb = a == value, b == value
    total = pa.sum() + pb.sum()
    return 1.0 if total == 0 else float(2 * (pa & pb).sum() / total)


def read(path: Path) -> np.ndarray:
    """Voxels of a label file."""
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def main() -> None:
    """Link N cases, predict them in fp32 and bf16, compare."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("dataset")
    parser.add_argument("--cases", type=int, default=3)
    args = parser.parse_args()
    dataset = Path(args.dataset)
    work = Path(tempfile.mkdtemp(prefix="segkit_precision_"))
    inputs = work / "inputs"
    inputs.mkdir()
    labels = sorted((dataset / "labelsTr").glob("*.nii.gz"))[: args.cases]
    cases = [p.name[: -len(".nii.gz")] for p in labels]
    for case in cases:
        for image in sorted((dataset / "imagesTr").glob(f"{case}_*.nii.gz")):
            (inputs / image.name).symlink_to(image.resolve())
    seconds = {}
    for precision in ("fp32", "bf16"):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "segkit", "predict", "-i", str(inputs), "-o", str(work / precision),
                        "-m", args.model, "--device", "cpu", "--precision", precision], check=True,
                       stdout=subprocess.DEVNULL)
        seconds[precision] = time.perf_counter() - start
    values = None
    for case, label_path in zip(cases, labels):
        reference = read(label_path)
        values = values or [int(v) for v in np.unique(reference) if v != 0]
        fp32, bf16 = read(work / "fp32" / f"{case}.nii.gz"), read(work / "bf16" / f"{case}.nii.gz")
        agree = float((fp32 == bf16).mean())
        d32 = np.mean([dice(fp32, reference, v) for v in values])
        d16 = np.mean([dice(bf16, reference, v) for v in values])
        print(f"{case}: shape {reference.shape}, fp32 vs bf16 voxel agreement {agree:.5f}, "
              f"mean Dice fp32 {d32:.4f}, bf16 {d16:.4f}")
    print(f"time for {len(cases)} cases: fp32 {seconds['fp32']:.1f} s, bf16 {seconds['bf16']:.1f} s")


if __name__ == "__main__":
    main()
