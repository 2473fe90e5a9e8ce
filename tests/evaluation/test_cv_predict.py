"""find-best --predict-missing: each fold's (untrained) model predicts its validation cases, then selection runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from segkit.cli import main
from segkit.inference.probabilities import load_cv_probabilities
from segkit.io.image import read_image
from segkit.networks import build_network


def make_model_folder(work: Path, cases: list[str]) -> None:
    """models/3d_fullres with plans, a 2-fold splits.json and an untrained checkpoint per fold."""
    plans = json.loads((work / "plans.json").read_text())
    model_dir = work / "models" / "3d_fullres"
    model_dir.mkdir(parents=True)
    shutil.copy(work / "plans.json", model_dir / "plans.json")
    splits = [{"train": cases[2:], "val": cases[:2]}, {"train": cases[:2], "val": cases[2:]}]
    (model_dir / "splits.json").write_text(json.dumps(splits))
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    for fold in (0, 1):
        torch.manual_seed(fold)
        network = build_network(arch, plans["num_channels"], plans["num_outputs"])
        (model_dir / f"fold_{fold}").mkdir()
        torch.save({"format": "segkit-checkpoint-1", "network_state": network.state_dict(), "architecture": arch,
                    "in_channels": plans["num_channels"], "num_outputs": plans["num_outputs"],
                    "configuration": "3d_fullres", "plans_sha256": "", "epoch": 0},
                   model_dir / f"fold_{fold}" / "checkpoint_final.pt")


def test_predict_missing_writes_validation_probabilities_and_selects(tiny_dataset: Path, tmp_path: Path,
                                                                    capsys) -> None:
    """Missing fold_k/validation predictions are made by fold k's model on the input grid, then scored."""
    dataset = tmp_path / "Phantom"
    shutil.copytree(tiny_dataset, dataset)
    work = tmp_path / "Phantom_segkit"
    assert main(["plan", str(dataset), "--configurations", "3d_fullres", "--no-tradeoff"]) == 0
    cases = sorted(p.name[: -len(".nii.gz")] for p in (dataset / "labelsTr").glob("*.nii.gz"))
    make_model_folder(work, cases)
    assert main(["find-best", str(work), "--configs", "3d_fullres"]) == 2  # nothing predicted yet
    capsys.readouterr()
    assert main(["find-best", str(work), "--configs", "3d_fullres", "--predict-missing", "--device", "cpu",
                 "--no-tta"]) == 0
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("find-best: 3d_fullres")]
    assert progress[0] == "find-best: 3d_fullres: 4 cross-validation case(s) to predict in 2 fold(s)"
    assert [line.split(":")[1] for line in progress[1:]] == [" 3d_fullres fold 0", " 3d_fullres fold 1"]
    assert progress[-1].endswith("(4/4)"), "#24 item 11: --predict-missing shows its progress"
    for fold, fold_cases in ((0, cases[:2]), (1, cases[2:])):
        for case in fold_cases:
            folder = work / "models" / "3d_fullres" / f"fold_{fold}" / "validation"
            reference = read_image(dataset / "labelsTr" / f"{case}.nii.gz")
            probs = load_cv_probabilities(folder / f"{case}.npz", 4, reference.array.shape)
            assert np.allclose(probs.sum(axis=0), 1.0, atol=1e-2)
            assert read_image(folder / f"{case}.nii.gz").geometry.mismatch(reference.geometry) is None
    result = json.loads((work / "find_best.json").read_text())
    assert result["num_cases"] == 4 and result["best"]["members"] == ["3d_fullres"]
    assert set(result["classes"]) == {"necrosis", "edema", "enhancing"}
