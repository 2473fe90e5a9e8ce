"""Every family on a real MR volume: ONNX Runtime and OpenVINO fp32 vs torch fp32, label agreement and largest logit difference.

The volume: Colin27 T1 (`ch2.nii.gz` from the Debian package mricron-data, see docs/dependencies.md;
`--image` for another), resampled to 3 mm with segkit's resampling and z-scored over its nonzero
voxels: real anatomy and intensity statistics, the input the networks see after preprocessing.
Per family (unet, resenc, revmbconv, UNet++ pruned to level 2, STU-Net S, Swin UNETR when MONAI
is installed) a network of the planner's default entry for the patch is built with the family's
initialisation (seeded; no training here: the comparison is of the network function, which the
export must keep for any weights), 4 output classes, and run over the whole volume with segkit's
sliding window (Gaussian weights, step 0.5, no TTA: mirroring only averages the same network)
three ways: torch fp32 (the torch backend's network: GroupNorm, channels-last, the entry's own
mode, i.e. reversible for revmbconv), and the exported ONNX file on ONNX Runtime and on OpenVINO.

    python scripts/check_backend_families.py [--json docs/benchmarks/backend_families.json]
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
from segkit.io.image import read_image
from segkit.models.onnx import export_network, plain_network
from segkit.models.pruning import write_pruning
from segkit.networks import build_network
from segkit.networks.registry import family_of
from segkit.planning.architecture import architecture_for_patch
from segkit.preprocessing.resample import new_shape_for_spacing, resample_channels

DEFAULT_IMAGE = Path("/usr/share/mricron/templates/ch2.nii.gz")
FAMILIES = {"unet": [32, 48, 32], "resenc": [32, 48, 32], "revmbconv": [32, 48, 32], "unetpp": [32, 48, 32],
            "stunet-s": [32, 48, 32], "swinunetr": [32, 32, 64]}
OUTPUTS = 4


def real_volume(path: Path, spacing_mm: float) -> np.ndarray:
    """(1, z, y, x) float32: the image resampled to spacing_mm and z-scored over its nonzero voxels."""
    image = read_image(path, np.float32)
    target = [spacing_mm] * 3
    shape = new_shape_for_spacing(image.array.shape, image.geometry.array_spacing, target)
    data = resample_channels(image.array[None], shape, order=3)
    mask = data[0] > 0
    data[0] = np.where(mask, (data[0] - data[0][mask].mean()) / data[0][mask].std(), 0.0)
    return data.astype(np.float32)


def compare(family: str, patch: list[int], volume: np.ndarray, workdir: Path) -> dict:
    """Torch fp32 vs ONNX Runtime and OpenVINO on the volume for one family."""
    torch.manual_seed(0)
    arch = architecture_for_patch(family, patch)
    if family == "revmbconv":
        arch.update(reversible=True, checkpointing=False)
    if family == "unetpp":
        write_pruning(workdir, {"prune_level": 2, "depth": len(arch["strides"]) - 1, "levels": []})
    network = build_network(arch, 1, OUTPUTS)
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
                 "max_abs_logit": float(expected.abs().max())}
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
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    import importlib.util
    import tempfile

    volume = real_volume(args.image, args.spacing)
    print(f"volume {args.image} at {args.spacing} mm: {volume.shape[1:]}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for family in args.families:
            if family == "swinunetr" and importlib.util.find_spec("monai") is None:
                print("swinunetr: skipped (MONAI not installed)")
                continue
            row = compare(family, FAMILIES[family], volume, Path(folder))
            rows.append(row)
            print(f"{family:10s} torch {row['torch_seconds']:6.1f} s | " + " | ".join(
                f"{b} {row[b]['label_agreement']:.6%} agree, max logit diff {row[b]['max_abs_logit_difference']:.2e}, "
                f"{row[b]['seconds']:.1f} s" for b in ("onnxruntime", "openvino")), flush=True)
    record = {"script": "scripts/check_backend_families.py", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "threads": torch.get_num_threads(), "loadavg": os.getloadavg(), "image": str(args.image),
              "spacing_mm": args.spacing, "volume_shape": list(volume.shape[1:]), "rows": rows}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
