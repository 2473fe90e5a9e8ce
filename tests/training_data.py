"""Helpers for the training tests: a tiny planned + preprocessed phantom work dir with a small U-Net."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from segkit.cli import main as segkit_main
from segkit.phantom import PhantomSpec, generate_dataset
from segkit.plans import Configuration

SPEC = PhantomSpec(shape=(16, 24, 24), spacing=(3.0, 1.5, 1.5))
TINY_ARCH = {"family": "unet", "spatial_dims": 3, "features_per_stage": [4, 8, 16],
             "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
             "blocks_per_stage": [1, 1, 1], "decoder_blocks_per_stage": [1, 1], "norm": "instance",
             "deep_supervision": True}


def configuration(name: str = "3d_fullres", **fields) -> Configuration:
    """A checked configuration view from a few entry fields; the rest is a tiny 3D U-Net entry."""
    entry = {"target_spacing": [1.0, 1.0, 1.0], "patch_size": [8, 16, 16], "batch_size": 2,
             "architecture": dict(TINY_ARCH)} | fields
    return Configuration.from_json(name, entry)


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


LOWRES_ARCH = {**TINY_ARCH, "features_per_stage": [4, 8], "kernel_sizes": [[3, 3, 3], [3, 3, 3]],
               "strides": [[1, 1, 1], [2, 2, 2]], "blocks_per_stage": [1, 1], "decoder_blocks_per_stage": [1]}


def make_cascade_work_dir(root: Path, num_cases: int = 4) -> tuple[Path, Path]:
    """A planned + preprocessed phantom with tiny 3d_fullres, 3d_lowres and 3d_cascade_fullres and a 2-fold split.

    The split is written for 3d_lowres (and 3d_fullres); the cascade takes it over from 3d_lowres.
    """
    dataset, work = make_work_dir(root, num_cases=num_cases)
    plans_file = work / "plans.json"
    plans = json.loads(plans_file.read_text())
    fullres = plans["configurations"]["3d_fullres"]
    lowres_spacing = [2 * s for s in fullres["target_spacing"]]
    plans["configurations"]["3d_lowres"] = {**fullres, "target_spacing": lowres_spacing, "patch_size": [8, 8, 8],
                                            "architecture": dict(LOWRES_ARCH)}
    plans["configurations"]["3d_cascade_fullres"] = {**fullres, "previous_stage": "3d_lowres"}
    plans_file.write_text(json.dumps(plans, indent=2))
    assert segkit_main(["preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_lowres",
                        "3d_cascade_fullres"]) == 0
    cases = sorted(p.name[:-5] for p in (work / "preprocessed" / "3d_fullres").glob("*.json"))
    splits = [{"train": cases[num_cases // 2:], "val": cases[:num_cases // 2]},
              {"train": cases[:num_cases // 2], "val": cases[num_cases // 2:]}]
    for config in ("3d_lowres", "3d_fullres"):
        (work / "models" / config).mkdir(parents=True, exist_ok=True)
        (work / "models" / config / "splits.json").write_text(json.dumps(splits))
    return dataset, work
