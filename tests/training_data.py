"""Helpers for the training tests: a tiny planned + preprocessed phantom work dir with a small U-Net."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from segkit.cli import main as segkit_main
from segkit.phantom import PhantomSpec, generate_dataset

SPEC = PhantomSpec(shape=(16, 24, 24), spacing=(3.0, 1.5, 1.5))
TINY_ARCH = {"family": "unet", "spatial_dims": 3, "features_per_stage": [4, 8, 16],
             "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
             "blocks_per_stage": [1, 1, 1], "decoder_blocks_per_stage": [1, 1], "norm": "instance",
             "deep_supervision": True}


def make_work_dir(root: Path, num_cases: int = 5) -> tuple[Path, Path]:
    """Phantom dataset -> `segkit plan` -> `segkit preprocess`, then a tiny U-Net in plans.json."""
    dataset = generate_dataset(root / "Phantom", num_cases=num_cases, spec=SPEC)
    work = root / "work"
    assert segkit_main(["plan", str(dataset), "--work-dir", str(work), "--configurations", "3d_fullres"]) == 0
    assert segkit_main(["preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_fullres"]) == 0
    plans_file = work / "plans.json"
    plans = json.loads(plans_file.read_text())
    entry = plans["configurations"]["3d_fullres"]
    entry["architecture"] = dict(TINY_ARCH)
    entry["patch_size"] = [8, 16, 16]
    entry["batch_size"] = 2
    plans_file.write_text(json.dumps(plans, indent=2))
    return dataset, work


def copy_work(dataset: Path, work: Path, dest: Path) -> tuple[Path, Path]:
    """An independent copy of a dataset + work dir (tests that write models)."""
    shutil.copytree(dataset, dest / dataset.name)
    shutil.copytree(work, dest / "work")
    return dest / dataset.name, dest / "work"
