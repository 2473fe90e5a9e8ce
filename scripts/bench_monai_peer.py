"""Benchmark: segkit's `--time-budget MINUTES` against a short MONAI script trained for the same wall time.

Issue #27's peer: "a 100-line MONAI script (MONAI's small U-Net, AdamW, one-cycle lr, 80 % foreground
patches, no spatial augmentation)". This file holds that script (`monai_peer`), written from the
issue's description: every image is resampled to 2 mm and z-scored inside its head mask; random
64^3 patches, 80 % of them centred on a foreground voxel; MONAI `UNet` (16-32-64-128-256, residual
units, instance norm); AdamW with a one-cycle lr for as many steps as the measured step time fits
in the budget; sliding-window prediction (`monai.inferers.sliding_window_inference`) mapped back to
each held-out image's own grid (nearest neighbour).

Both train on the same cases (fold 0's training cases: colin_001-003) of the real-image dataset
(scripts/realdata.py; `--lateral` for left and right apart) and are scored by `segkit evaluate` on
the same held-out subjects. They run one after the other per seed, with /proc/loadavg recorded.

    python scripts/bench_monai_peer.py --lateral --out /tmp/bench_monai --minutes 2 --seeds 0 1 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import realdata
import torch
from bench_real import SPLIT, loadavg, run_variant_seed, segkit
from scipy import ndimage

HERE = Path(__file__).resolve().parents[1]
SPACING = 2.0
PATCH = 64
FOREGROUND_SHARE = 0.8


def load_resampled(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(volume at SPACING mm in the file's axis order, the file's own affine)."""
    image = nib.load(str(path))
    zooms = np.asarray(image.header.get_zooms()[:3], dtype=float)
    data = np.asarray(image.dataobj, dtype=np.float32)
    return ndimage.zoom(data, zooms / SPACING, order=1), image.affine


def zscore(volume: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance inside the head (voxels above 5 % of the maximum)."""
    mask = volume > 0.05 * volume.max()
    return ((volume - volume[mask].mean()) / (volume[mask].std() + 1e-6)).astype(np.float32)


def random_patch(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A PATCH^3 crop (zero-padded), centred on a foreground voxel with FOREGROUND_SHARE probability."""
    pad = PATCH // 2
    image = np.pad(image, pad)
    labels = np.pad(labels, pad)
    if rng.uniform() < FOREGROUND_SHARE:
        foreground = np.argwhere(labels > 0)
        centre = foreground[rng.integers(len(foreground))]
    else:
        centre = np.array([rng.integers(pad, n - pad) for n in image.shape])
    corner = np.clip(centre - pad, 0, np.array(image.shape) - PATCH)
    region = tuple(slice(c, c + PATCH) for c in corner)
    return image[region], labels[region]


def monai_peer(dataset: Path, train_cases: list[str], budget_s: float, seed: int, out: Path) -> tuple[float, int]:
    """Train the MONAI script for budget_s seconds (start-up included), predict the held-out images; returns the
    training wall seconds and the optimiser steps taken."""
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    start = time.monotonic()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    num_classes = len(json.loads((dataset / "dataset.json").read_text())["labels"])
    cases = []
    for case in train_cases:
        image, _ = load_resampled(dataset / "imagesTr" / f"{case}_0000.nii.gz")
        labels = nib.load(str(dataset / "labelsTr" / f"{case}.nii.gz"))
        zooms = np.asarray(labels.header.get_zooms()[:3], dtype=float)
        label_array = ndimage.zoom(np.asarray(labels.dataobj), zooms / SPACING, order=0)
        cases.append((zscore(image), label_array.astype(np.int64)))
    net = UNet(spatial_dims=3, in_channels=1, out_channels=num_classes, channels=(16, 32, 64, 128, 256),
               strides=(2, 2, 2, 2), num_res_units=2, norm="instance")
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-5)

    def step() -> None:
        """One batch of 2 patches."""
        pairs = [random_patch(*cases[rng.integers(len(cases))], rng) for _ in range(2)]
        x = torch.from_numpy(np.stack([p[0] for p in pairs])[:, None])
        y = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None])
        optimizer.zero_grad()
        loss_fn(net(x), y).backward()
        optimizer.step()

    for _ in range(3):                          # time the step, then fit the one-cycle schedule to what is left
        step()
    timed = time.monotonic()
    for _ in range(3):
        step()
    per_step = (time.monotonic() - timed) / 3
    # the budget is for loading and training, like segkit's --time-budget: prediction is timed apart
    steps = max(10, int((budget_s - (time.monotonic() - start)) / per_step))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    taken = 6
    for _ in range(steps):
        if time.monotonic() - start > budget_s:   # a slower machine than the timed steps said: keep the budget
            break
        step()
        scheduler.step()
        taken += 1
    trained_s = time.monotonic() - start
    net.eval()
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((dataset / "heldout" / "images").glob("*_0000.nii.gz")):
        image, affine = load_resampled(path)
        original = nib.load(str(path))
        with torch.inference_mode():
            logits = sliding_window_inference(torch.from_numpy(zscore(image))[None, None], (PATCH,) * 3, 4, net,
                                              overlap=0.25)
        labels = logits[0].argmax(0).numpy().astype(np.uint8)
        back = ndimage.zoom(labels, np.asarray(original.shape[:3]) / np.asarray(labels.shape), order=0)
        case = path.name.replace("_0000.nii.gz", ".nii.gz")
        nib.save(nib.Nifti1Image(back, original.affine), str(out / case))
    return trained_s, taken


