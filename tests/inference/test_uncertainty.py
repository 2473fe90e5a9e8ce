"""Uncertainty: entropy and disagreement maps, per-structure scores, the review flag, the calibration file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from inference_fixtures import make_model_dir, read_array, read_geometry, write_input_case
from plans_helpers import view

from segkit.cli import main
from segkit.errors import UserError
from segkit.inference.uncertainty import (
    case_score,
    normalised_entropy,
    structure_scores,
    summary,
)
from segkit.models.calibration import read_calibration, write_calibration
from segkit.workdir import uncertainty_calibration_path

SOFTMAX_PLANS = view({"label_mode": "softmax", "outputs": {"a": [1], "b": [2]}})
SIGMOID_PLANS = view({"label_mode": "sigmoid", "outputs": {"whole": [1, 2], "core": [2]}, "regions_class_order": [1, 2]})


def test_entropy_is_0_when_certain_and_1_when_uniform():
    certain = np.zeros((3, 2, 2, 2), dtype=np.float32)
    certain[1] = 1
    uniform = np.full((3, 2, 2, 2), 1 / 3, dtype=np.float32)
    np.testing.assert_allclose(normalised_entropy(certain, "softmax"), 0, atol=1e-6)
    np.testing.assert_allclose(normalised_entropy(uniform, "softmax"), 1, atol=1e-6)
    half = np.full((2, 1, 1, 3), 0.5, dtype=np.float32)
    np.testing.assert_allclose(normalised_entropy(half, "sigmoid"), 1, atol=1e-6)
    p = np.array([0.9, 0.05, 0.05], dtype=np.float32).reshape(3, 1, 1, 1)
    expected = -sum(v * math.log(v) for v in (0.9, 0.05, 0.05)) / math.log(3)
    assert normalised_entropy(p, "softmax")[0, 0, 0] == pytest.approx(expected, rel=1e-5)


def test_structure_scores_are_the_expected_dice_of_the_models_own_probabilities():
    probabilities = np.zeros((3, 1, 1, 4), dtype=np.float32)
    probabilities[:, 0, 0] = [[0.2, 0.2, 1.0, 1.0], [0.8, 0.6, 0.0, 0.0], [0.0, 0.2, 0.0, 0.0]]
    labels = np.array([[[1, 1, 0, 0]]], dtype=np.uint8)
    scores = structure_scores(probabilities, labels, SOFTMAX_PLANS)
    # a: 2 * (0.8 + 0.6) / (1.4 + 2); b: predicted empty, so exp(-0.2), the chance it is truly absent
    assert scores["a"]["expected_dice"] == pytest.approx(2 * 1.4 / 3.4, abs=1e-5)
    assert scores["b"]["expected_dice"] == pytest.approx(math.exp(-0.2), abs=1e-5)
    assert scores["a"]["score"] == pytest.approx(1 - 2 * 1.4 / 3.4, abs=1e-5)
    assert case_score(scores) == pytest.approx((scores["a"]["score"] + scores["b"]["score"]) / 2, abs=1e-5)
    region = np.zeros((2, 1, 1, 2), dtype=np.float32)
    region[:, 0, 0] = [[1.0, 1.0], [1.0, 0.0]]
    region_scores = structure_scores(region, np.array([[[2, 1]]]), SIGMOID_PLANS)
    assert region_scores["whole"]["score"] == 0 and region_scores["core"]["score"] == 0


def test_flag_and_calibration_file(tmp_path):
    structures = {"a": {"score": 0.4}, "b": {"score": 0.2}}
    assert summary(structures, None, 1) == {"score": 0.3, "score_name": summary(structures, None, 1)["score_name"],
                                            "folds": 1, "structures": structures}
    assert summary(structures, {"threshold": 0.3}, 5)["flagged"] is True
    assert summary(structures, {"threshold": 0.31}, 5)["flagged"] is False
    path = tmp_path / "cal.json"
    assert read_calibration(path) is None
    write_calibration(path, {"threshold": 0.3, "score": "s", "target": "t", "quality": {}, "num_cases": 9})
    assert read_calibration(path)["threshold"] == 0.3
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(UserError, match="lacks"):
        read_calibration(path)
    with pytest.raises(ValueError):
        write_calibration(path, {"threshold": 0.3})


@pytest.mark.slow
def test_predict_uncertainty_writes_maps_scores_and_flags(tmp_path, capsys):
    work = tmp_path / "work"
    model = make_model_dir(work, num_channels=2, folds=("0", "1"))
    geometry = write_input_case(tmp_path / "in", "c0", (10, 24, 20), (2.5, 1.0, 1.2), num_channels=2, seed=1)
    write_input_case(tmp_path / "in", "c1", (10, 24, 20), (2.5, 1.0, 1.2), num_channels=2, seed=2)
    out = tmp_path / "out"
    assert main(["predict", "-i", str(tmp_path / "in"), "-o", str(out), "-m", str(model), "--device", "cpu",
                 "--uncertainty", "--statistics", "--no-tta"]) == 0
    assert "no review threshold" in capsys.readouterr().err
    entropy = read_array(out / "c0_entropy.nii.gz")
    disagreement = read_array(out / "c0_disagreement.nii.gz")
    assert entropy.shape == disagreement.shape == geometry.array_shape
    assert read_geometry(out / "c0_entropy.nii.gz")[3] == geometry.size
    assert 0 <= entropy.min() and entropy.max() <= 1 and entropy.max() > 0.1
    assert 0 <= disagreement.min() and disagreement.max() > 0     # two differently seeded folds disagree
    assert (disagreement <= entropy + 1e-5).all()                 # the mutual information is part of the entropy
    report = json.loads((out / "report.json").read_text())
    entry = report["cases"][0]["uncertainty"]
    assert set(entry["structures"]) == {"necrosis", "edema", "enhancing"} and entry["folds"] == 2
    assert entry["score"] == pytest.approx(np.mean([s["score"] for s in entry["structures"].values()]), abs=1e-4)
    assert "flagged" not in entry and report["uncertainty_calibration"] is None
    stats = json.loads((out / "c0_stats.json").read_text())
    assert stats["labels"]["edema"]["uncertainty"] == entry["structures"]["edema"]
    # with a calibration beside the model, cases above its threshold are flagged, and the page says so
    scores = {c["case_id"]: c["uncertainty"]["score"] for c in report["cases"]}
    low, high = sorted(scores, key=scores.get)
    threshold = (scores[low] + scores[high]) / 2
    write_calibration(uncertainty_calibration_path(model), {"threshold": threshold, "score": "s", "target": "t",
                                                            "quality": {"auroc": 0.8}, "num_cases": 9})
    out2 = tmp_path / "out2"
    assert main(["predict", "-i", str(tmp_path / "in"), "-o", str(out2), "-m", str(model), "--device", "cpu",
                 "--uncertainty", "--no-tta"]) == 0
    report = json.loads((out2 / "report.json").read_text())
    assert {c["case_id"]: c["uncertainty"]["flagged"] for c in report["cases"]} == {low: False, high: True}
    assert report["uncertainty_calibration"]["quality"] == {"auroc": 0.8}
    page = (out2 / "report.html").read_text()
    assert page.count('<span class="flag">review</span>') == 1
    assert '<b>1</b><span>flagged for review</span>' in page
    # the calibration travels in the model package; one fold: no disagreement map
    package = tmp_path / "model.zip"
    assert main(["export-model", str(model), "-o", str(package)]) == 0
    uncertainty_calibration_path(model).unlink()
    out3 = tmp_path / "out3"
    assert main(["predict", "-i", str(tmp_path / "in"), "-o", str(out3), "-m", str(package), "--device", "cpu",
                 "--uncertainty", "--no-tta", "-f", "0"]) == 0
    report = json.loads((out3 / "report.json").read_text())
    assert report["uncertainty_calibration"]["threshold"] == pytest.approx(threshold)
    assert all("flagged" in c["uncertainty"] and c["uncertainty"]["folds"] == 1 for c in report["cases"])
    assert not (out3 / "c0_disagreement.nii.gz").exists() and (out3 / "c0_entropy.nii.gz").is_file()
