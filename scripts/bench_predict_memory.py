"""Peak memory and time of predicting one large CT-like volume: segkit vs `nnUNetv2_predict -device cpu` vs today's segkit.

The case the memory goal is about: a 300 x 512 x 512 one-channel volume at 1.0 x 0.78 x 0.78 mm
and a 14-class model planned at a coarser target spacing, so both tools predict on a smaller
grid and then revert 14 class probabilities to the 78.6 M-voxel original grid (nnU-Net resamples
all classes at once; segkit now works in slabs).

nnU-Net plans a small phantom dataset with 14 declared labels (untimed); its 3d_fullres U-Net
is narrowed to `--features` channels per stage (the same network in both tools, weights copied)
so that the network's time does not drown the revert. Each tool runs as a CLI, one after the
other, without TTA, step 0.5, fp32. Memory is sampled every 50 ms over the command's whole process
tree (nnU-Net's worker processes included) by scripts/process_memory.py, the same function for every tool:

- peak PSS (the headline): the largest sum of Pss from /proc/<pid>/smaps_rollup. A page shared by
  n processes counts 1/n in each, so torch's libraries and the pages a forked worker shares with
  its parent count once for the tree, not once per process as in a sum of RSS;
- peak anonymous PSS: the same sum of Pss_Anon (heap, tensors, arrays): the part that does not
  depend on other processes on the machine. File-backed pages (the shared libraries) are also
  split with any process outside the tree that maps the same files, e.g. other jobs running the
  same torch build; Pss_Anon is unaffected by them;
- peak RSS (second column): the largest sum of VmRSS, which counts every shared page once per
  process (what earlier versions of this script reported).
"Today's segkit" is another checkout given by --baseline-src (or `git archive` of --baseline-ref
into a temp folder), run with the same interpreter and flags.

    SEGKIT_BENCH_VENV=/work/main/.bench-venv .venv/bin/python scripts/bench_predict_memory.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nnunet_bench_common import (  # noqa: E402
    DATASET_ID,
    REPO,
    link_into_nnunet_raw,
    machine_line,
    make_models,
    narrow,
    nnunet_env,
    segkit_command,
    segkit_plans,
    timed,
)
from process_memory import measured  # noqa: E402

NUM_CLASSES = 14
TRAIN_SPACING = (2.0, 1.5, 1.5)
TEST_SPACING = (1.0, 0.78, 0.78)


def small_dataset(root: Path, cases: int, shape: tuple[int, int, int]) -> Path:
    """One-channel phantom cases at TRAIN_SPACING whose dataset.json declares 14 labels (nnU-Net layout)."""
    from segkit.io.image import write_image
    from segkit.jsonio import write_json
    from segkit.phantom import PhantomSpec, make_case

    for index in range(cases):
        images, label, geometry = make_case(index, PhantomSpec(shape=shape, spacing=TRAIN_SPACING))
        write_image(images[0], geometry, root / "imagesTr" / f"ct_{index:03d}_0000.nii.gz")
        write_image(label, geometry, root / "labelsTr" / f"ct_{index:03d}.nii.gz")
    labels = {"background": 0, **{f"organ_{k}": k for k in range(1, NUM_CLASSES)}}
    write_json(root / "dataset.json", {"name": "CTlike", "channel_names": {"0": "scan"}, "labels": labels,
                                       "numTraining": cases, "file_ending": ".nii.gz"})
    return root


def ct_volume(path: Path, shape: tuple[int, int, int], seed: int = 7) -> None:
    """A CT-like int16 volume: a body ellipse of soft tissue with brighter organs and noise, outside -1000."""
    from segkit.io.image import Geometry, write_image

    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    cy, cx = shape[1] / 2, shape[2] / 2
    volume = np.full(shape, -1000, dtype=np.int16)
    body = ((y - cy) / (0.42 * shape[1])) ** 2 + ((x - cx) / (0.46 * shape[2])) ** 2 <= 1.0
    volume[np.broadcast_to(body, shape)] = 40
    for _ in range(NUM_CLASSES - 1):
        c = rng.uniform(0.2, 0.8, 3) * np.array(shape)
        r = rng.uniform(0.04, 0.12, 3) * np.array(shape)
        organ = ((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2 <= 1.0
        volume[organ] = int(rng.integers(60, 300))
    volume += rng.normal(0, 15, shape).astype(np.int16)
    geometry = Geometry(tuple(reversed(TEST_SPACING)), (-200.0, -200.0, -150.0), tuple(np.eye(3).ravel()),
                        tuple(reversed(shape)))
    write_image(volume, geometry, path)


def ct_segkit_plans(peer: dict) -> dict:
    """segkit plans with nnU-Net's choices, one channel (z-score, as nnU-Net for a non-CT name) and 14 classes."""
    plans = segkit_plans(peer)
    plans.update(num_channels=1, channel_names=["scan"], num_outputs=NUM_CLASSES,
                 labels={"background": 0, **{f"organ_{k}": k for k in range(1, NUM_CLASSES)}},
                 outputs={f"organ_{k}": [k] for k in range(1, NUM_CLASSES)},
                 normalization=plans["normalization"][:1])
    return plans


