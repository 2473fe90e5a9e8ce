"""Bit-identity check for refactors that must not change behaviour (issue #26).

Builds, from seeded inputs, on the CPU:
- the demo phantom's plans.json (the `segkit demo` dataset shape, fewer cases), once for 3d_fullres
  and once with every configuration (2d, 3d_lowres, the cascade stage: mirror axes, slice axis),
- a tiny trained demo model (1 epoch x 2 steps, fixed seed, fp32, deterministic) and its
  predictions on the held-out phantom cases (label maps and probabilities),
- a tiny 2d model of a small phantom (the slice-axis paths of training and prediction) and its
  predictions,
- an imported nnU-Net v2 model's predictions (a seeded synthetic nnU-Net results folder,
  predicted directly with `-m` and through `segkit import-nnunet`),
and prints one SHA-256 per artefact as JSON (`-o FILE` also writes it; `--keep DIR` keeps the
plans.json files and label maps themselves, for a byte-level diff of two versions).

Compare two code versions by running it with each on PYTHONPATH, e.g.
    git worktree add /tmp/before 75faa7f
    PYTHONPATH=/tmp/before python scripts/check_house_identity.py -o before.json
    PYTHONPATH=$PWD      python scripts/check_house_identity.py -o after.json --compare before.json
The nnU-Net folder writer comes from this script's own tests/interop/test_nnunet.py (it only
writes nnU-Net's files), so both runs see the same input bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TMP_ROOT = ""   # the temp folder of this run, masked in recorded paths
KEEP: Path | None = None   # --keep: where copies of the compared files go
ALL_CONFIGURATIONS = ["3d_fullres", "2d", "3d_lowres", "3d_cascade_fullres"]
TRAIN_FLAGS = ["--epochs", "1", "--iterations-per-epoch", "2", "--num-workers", "0", "--quiet", "--no-fit",
               "--device", "cpu", "--seed", "0", "--precision", "fp32", "--deterministic",
               "--no-predict-validation"]


def digest_bytes(data: bytes) -> str:
    """SHA-256 hex digest."""
    return hashlib.sha256(data).hexdigest()


def digest_array(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    return digest_bytes(f"{array.dtype.str}{array.shape}".encode() + np.ascontiguousarray(array).tobytes())


def keep(path: Path, name: str) -> None:
    """Copy a compared file under --keep (nothing without it)."""
    if KEEP is not None:
        target = KEEP / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def digest_predictions(folder: Path) -> dict[str, str]:
    """Per output file: the label map's (or probabilities') voxels, read back as arrays."""
    from segkit.io.image import read_image

    found = {}
    for path in sorted(folder.rglob("*.nii.gz")):
        keep(path, f"{folder.name}/{path.relative_to(folder)}")
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.name.endswith(".nii.gz"):
            found[rel] = digest_array(read_image(path).array)
        elif path.suffix == ".npz":   # the probabilities, and their metadata with this run's temp folder masked
            with np.load(path) as data:
                found[rel] = digest_array(data["probabilities"])
                if "metadata" in data.files:
                    # the nnU-Net conversion cache key hashes the source's path and mtimes: run-dependent
                    text = re.sub(r"nnunet/[0-9a-f]{20}", "nnunet/<KEY>", str(data["metadata"]).replace(TMP_ROOT, "<TMP>"))
                    found[rel + " metadata"] = digest_bytes(text.encode())
    return found


def run(argv: list[str]) -> None:
    """One segkit CLI call that must succeed."""
    from segkit.cli import main

    if main(argv) != 0:
        raise SystemExit(f"segkit {' '.join(argv)} failed")


def demo_digests(root: Path, quick: bool = False) -> dict:
    """plans.json of the demo phantom, the trained weights and the predictions of a tiny model.

    quick: the demo-shaped dataset is only planned; a smaller phantom (plain U-Net, 1 GB budget) is
    trained and predicted, so the check runs in minutes on a loaded CPU.
    """
    import torch

    try:
        from segkit.cli.demo_run import DEMO_SPEC
    except ImportError:   # the code before issue #26
        from segkit.demo import DEMO_SPEC  # type: ignore[no-redef]
    from segkit.phantom import PhantomSpec, generate_dataset

    dataset, work = root / "Phantom", root / "work"
    generate_dataset(dataset, 6, seed=0, spec=DEMO_SPEC, num_test=2, test_labels=True)
    run(["plan", str(dataset), "--work-dir", str(root / "work_all"), "--configurations", *ALL_CONFIGURATIONS,
         "--network", "auto", "-j", "1", "--gpu-memory", "8"])
    keep(root / "work_all" / "plans.json", "demo_all_configurations_plans.json")
    all_plans_bytes = (root / "work_all" / "plans.json").read_bytes()
    run(["plan", str(dataset), "--work-dir", str(work), "--configurations", "3d_fullres", "--network", "auto",
         "-j", "1", "--gpu-memory", "8"])
    keep(work / "plans.json", "demo_plans.json")
    plans_bytes = (work / "plans.json").read_bytes()
    if quick:
        dataset, work = root / "Small", root / "small_work"
        generate_dataset(dataset, 6, seed=0, spec=PhantomSpec(shape=(16, 24, 24), spacing=(3.0, 1.5, 1.5)),
                         num_test=2, test_labels=True)
        run(["plan", str(dataset), "--work-dir", str(work), "--configurations", "3d_fullres", "--network", "unet",
             "-j", "1", "--gpu-memory", "1", "--no-tradeoff"])
    run(["preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_fullres", "-j", "1"])
    run(["train", str(dataset), "--work-dir", str(work), "-c", "3d_fullres", "-f", "0", *TRAIN_FLAGS])
    model = work / "models" / "3d_fullres"
    state = torch.load(model / "fold_0" / "checkpoint_final.pt", map_location="cpu", weights_only=True)["network_state"]
    weights = digest_bytes("".join(f"{k}:{digest_array(v.numpy())}" for k, v in sorted(state.items())).encode())
    run(["predict", "-i", str(dataset / "imagesTs"), "-o", str(root / "pred"), "-m", str(model), "-f", "0",
         "--device", "cpu", "--save-probabilities"])
    return {"plans.json": digest_bytes(plans_bytes), "plans.json all configurations": digest_bytes(all_plans_bytes),
            "weights": weights, "predictions": digest_predictions(root / "pred")}


def two_d_digests(root: Path) -> dict:
    """plans.json, weights and predictions of a tiny 2d model of a small anisotropic phantom."""
    from segkit.phantom import PhantomSpec, generate_dataset

    dataset, work = root / "Small2d", root / "work"
    generate_dataset(dataset, 6, seed=1, spec=PhantomSpec(shape=(16, 24, 24), spacing=(3.0, 1.5, 1.5)),
                     num_test=2, test_labels=True)
    run(["plan", str(dataset), "--work-dir", str(work), "--configurations", "2d", "--network", "unet",
         "-j", "1", "--gpu-memory", "1", "--no-tradeoff"])
    keep(work / "plans.json", "two_d_plans.json")
    run(["preprocess", str(dataset), "--work-dir", str(work), "-c", "2d", "-j", "1"])
    run(["train", str(dataset), "--work-dir", str(work), "-c", "2d", "-f", "0", *TRAIN_FLAGS])
    model = work / "models" / "2d"
    keep(model / "plans.json", "two_d_model_plans.json")
    run(["predict", "-i", str(dataset / "imagesTs"), "-o", str(root / "pred2d"), "-m", str(model), "-f", "0",
         "--device", "cpu", "--save-probabilities"])
    return {"plans.json": digest_bytes((work / "plans.json").read_bytes()),
            "model plans.json": digest_bytes((model / "plans.json").read_bytes()),
            "predictions": digest_predictions(root / "pred2d")}


def nnunet_digests(root: Path) -> dict:
    """Predictions of a seeded nnU-Net folder, directly and through import-nnunet."""
    sys.path.insert(0, str(REPO / "tests" / ("models" if (REPO / "tests" / "models").is_dir() else "interop")))
    from test_nnunet import write_case, write_nnunet_folder

    folder = write_nnunet_folder(root / "results", family="unet", folds=(0, 1))
    write_case(root / "images")
    run(["predict", "-i", str(root / "images"), "-o", str(root / "direct"), "-m", str(folder), "--device", "cpu",
         "--precision", "fp32", "--save-probabilities"])
    run(["import-nnunet", str(folder), str(root / "imported")])
    keep(root / "imported" / "plans.json", "nnunet_imported_plans.json")
    run(["predict", "-i", str(root / "images"), "-o", str(root / "via_import"), "-m", str(root / "imported"),
         "--device", "cpu", "--precision", "fp32"])
    return {"direct": digest_predictions(root / "direct"), "via_import": digest_predictions(root / "via_import"),
            "imported plans.json": digest_bytes((root / "imported" / "plans.json").read_bytes())}


def differences(ours: dict, theirs: dict, prefix: str = "") -> list[str]:
    """Dotted names of the digests that differ or exist in only one run (the run's own path and mode aside)."""
    found = []
    for key in sorted(set(ours) | set(theirs)):
        if not prefix and key in ("segkit", "quick"):
            continue
        a, b = ours.get(key), theirs.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}")
    return found


def main() -> int:
    """Build everything in a temp folder and print (and optionally write / compare) the digests."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path)
    parser.add_argument("--compare", type=Path, help="digests of the other version; exit 1 when any differs")
    parser.add_argument("--quick", action="store_true", help="train and predict a smaller phantom (the demo is planned)")
    parser.add_argument("--keep", type=Path, help="copy the compared plans.json files and label maps here")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    global TMP_ROOT, KEEP
    KEEP = args.keep
    with tempfile.TemporaryDirectory() as tmp:
        TMP_ROOT = tmp
        os.environ["SEGKIT_CACHE"] = str(Path(tmp) / "cache")
        import segkit

        result = {"segkit": str(Path(segkit.__file__).parent), "quick": args.quick,
                  "demo": demo_digests(Path(tmp) / "demo", args.quick),
                  "2d": two_d_digests(Path(tmp) / "two_d"),
                  "nnunet": nnunet_digests(Path(tmp) / "nnunet")}
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    if args.compare:
        other = json.loads(args.compare.read_text())
        differing = differences(result, other)
        print(f"identical: {not differing}" + "".join(f"\n  differs: {name}" for name in differing))
        return 0 if not differing else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