def main() -> None:
    """Per seed: segkit --time-budget, then the MONAI script for the same wall time; print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="/tmp/bench_monai")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--lateral", action="store_true", help="left and right as separate labels")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    dataset = out / ("RealBrainLateral" if args.lateral else "RealBrainStructures")
    if not (dataset / "dataset.json").is_file():
        realdata.build_dataset(dataset, lateral=args.lateral)
    work = out / "work_segkit"
    segkit(HERE, "plan", str(dataset), "--work-dir", str(work), "--configurations", "3d_fullres", "--force")
    segkit(HERE, "preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_fullres")
    (work / "models" / "3d_fullres").mkdir(parents=True, exist_ok=True)
    (work / "models" / "3d_fullres" / "splits.json").write_text(json.dumps(SPLIT))
    results: dict = {"minutes": args.minutes, "threads": args.threads, "dataset": dataset.name, "runs": []}
    for seed in args.seeds:
        row = run_variant_seed(HERE, dataset, work, out / f"segkit_seed{seed}", args.minutes, seed, args.threads, [])
        load_before = loadavg()
        predictions = out / f"monai_seed{seed}" / "pred"
        wall, monai_steps = monai_peer(dataset, SPLIT[0]["train"], args.minutes * 60, seed, predictions)
        evaluation = out / f"monai_seed{seed}" / "evaluation.json"
        segkit(HERE, "evaluate", str(predictions), str(dataset / "heldout" / "labels"), "--regions-from",
               str(dataset), "-o", str(evaluation))
        monai = json.loads(evaluation.read_text())["foreground_mean"]["dice"]
        results["runs"].append({"seed": seed, "segkit": row["held_out_mean_dice"], "segkit_wall_s": row["wall_s"],
                                "segkit_steps": row["steps"], "monai": round(monai, 4), "monai_wall_s": round(wall, 1),
                                "monai_steps": monai_steps,
                                "loadavg_segkit": [row["loadavg_before"], row["loadavg_after"]],
                                "loadavg_monai": [load_before, loadavg()]})
        print(json.dumps(results["runs"][-1]), flush=True)
        (out / "result.json").write_text(json.dumps(results, indent=1))
    for tool in ("segkit", "monai"):
        values = [r[tool] for r in results["runs"]]
        results[f"{tool}_mean"] = round(sum(values) / len(values), 4)
        results[f"{tool}_spread"] = round(max(values) - min(values), 4) if len(values) > 1 else math.nan
    (out / "result.json").write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