def baseline_source(args: argparse.Namespace, base: Path) -> Path | None:
    """A checkout of today's segkit: --baseline-src, or `git archive` of --baseline-ref into base."""
    if args.baseline_src:
        return Path(args.baseline_src)
    if not args.baseline_ref:
        return None
    target = base / "baseline_src"
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline_ref, "segkit"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def agreement(first: Path, second: Path) -> float:
    """Fraction of voxels with equal labels."""
    import SimpleITK as sitk

    return float((sitk.GetArrayFromImage(sitk.ReadImage(str(first)))
                  == sitk.GetArrayFromImage(sitk.ReadImage(str(second)))).mean())


def main() -> None:
    """Plan with nnU-Net, build both models, write the CT volume, then run the three predictors one by one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[300, 512, 512], help="test volume (z y x)")
    parser.add_argument("--features", type=int, default=4, help="first-stage width of the (narrowed) U-Net")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for every tool")
    parser.add_argument("--baseline-ref", default="main", help="git ref of today's segkit ('' to skip)")
    parser.add_argument("--baseline-src", help="folder holding today's segkit package instead of --baseline-ref")
    parser.add_argument("--skip-nnunet", action="store_true")
    parser.add_argument("--keep", help="keep the work folder here instead of a temp folder")
    args = parser.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="segkit_bench_mem_"))
    try:
        dataset = small_dataset(base / "raw" / "CTlike", 3, (40, 64, 64))
        env = nnunet_env(base)
        threads = str(args.threads)
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, nnUNet_def_n_proc=threads)
        link_into_nnunet_raw(dataset, base)
        timed(["nnUNetv2_extract_fingerprint", "-d", str(DATASET_ID), "-np", "1"], env, "nnU-Net fingerprint")
        timed(["nnUNetv2_plan_experiment", "-d", str(DATASET_ID)], env, "nnU-Net plan")
        nn_model, sk_model, params, plans = make_models(base, dataset, env, narrow(args.features), ct_segkit_plans)
        test_dir = base / "test"
        ct_volume(test_dir / "big_0000.nii.gz", tuple(args.shape))
        sk_env = {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONPATH": str(REPO)}
        flags = ["--device", "cpu", "--no-tta", "--precision", "fp32", "--threads", threads]
        runs: dict[str, tuple[float, dict[str, int]]] = {}
        runs["segkit"] = measured(segkit_command() + ["predict", "-i", str(test_dir), "-o", str(base / "out_segkit"),
                                                      "-m", str(sk_model), *flags], sk_env, "segkit predict", base)
        source = baseline_source(args, base)
        if source is not None:
            runs["segkit (today)"] = measured(
                segkit_command() + ["predict", "-i", str(test_dir), "-o", str(base / "out_today"), "-m", str(sk_model),
                                    *flags], {**sk_env, "PYTHONPATH": str(source)}, "today's segkit predict", base)
        if not args.skip_nnunet:
            runs["nnU-Net"] = measured(["nnUNetv2_predict", "-i", str(test_dir), "-o", str(base / "out_nnunet"),
                                        "-d", str(DATASET_ID), "-c", "3d_fullres", "-f", "0", "-device", "cpu",
                                        "--disable_tta", "-npp", "1", "-nps", "1"], env, "nnU-Net predict", base)
        config = plans["configurations"]["3d_fullres"]
        print(f"\nmachine: {machine_line()}; {args.threads} torch threads per tool; shared with other work (under load)")
        print(f"network: nnU-Net 3d_fullres PlainConvUNet narrowed to features {config['architecture']['features_per_stage']}"
              f" ({params / 1e6:.3f} M parameters, identical weights), patch {config['patch_size']}, {NUM_CLASSES} classes")
        print(f"test volume: 1 channel, (z, y, x) {tuple(args.shape)} at {TEST_SPACING} mm; target spacing "
              f"{config['target_spacing']} mm; no TTA, step 0.5, fp32")
        print("memory: process-tree sums from /proc/<pid>/smaps_rollup, sampled every 50 ms")
        print("| run | wall time | peak PSS | peak anonymous PSS | peak RSS |\n| --- | ---: | ---: | ---: | ---: |")
        for name, (seconds, peak) in runs.items():
            print(f"| {name} | {seconds:.0f} s | {peak['pss'] / 2 ** 30:.2f} GiB | {peak['pss_anon'] / 2 ** 30:.2f} GiB "
                  f"| {peak['rss'] / 2 ** 30:.2f} GiB |")
        if "nnU-Net" in runs:
            for key, name in (("pss", "PSS"), ("pss_anon", "anonymous PSS"), ("rss", "RSS")):
                print(f"segkit peak {name} / nnU-Net's: {runs['segkit'][1][key] / runs['nnU-Net'][1][key]:.2f}")
            print(f"label agreement segkit vs nnU-Net: "
                  f"{agreement(base / 'out_segkit' / 'big.nii.gz', base / 'out_nnunet' / 'big.nii.gz'):.4f}")
        if "segkit (today)" in runs:
            today_seconds, today_peak = runs["segkit (today)"]
            print(f"segkit vs today's: time {runs['segkit'][0] / today_seconds:.2f}x, peak PSS "
                  f"{runs['segkit'][1]['pss'] / today_peak['pss']:.2f}x; labels identical: "
                  f"{agreement(base / 'out_segkit' / 'big.nii.gz', base / 'out_today' / 'big.nii.gz') == 1.0}")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
