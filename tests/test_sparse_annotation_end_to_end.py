"""Acceptance: an nnU-Net dataset.json with an `ignore` label plans, trains, predicts and evaluates with no
class named `ignore` anywhere in the outputs, for softmax and region-based (BraTS-style) labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from training_data import SPEC, TINY_ARCH

from segkit.cli import main
from segkit.io.image import read_image
from segkit.phantom import generate_dataset

TINY_TRAIN = ["--epochs", "2", "--iterations-per-epoch", "2", "--quiet", "--num-workers", "0", "--threads", "1",
              "--no-fit", "--device", "cpu"]
REGIONS = {"background": 0, "whole": [1, 2, 3], "core": [1, 3], "enhancing": [3]}


def _sparse_dataset(root: Path, region_based: bool) -> Path:
    """A phantom sparsified to every 3rd slice along z and x (ignore = 4), optionally with BraTS-style regions."""
    dense = generate_dataset(root / "Phantom", num_cases=5, spec=SPEC)
    sparse = root / "Sparse"
    assert main(["sparsify", str(dense), str(sparse), "--slices", "3", "--axes", "0", "2", "--seed", "1"]) == 0
    if region_based:
        data = json.loads((sparse / "dataset.json").read_text())
        data |= {"labels": REGIONS | {"ignore": 4}, "regions_class_order": [2, 1, 3]}
        (sparse / "dataset.json").write_text(json.dumps(data))
    return sparse


def _no_ignore_class(names) -> None:
    assert not {"ignore", "4"} & set(names), f"an output class is named ignore: {list(names)}"


@pytest.mark.slow
@pytest.mark.parametrize("region_based", [False, True], ids=["softmax", "regions"])
def test_ignore_label_dataset_plans_trains_predicts_and_evaluates(tmp_path, region_based, one_torch_thread):
    dataset, work = _sparse_dataset(tmp_path, region_based), tmp_path / "work"
    assert main(["plan", str(dataset), "--work-dir", str(work), "--configurations", "3d_fullres", "--no-tradeoff"]) == 0
    plans = json.loads((work / "plans.json").read_text())
    _no_ignore_class(plans["labels"])
    _no_ignore_class(plans["outputs"])
    assert plans["ignore_label"] == 4
    assert plans["label_mode"] == ("sigmoid" if region_based else "softmax")
    assert plans["num_outputs"] == (3 if region_based else 4)
    fingerprint = json.loads((work / "fingerprint.json").read_text())
    assert 0.3 < fingerprint["annotated_fraction"] < 0.7
    assert main(["preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_fullres"]) == 0
    properties = json.loads((work / "preprocessed" / "3d_fullres" / "phantom_001.json").read_text())
    seg = np.load(work / "preprocessed" / "3d_fullres" / "phantom_001_seg.npy")
    assert (seg == 4).any() and len(properties["annotated_locations"]) > 0
    assert all(seg[tuple(v)] not in (-1, 4) for v in properties["annotated_locations"])
    entry = plans["configurations"]["3d_fullres"]
    entry |= {"architecture": dict(TINY_ARCH), "patch_size": [8, 16, 16], "batch_size": 2}
    (work / "plans.json").write_text(json.dumps(plans))

    assert main(["train", str(dataset), "--work-dir", str(work), "-c", "3d_fullres", "-f", "0", *TINY_TRAIN]) == 0
    models = work / "models" / "3d_fullres"
    log = [json.loads(line) for line in (models / "fold_0" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in log)
    _no_ignore_class(log[-1]["val_dice"])
    model_plans = json.loads((models / "plans.json").read_text())
    _no_ignore_class(model_plans["labels"])

    images = tmp_path / "images"
    images.mkdir()
    for path in (dataset / "imagesTr").glob("phantom_00[12]_*"):
        (images / path.name).symlink_to(path)
    pred = tmp_path / "pred"
    assert main(["predict", "-i", str(images), "-o", str(pred), "-m", str(models), "-f", "0", "--device", "cpu",
                 "--save-probabilities"]) == 0
    for case in ("phantom_001", "phantom_002"):
        values = set(np.unique(read_image(pred / f"{case}.nii.gz").array).tolist())
        assert 4 not in values and values <= {0, 1, 2, 3}
        metadata = json.loads(str(np.load(pred / f"{case}.npz", allow_pickle=False)["metadata"]))
        _no_ignore_class(metadata["outputs"])

    assert main(["evaluate", str(pred), str(dataset), "--allow-missing", "--regions-from", str(dataset),
                 "-o", str(tmp_path / "summary.json")]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    _no_ignore_class(summary["classes"])
    _no_ignore_class(summary["mean"])
    assert summary["settings"]["ignore_label"] == 4 and "annotated" in summary["settings"]["scored_voxels"]
    assert all(case["annotated_voxels"] < case["voxels"] for case in summary["cases"])
