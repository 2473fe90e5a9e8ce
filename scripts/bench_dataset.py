"""Dataset conversion and integrity check: segkit vs nnU-Net v2, same data, same run.

Times (inside each tool's own process, imports excluded):
  - MSD 4D task -> raw layout: `segkit.io.convert.convert_dataset` vs nnU-Net's `convert_msd_dataset`
  - BraTS 2021 folder -> raw layout: segkit vs the loop of nnU-Net's Dataset137_BraTS21.py
  - integrity check of the converted dataset: `segkit.verify.verify_dataset` vs `verify_dataset_integrity`
and checks geometry exactness of the MSD split and whether each checker notices a truncated
NIfTI and NaN voxels. nnU-Net runs from .bench-venv as a subprocess, never imported here.

    .venv/bin/python scripts/bench_dataset.py --cases 8 --shape 64 128 128 --workers 2
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nnunet_bench_common import BENCH_VENV, REPO, machine_line, nnunet_env  # noqa: E402

from segkit.phantom import PhantomSpec, generate_dataset  # noqa: E402

SEGKIT_PY = sys.executable
PEER_PY = str(BENCH_VENV / "bin" / "python")


def run_timed(python: str, code: str, env: dict | None = None) -> tuple[float, str]:
    """Run a snippet that prints 'SECONDS <t>' (and maybe 'RESULT <text>'); return both."""
    result = subprocess.run([python, "-c", code], env=env, cwd=REPO, capture_output=True, text=True)
    out = result.stdout
    if result.returncode != 0 or "SECONDS" not in out:
        return float("nan"), f"failed: {(result.stderr or out).strip().splitlines()[-1][:160]}"
    seconds = float(out.split("SECONDS")[1].split()[0])
    return seconds, out.split("RESULT", 1)[1].strip() if "RESULT" in out else ""


def segkit_convert(src: Path, dest: Path, workers: int) -> float:
    code = (f"import time; from segkit.io.convert import convert_dataset; t=time.perf_counter(); "
            f"convert_dataset({str(src)!r}, {str(dest)!r}, 'auto', True, {workers}); "
            f"print('SECONDS', time.perf_counter()-t)")
    return run_timed(SEGKIT_PY, code)[0]


def peer_convert_msd(src: Path, base: Path, workers: int, target_id: int) -> float:
    code = (f"import time; from nnunetv2.dataset_conversion.convert_MSD_dataset import convert_msd_dataset; "
            f"t=time.perf_counter(); convert_msd_dataset({str(src)!r}, {target_id}, {workers}); "
            f"print('SECONDS', time.perf_counter()-t)")
    return run_timed(PEER_PY, code, nnunet_env(base))[0]


PEER_BRATS = """
import time, shutil, os
from os.path import join
from nnunetv2.dataset_conversion.Dataset137_BraTS21 import copy_BraTS_segmentation_and_convert_labels_to_nnUNet
src, out = {src!r}, {out!r}
t = time.perf_counter()
os.makedirs(join(out, 'imagesTr'), exist_ok=True); os.makedirs(join(out, 'labelsTr'), exist_ok=True)
for c in sorted(d for d in os.listdir(src) if d.startswith('BraTS')):
    for i, s in enumerate(('t1', 't1ce', 't2', 'flair')):
        shutil.copy(join(src, c, c + '_' + s + '.nii.gz'), join(out, 'imagesTr', c + '_%04d.nii.gz' % i))
    copy_BraTS_segmentation_and_convert_labels_to_nnUNet(join(src, c, c + '_seg.nii.gz'), join(out, 'labelsTr', c + '.nii.gz'))
