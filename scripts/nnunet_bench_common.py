"""Shared helpers for the benchmarks against nnU-Net v2: the phantom dataset and the peer's CLI.

segkit runs in this interpreter's environment (.venv); nnU-Net v2 runs as its own CLI from
the peer environment (.bench-venv), never imported here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from segkit.jsonio import write_json
from segkit.phantom import CHANNELS, PhantomSpec, make_case, write_case

REPO = Path(__file__).resolve().parents[1]
BENCH_VENV = Path(os.environ.get("SEGKIT_BENCH_VENV", REPO / ".bench-venv"))   # e.g. a worktree uses main's
DATASET_ID = 901
DATASET_NAME = f"Dataset{DATASET_ID:03d}_Phantom"


def generate_phantom(root: Path, num_cases: int, shape: tuple[int, int, int], spacing_mode: str) -> Path:
    """Write the phantom dataset (nnU-Net v2 layout); 'varied' draws a spacing per case so resampling happens."""
    rng = np.random.default_rng(1234)
    root.mkdir(parents=True, exist_ok=True)
    for index in range(num_cases):
        if spacing_mode == "varied":
            spacing = (float(rng.uniform(2.0, 3.6)), *[float(rng.uniform(0.9, 1.3))] * 2)
        else:
            spacing = PhantomSpec.spacing
        images, label, geometry = make_case(index, PhantomSpec(shape=shape, spacing=spacing))
        write_case(root, "nnunet", index + 1, images, label, geometry)
    write_json(root / "dataset.json", {
        "name": "Phantom", "channel_names": {str(i): name for i, name in enumerate(CHANNELS)},
        "labels": {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3},
        "numTraining": num_cases, "file_ending": ".nii.gz"})
    return root


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """The phantom-dataset options both nnU-Net comparison scripts take."""
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--shape", type=int, nargs=3, default=[96, 128, 128], help="z y x")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--spacing", choices=("varied", "uniform"), default="varied")
    parser.add_argument("--keep", help="keep the work folder here instead of a temp folder")


def prepare_nnunet_dataset(args: argparse.Namespace, base: Path) -> tuple[Path, dict[str, str]]:
    """Generate the phantom, point nnU-Net's folders into base and link the dataset there."""
    dataset = generate_phantom(base / "raw" / "Phantom", args.cases, tuple(args.shape), args.spacing)
    env = nnunet_env(base)
    link_into_nnunet_raw(dataset, base)
    return dataset, env


def nnunet_env(base: Path) -> dict[str, str]:
    """Environment with nnUNet_raw/_preprocessed/_results inside base, and one thread per worker."""
    env = dict(os.environ)
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[name] = str(base / name)
        (base / name).mkdir(parents=True, exist_ok=True)
    env["PATH"] = f"{BENCH_VENV / 'bin'}:{env['PATH']}"
    env.pop("VIRTUAL_ENV", None)
    return env


def link_into_nnunet_raw(dataset: Path, base: Path) -> Path:
    """Expose the dataset as nnUNet_raw/Dataset901_Phantom (symlinks, no copy)."""
    target = base / "nnUNet_raw" / DATASET_NAME
    target.mkdir(parents=True, exist_ok=True)
    for name in ("imagesTr", "labelsTr", "dataset.json"):
        if not (target / name).exists():
            (target / name).symlink_to((dataset / name).resolve())
    return target


def timed(command: list[str], env: dict[str, str] | None = None, label: str = "") -> float:
    """Run a command to completion, fail loudly on error, return wall seconds."""
    print(f"$ {' '.join(command)}", flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stdout[-4000:], file=sys.stderr)
        raise SystemExit(f"{label or command[0]} failed with exit code {result.returncode}")
    print(f"  {label}: {seconds:.1f} s", flush=True)
    return seconds


def nnunet_plans(base: Path) -> dict:
    """nnU-Net's nnUNetPlans.json for the benchmark dataset."""
    return json.loads((base / "nnUNet_preprocessed" / DATASET_NAME / "nnUNetPlans.json").read_text())


def segkit_command() -> list[str]:
    """How to run the segkit CLI with this interpreter."""
    return [sys.executable, "-m", "segkit"]


def machine_line() -> str:
    """One line describing the machine."""
    import platform
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
