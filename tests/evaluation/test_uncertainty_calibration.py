"""Calibrating the review threshold on cross-validation predictions: ranking quality, threshold, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from inference_fixtures import make_model_dir

from segkit.cli import main
from segkit.evaluation.uncertainty_calibration import auroc, best_threshold, calibrate, spearman
from segkit.inference.probabilities import probability_metadata, save_probabilities
from segkit.io.image import Geometry, write_image
from segkit.models.calibration import read_calibration
from segkit.plans import read_plans
from segkit.workdir import plans_path, uncertainty_calibration_path


def test_auroc_spearman_and_the_f1_threshold():
    assert auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.5, 0.6], [True, True]) is None
    assert spearman([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    best = best_threshold([0.9, 0.7, 0.6, 0.2, 0.1], [True, True, False, False, False])
    assert best["threshold"] == 0.7 and best["precision"] == 1.0 and best["recall"] == 1.0
    assert best["flagged_fraction"] == pytest.approx(0.4)
    # an imperfect score: the best F1 flags 3 of which 2 are right
    best = best_threshold([0.9, 0.7, 0.8, 0.2], [True, True, False, False])
    assert best["threshold"] == 0.7 and best["precision"] == pytest.approx(2 / 3) and best["recall"] == 1.0


def test_calibrate_needs_enough_cases():
    from segkit.errors import UserError

    with pytest.raises(UserError, match="at least"):
        calibrate([{"case": "a", "dice": 0.5, "score": 0.1, "structures": {}}], "3d_fullres")


def write_cv_case(cv: Path, labels_dir: Path, case: str, plans: dict, margin: float, seed: int) -> None:
    """A CV case from a calibrated stand-in model: logits = margin x the reference one-hot + unit noise, so a
    smaller margin gives both flatter probabilities and more wrong voxels (lower Dice)."""
    rng = np.random.default_rng(seed)
    shape = (8, 16, 16)
    ref = np.zeros(shape, dtype=np.uint8)
    ref[2:6, 4:12, 4:12] = 2
    ref[3:5, 6:10, 6:10] = 1
    ref[3:5, 6:8, 10:12] = 3
    one_hot = np.stack([(ref == v).astype(np.float32) for v in range(4)])
    logits = one_hot * margin + rng.normal(0, 1.0, one_hot.shape).astype(np.float32)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=0, keepdims=True)
    geometry = Geometry((1.0, 1.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), shape[::-1])
    write_image(ref, geometry, labels_dir / f"{case}.nii.gz")
    save_probabilities(cv / f"{case}.npz", probabilities,
                       probability_metadata(case, geometry, plans, ".nii.gz"))


def test_calibrate_uncertainty_ranks_less_separated_cases_as_less_certain(tmp_path, capsys):
    work = tmp_path / "work"
    model = make_model_dir(work, num_channels=1)
    plans = read_plans(plans_path(model))
    cv, labels = tmp_path / "cv", tmp_path / "labels"
    margins = {f"case_{i}": margin for i, margin in enumerate([8.0, 6.0, 4.0, 3.0, 2.5, 2.0, 1.5, 1.0])}
    for seed, (case, margin) in enumerate(margins.items()):
        write_cv_case(cv, labels, case, plans, margin, seed)
    assert main(["calibrate-uncertainty", str(work), "-c", "3d_fullres", "--ref", str(labels),
                 "--cv-dir", str(cv)]) == 0
    printed = capsys.readouterr().out
    assert "AUROC" in printed and "review threshold" in printed
    calibration = read_calibration(uncertainty_calibration_path(model))
    records = {r["case"]: r for r in calibration["cases"]}
    assert calibration["num_cases"] == 8 and calibration["num_low_dice_cases"] == 4
    dice = [records[c]["dice"] for c in margins]
    score = [records[c]["score"] for c in margins]
    assert dice[0] > dice[-1] and score[0] < score[-1]          # flatter probabilities: lower Dice, higher score
    assert calibration["quality"]["auroc"] > 0.8
    assert calibration["quality"]["spearman_score_vs_dice"] < -0.5
    per_structure = calibration["quality"]["structure_aurocs"]
    assert set(per_structure) <= {"necrosis", "edema", "enhancing"} and per_structure
    assert calibration["quality"]["structure_auroc"] == pytest.approx(np.mean(list(per_structure.values())))
    flagged = [c for c in margins if records[c]["score"] >= calibration["threshold"]]
    low = [c for c in margins if records[c]["dice"] < calibration["median_dice"]]
    assert calibration["quality"]["precision"] == pytest.approx(len(set(flagged) & set(low)) / len(flagged))
    assert calibration["quality"]["recall"] == pytest.approx(len(set(flagged) & set(low)) / len(low))
    assert json.loads(uncertainty_calibration_path(model).read_text())["format"] == "segkit-uncertainty-calibration-1"
