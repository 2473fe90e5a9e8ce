"""Every family on a real MR volume: ONNX Runtime and OpenVINO fp32 vs torch fp32, label agreement and largest logit difference.

The volume: Colin27 T1 (`ch2.nii.gz` from the Debian package mricron-data, see docs/dependencies.md;
`--image` for another), resampled to 3 mm with segkit's resampling and z-scored over its nonzero
voxels: real anatomy and intensity statistics, the input the networks see after preprocessing.
Per family (unet, resenc, revmbconv, UNet++ pruned to level 2, STU-Net S, Swin UNETR when MONAI
is installed) a network of the planner's default entry for the patch is built with the family's
initialisation (seeded), 4 output classes, then trained for `--train-steps` Adam steps (default
60, lr 1e-3, two random patches per step, cross-entropy on the inference output; UNet++ trains its
pruned output) on the same volume against the AAL atlas drawn on Colin27 (`aal.nii.gz`, same
package) merged into background / cortex / cerebellum / deep grey matter, so the label maps
compared are a trained network's, not near-ties of an untrained one (`--train-steps 0`: the
untrained initialisation). The network runs over the whole volume with segkit's sliding window
(Gaussian weights, step 0.5, no TTA: mirroring only averages the same network) three ways: torch
fp32 (the torch backend's network: GroupNorm, channels-last, the entry's own mode, i.e.
reversible for revmbconv), and the exported ONNX file on ONNX Runtime and on OpenVINO. Each
family's row is written to --json as soon as it is done.

    python scripts/check_backend_families.py [--train-steps 60] [--json docs/benchmarks/backend_families.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from segkit.inference.acceleration import prepare_for_inference
from segkit.inference.backends import onnx_runner
from segkit.inference.sliding_window import WindowSettings, sliding_window_logits
from segkit.io.image import Geometry, read_image
from segkit.models.onnx import export_network, plain_network
from segkit.models.pruning import write_pruning
from segkit.networks import build_network
from segkit.networks.registry import family_of
from segkit.planning.architecture import architecture_for_patch
from segkit.preprocessing.resample import new_shape_for_spacing, resample_channels

DEFAULT_IMAGE = Path("/usr/share/mricron/templates/ch2.nii.gz")
ATLAS = Path("/usr/share/mricron/templates/aal.nii.gz")   # AAL, drawn on Colin27 (same grid as ch2)
# AAL region indices of each trained class (background 0): cortex, cerebellum, deep grey + mesial temporal
ATLAS_CLASSES = ([i for i in range(1, 91) if i not in (37, 38, 41, 42, *range(71, 79))], list(range(91, 117)),
                 [37, 38, 41, 42, *range(71, 79)])
FAMILIES = {"unet": [32, 48, 32], "resenc": [32, 48, 32], "revmbconv": [32, 48, 32], "unetpp": [32, 48, 32],
            "stunet-s": [32, 48, 32], "swinunetr": [32, 32, 64]}
OUTPUTS = 4


def resampled_image(path: Path, spacing_mm: float) -> tuple[np.ndarray, Geometry]:
    """(1, z, y, x) float32: the image resampled (cubic) to spacing_mm, with the geometry of the new grid.

    The new grid covers the same corner as the source (its first voxel centre moves by half the change
    of spacing along each axis), so the atlas resampled by atlas_labels lies on it.
    """
    image = read_image(path, np.float32)
    target = [spacing_mm] * 3
    shape = new_shape_for_spacing(image.array.shape, image.geometry.array_spacing, target)
    data = resample_channels(image.array[None], shape, order=3)
    old = image.geometry
    direction = np.asarray(old.direction, dtype=float).reshape(3, 3)
    shift = direction @ ((spacing_mm - np.asarray(old.spacing, dtype=float)) / 2)
    geometry = Geometry((spacing_mm,) * 3, tuple(float(o) for o in np.asarray(old.origin) + shift), old.direction,
                        tuple(reversed(shape)))
    return data, geometry


def real_volume(path: Path, spacing_mm: float) -> np.ndarray:
    """(1, z, y, x) float32: the image resampled to spacing_mm and z-scored over its nonzero voxels."""
    data, _ = resampled_image(path, spacing_mm)
    mask = data[0] > 0
    data[0] = np.where(mask, (data[0] - data[0][mask].mean()) / data[0][mask].std(), 0.0)
    return data.astype(np.float32)


def atlas_labels(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """(z, y, x) int64 classes of the AAL atlas (nearest-neighbour onto the volume's grid), merged as ATLAS_CLASSES."""
    atlas = read_image(path, np.float32).array
    regions = resample_channels(atlas[None], shape, order=0)[0].round().astype(np.int64)
    labels = np.zeros(shape, dtype=np.int64)
    for value, indices in enumerate(ATLAS_CLASSES, start=1):
        labels[np.isin(regions, indices)] = value
    return labels


def train(network: torch.nn.Module, volume: np.ndarray, labels: np.ndarray, patch: list[int], steps: int,
          family: str) -> float:
    """A few seeded Adam steps on random patches of the volume; the last step's loss."""
    return train_on_cases(network, [(volume, labels)], patch, steps, family)


def train_on_cases(network: torch.nn.Module, cases: list[tuple[np.ndarray, np.ndarray]], patch: list[int],
                   steps: int, family: str) -> float:
    """Seeded Adam steps, step i on two random patches of cases[i % len(cases)]; the last step's loss."""
    generator = np.random.default_rng(0)
    padded = []
    for volume, labels in cases:
        grow = [(0, max(0, p - n)) for n, p in zip(volume.shape[1:], patch)]   # a volume smaller than the patch
        padded.append((torch.from_numpy(np.pad(volume, [(0, 0), *grow])), torch.from_numpy(np.pad(labels, grow))))
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    network.deep_supervision = False
    if family == "unetpp":
        network.prune_level = 2
    network.train()
    loss = torch.zeros(())
    for step in range(steps):
        image, target = padded[step % len(padded)]
        starts = [[int(generator.integers(0, n - p + 1)) for n, p in zip(image.shape[1:], patch)] for _ in range(2)]
        regions = [tuple(slice(s, s + p) for s, p in zip(start, patch)) for start in starts]
        batch = torch.stack([image[(slice(None),) + r] for r in regions])
        truth = torch.stack([target[r] for r in regions])
        out = network(batch)
        loss = torch.nn.functional.cross_entropy(out[0] if isinstance(out, (list, tuple)) else out, truth)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    network.eval()
    return float(loss.detach())


def compare(family: str, patch: list[int], volume: np.ndarray, workdir: Path, labels: np.ndarray | None = None,
            steps: int = 0) -> dict:
    """Torch fp32 vs ONNX Runtime and OpenVINO on the volume for one family (trained first when steps > 0)."""
    torch.manual_seed(0)
    arch = architecture_for_patch(family, patch)
    if family == "revmbconv":
        arch.update(reversible=True, checkpointing=False)
    if family == "unetpp":
        write_pruning(workdir, {"prune_level": 2, "depth": len(arch["strides"]) - 1, "levels": []})
    network = build_network(arch, 1, OUTPUTS)
    start = time.perf_counter()
    final_loss = train(network, volume, labels, patch, steps, family) if steps and labels is not None else None
    train_seconds = round(time.perf_counter() - start, 1)
    network.deep_supervision = bool(arch.get("deep_supervision", True))
    if family == "unetpp":
        network.prune_level = None
    checkpoint = {"architecture": arch, "in_channels": 1, "num_outputs": OUTPUTS, "network_state": network.state_dict()}
    reference = build_network(arch, 1, OUTPUTS)
    reference.load_state_dict(network.state_dict())
    reference.deep_supervision = False
    if family == "unetpp":
        reference.prune_level = 2
    prepare_for_inference(reference, 3)
    settings = WindowSettings(tuple(patch), 0.5, (), 2, channels_last=True)
    start = time.perf_counter()
    expected = sliding_window_logits(reference.eval(), volume, OUTPUTS, settings)
    row: dict = {"family": family, "patch": patch, "parameters": sum(p.numel() for p in network.parameters()),
                 "voxels": int(np.prod(expected.shape[1:])), "torch_seconds": round(time.perf_counter() - start, 2),
                 "max_abs_logit": float(expected.abs().max()), "train_steps": steps,
                 "train_seconds": train_seconds, "final_loss": final_loss}
    predicted = expected.argmax(0).numpy()
    row["label_fractions"] = [round(float((predicted == k).mean()), 4) for k in range(OUTPUTS)]
    if labels is not None:   # how far the few steps got: Dice of each class against the atlas on this volume
        row["dice_vs_atlas"] = [round(float(2 * ((predicted == k) & (labels == k)).sum()
                                            / max(1, (predicted == k).sum() + (labels == k).sum())), 3)
                                for k in range(1, OUTPUTS)]
    data = export_network(plain_network(checkpoint, workdir), 1, patch, None, family_of(arch).onnx_dynamic_spatial)
    labels = expected.argmax(0)
    top2 = expected.topk(2, dim=0).values
    margin = top2[0] - top2[1]             # torch fp32's own decision margin per voxel
    for backend in ("onnxruntime", "openvino"):
        runner = onnx_runner(backend, data, "fp32")
        start = time.perf_counter()
        logits = sliding_window_logits(runner, volume, OUTPUTS, WindowSettings(tuple(patch), 0.5, (), 2))
        differ = logits.argmax(0) != labels
        largest = float((logits - expected).abs().max())
        row[backend] = {"seconds": round(time.perf_counter() - start, 2),
                        "label_agreement": 1.0 - float(differ.float().mean()),
                        "max_abs_logit_difference": largest,
                        # a label can flip only where torch's margin is below twice the largest difference
                        "disagreements": int(differ.sum()),
                        "disagreements_at_near_ties": int((differ & (margin <= 2 * largest)).sum()),
                        "voxels_with_margin_below_2x_difference": int((margin <= 2 * largest).sum())}
    (workdir / "pruning.json").unlink(missing_ok=True)
    return row


def main() -> None:
    """Run every family (those whose libraries are installed) and print / write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--spacing", type=float, default=3.0, help="resample to this many mm (default 3)")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--train-steps", type=int, default=60, help="Adam steps on the atlas labels (0: untrained)")
    parser.add_argument("--atlas", type=Path, default=ATLAS)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    import importlib.util
    import tempfile

    volume = real_volume(args.image, args.spacing)
    labels = atlas_labels(args.atlas, volume.shape[1:]) if args.train_steps else None
    print(f"volume {args.image} at {args.spacing} mm: {volume.shape[1:]}; {args.train_steps} training steps", flush=True)
    record = {"script": "scripts/check_backend_families.py", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "threads": torch.get_num_threads(), "loadavg_start": os.getloadavg(), "image": str(args.image),
              "atlas": str(args.atlas) if labels is not None else None, "train_steps": args.train_steps,
              "spacing_mm": args.spacing, "volume_shape": list(volume.shape[1:]), "rows": []}
    with tempfile.TemporaryDirectory() as folder:
        for family in args.families:
            if family == "swinunetr" and importlib.util.find_spec("monai") is None:
                print("swinunetr: skipped (MONAI not installed)")
                continue
            try:
                row = compare(family, FAMILIES[family], volume, Path(folder), labels, args.train_steps)
            except Exception as err:   # one family's failure (e.g. its export) is a result; the others still run
                row = {"family": family, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"}
                print(f"{family:10s} FAILED {row['error']}", flush=True)
            else:
                print(f"{family:10s} trained {row['train_seconds']} s (loss {row['final_loss']}, dice "
                      f"{row.get('dice_vs_atlas')}) torch {row['torch_seconds']:6.1f} s | " + " | ".join(
                          f"{b} {row[b]['label_agreement']:.6%} agree, max logit diff "
                          f"{row[b]['max_abs_logit_difference']:.2e}, {row[b]['seconds']:.1f} s"
                          for b in ("onnxruntime", "openvino")), flush=True)
            row["loadavg_after"] = os.getloadavg()
            record["rows"].append(row)
            if args.json:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