print('SECONDS', time.perf_counter() - t)
"""


def segkit_verify(dataset: Path, workers: int) -> tuple[float, str]:
    code = (f"import time; from segkit.verify import verify_dataset; t=time.perf_counter(); "
            f"p=verify_dataset({str(dataset)!r}, {workers}); print('SECONDS', time.perf_counter()-t); "
            f"print('RESULT', len(p), 'problem(s)', '; '.join(x.file+': '+x.problem[:50] for x in p))")
    return run_timed(SEGKIT_PY, code)


def peer_verify(dataset: Path, workers: int, base: Path) -> tuple[float, str]:
    code = (f"import time\nfrom nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity\n"
            f"t=time.perf_counter()\ntry:\n    verify_dataset_integrity({str(dataset)!r}, {workers}); r='passed'\n"
            f"except BaseException as e:\n    r='raised '+type(e).__name__+': '+str(e).strip().splitlines()[-1][:80]\n"
            f"print('SECONDS', time.perf_counter()-t)\nprint('RESULT', r)")
    return run_timed(PEER_PY, code, nnunet_env(base))


def max_direction_error(split_file: Path, source_4d: Path) -> float:
    """Largest |difference| between a split channel's direction and the 4D source's 3x3 block."""
    source = np.asarray(sitk.ReadImage(str(source_4d)).GetDirection()).reshape(4, 4)[:3, :3]
    return float(np.abs(np.asarray(sitk.ReadImage(str(split_file)).GetDirection()).reshape(3, 3) - source).max())


def damage(dataset: Path) -> Path:
    """A copy of the dataset with one truncated NIfTI and one image holding NaN voxels."""
    bad = Path(shutil.copytree(dataset, dataset.parent / f"{dataset.name}_damaged"))
    files = sorted((bad / "imagesTr").glob("*.nii.gz"))
    raw = gzip.decompress(files[1].read_bytes())
    files[1].write_bytes(gzip.compress(raw[: len(raw) * 2 // 3]))
    image = sitk.ReadImage(str(files[6]))
    array = sitk.GetArrayFromImage(image)
    array[2, 3:6, 3:6] = np.nan
    nan_image = sitk.GetImageFromArray(array)
    nan_image.CopyInformation(image)
    sitk.WriteImage(nan_image, str(files[6]))
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 128, 128])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    spec = PhantomSpec(shape=tuple(args.shape))
    rows = []
    with tempfile.TemporaryDirectory(prefix="segkit_bench_dataset_") as tmp:
        base = Path(tmp)
        msd = generate_dataset(base / "Task01_Phantom", args.cases, "msd", spec=spec, num_test=2)
        brats = generate_dataset(base / "brats21", args.cases, "brats2021", spec=spec)
        for workers in (1, args.workers):
            ours = segkit_convert(msd, base / f"ours_msd_{workers}", workers)
            peer = peer_convert_msd(msd, base / f"peer{workers}", workers, 950 + workers)
            rows.append((f"MSD 4D -> raw, {workers} worker(s)", ours, peer))
        ours_b = segkit_convert(brats, base / "ours_brats", 1)
        peer_b = run_timed(PEER_PY, PEER_BRATS.format(src=str(brats), out=str(base / "peer_brats")))[0]
        rows.append(("BraTS 2021 -> raw, 1 worker (nnU-Net's script is serial)", ours_b, peer_b))
        rows.append(("BraTS 2021 -> raw, segkit with 2 workers", segkit_convert(brats, base / "ours_brats2", 2), peer_b))
        dataset = base / "ours_msd_1"
        for workers in (1, args.workers):
            ours_v, _ = segkit_verify(dataset, workers)
            peer_v, peer_result = peer_verify(dataset, workers, base)
            rows.append((f"verify clean dataset, {workers} worker(s) (nnU-Net: {peer_result})", ours_v, peer_v))
        bad = damage(dataset)
        _, ours_found = segkit_verify(bad, 1)
        _, peer_found = peer_verify(bad, 1, base)
        peer_split = next((base / "peer1" / "nnUNet_raw").glob("Dataset*")) / "imagesTr" / "BRATS_001_0000.nii.gz"
        source_4d = msd / "imagesTr" / "BRATS_001.nii.gz"
        exact = {"segkit": max_direction_error(dataset / "imagesTr" / "BRATS_001_0000.nii.gz", source_4d),
                 "nnU-Net": max_direction_error(peer_split, source_4d)}
    print(f"\nmachine: {machine_line()} (shared with other work)")
    print(f"data: {args.cases} phantom cases (+2 test for MSD), 4 channels, shape {tuple(args.shape)} (z, y, x)\n")
    print("| task | segkit (s) | nnU-Net v2 (s) | nnU-Net / segkit |\n| --- | --- | --- | --- |")
    for name, ours, peer in rows:
        print(f"| {name} | {ours:.2f} | {peer:.2f} | {peer / ours:.2f} |")
    print(f"\nMSD split, max |direction - source 4D direction|: segkit {exact['segkit']:.2e}, "
          f"nnU-Net {exact['nnU-Net']:.2e}")
    print(f"damaged dataset (1 truncated NIfTI, 1 image with NaN):\n  segkit: {ours_found}\n  nnU-Net: {peer_found}")
    print(json.dumps({"rows": rows, "direction_error": exact}))


if __name__ == "__main__":
    main()
