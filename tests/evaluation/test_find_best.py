"""`segkit find-best` and `segkit postprocess` on synthetic cross-validation folders with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segkit.cli import main
from segkit.inference.probabilities import probability_metadata, save_probabilities
from segkit.io.image import Geometry, read_image, write_image
from segkit.models.postprocessing import apply_postprocessing, keep_largest_component
from segkit.plans import Plans

SHAPE = (12, 24, 24)
COS, SIN = float(np.cos(np.radians(10))), float(np.sin(np.radians(10)))
GEOMETRY = Geometry((1.1, 0.9, 2.5), (-40.0, 12.5, 3.0), (COS, -SIN, 0.0, SIN, COS, 0.0, 0.0, 0.0, 1.0),
                    tuple(reversed(SHAPE)))
PLANS = {"schema_version": 1, "labels": {"background": 0, "a": 1, "b": 2}, "label_mode": "softmax",
         "outputs": {"a": [1], "b": [2]}, "regions_class_order": None, "num_channels": 1, "num_outputs": 3}
CASES = [f"case_{i}" for i in range(4)]
SPLITS = [{"train": CASES[2:], "val": CASES[:2]}, {"train": CASES[:2], "val": CASES[2:]}]


def reference(index: int) -> np.ndarray:
    """Class a: one box. Class b: a box touching a, and a second true box far away."""
    labels = np.zeros(SHAPE, dtype=np.uint8)
    shift = index % 2
    labels[3:8, 4 + shift:10, 4:10] = 1
    labels[3:8, 4 + shift:10, 10:14] = 2
    labels[3 + shift:8, 17:21, 17:21] = 2
    return labels


def with_spurious_blob(labels: np.ndarray) -> np.ndarray:
    """Add a small distant false-positive blob of class a."""
    out = labels.copy()
    out[9:11, 18:21, 2:5] = 1
    return out


def soft(labels: np.ndarray, confidence: float = 0.7) -> np.ndarray:
    """Probabilities: confidence + 0.1 on the label's channel, 0.1 elsewhere (3 channels)."""
    return np.eye(3, dtype=np.float32)[labels].transpose(3, 0, 1, 2) * confidence + (1 - confidence) / 3


def write_prediction(folder: Path, case: str, probs: np.ndarray, labels: np.ndarray) -> None:
    """A CV prediction as segkit predict writes it: probabilities .npz and the label map."""
    metadata = probability_metadata(case, GEOMETRY, Plans.from_json(PLANS), ".nii.gz")
    save_probabilities(folder / f"{case}.npz", probs, metadata)
    write_image(labels, GEOMETRY, folder / f"{case}.nii.gz")


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    """A work dir next to its dataset; 3d_fullres is good but has a spurious blob; 2d misses things."""
    dataset, work_dir = tmp_path / "Toy", tmp_path / "Toy_segkit"
    (dataset / "labelsTr").mkdir(parents=True)
    (dataset / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": PLANS["labels"],
                                                      "file_ending": ".nii.gz"}))
    work_dir.mkdir()
    (work_dir / "plans.json").write_text(json.dumps(PLANS))
    for config in ("3d_fullres", "2d"):
        (work_dir / "models" / config).mkdir(parents=True)
        (work_dir / "models" / config / "splits.json").write_text(json.dumps(SPLITS))
    for index, case in enumerate(CASES):
        ref = reference(index)
        write_image(ref, GEOMETRY, dataset / "labelsTr" / f"{case}.nii.gz")
        fold = 0 if case in SPLITS[0]["val"] else 1
        good = with_spurious_blob(ref)
        write_prediction(work_dir / "models" / "3d_fullres" / f"fold_{fold}" / "validation", case, soft(good), good)
        bad = np.roll(ref, 3, axis=2)
        bad[bad == 2] = 0
        bad[np.roll(ref, 3, axis=2) == 1] = 1
        write_prediction(work_dir / "models" / "2d" / f"fold_{fold}" / "validation", case, soft(bad, 0.9), bad)
    return work_dir


def test_largest_component_helpers() -> None:
    """LCC keeps the biggest full-connectivity component (diagonal contact connects), per class or overall."""
    labels = np.zeros((5, 6, 7), dtype=np.uint8)
    labels[0:2, 0:2, 0:2] = 1
    labels[2, 2, 2] = 1  # diagonal neighbour of the box: same component with 26-connectivity
    labels[4, 5, 6] = 1
    labels[4, 0, 6] = 2
    kept = keep_largest_component(labels, [1])
    assert kept[2, 2, 2] == 1 and kept[4, 5, 6] == 0 and kept[4, 0, 6] == 2
    assert keep_largest_component(labels)[4, 0, 6] == 0
    decision = {"foreground_lcc": False, "lcc_classes": {"b": [2]}}
    assert np.array_equal(apply_postprocessing(labels, decision), labels)


def test_find_best_picks_the_better_config_and_the_helpful_lcc(work: Path, tmp_path: Path) -> None:
    """3d_fullres beats 2d and the pair; LCC helps class a (spurious blob) but would cut class b's second
    true component, so it is kept for a only, and the all-foreground variant is refused."""
    assert main(["find-best", str(work), "--configs", "3d_fullres", "2d"]) == 0
    result = json.loads((work / "find_best.json").read_text())
    assert result["best"]["members"] == ["3d_fullres"]
    assert [c["name"] for c in result["candidates"]][0] == "3d_fullres"
    assert {c["name"] for c in result["candidates"]} == {"3d_fullres", "2d", "3d_fullres+2d"}
    good = next(c for c in result["candidates"] if c["name"] == "3d_fullres")
    assert good["mean_dice"]["b"] == pytest.approx(1.0) and good["mean_dice"]["a"] < 0.97
    assert result["postprocessing"] == {"foreground_lcc": False, "lcc_classes": {"a": [1]}}
    tests = result["postprocessing_tests"]
    assert tests["fg"]["a"] == pytest.approx(1.0) and tests["fg"]["b"] < 1.0
    assert tests["none|b"]["b"] < 1.0
    assert result["dice_after_postprocessing"] == pytest.approx({"a": 1.0, "b": 1.0})
    assert result["num_cases"] == 4


def test_postprocess_applies_the_decision_and_keeps_geometry(work: Path, tmp_path: Path) -> None:
    """After find-best, postprocess removes the blob, keeps b's two components, and evaluate then scores Dice 1."""
    assert main(["find-best", str(work), "--configs", "3d_fullres", "2d", "--no-ensembles", "-j", "2"]) == 0
    result = json.loads((work / "find_best.json").read_text())
    assert len(result["candidates"]) == 2
    predictions = tmp_path / "preds"
    for fold in (0, 1):
        for path in (work / "models" / "3d_fullres" / f"fold_{fold}" / "validation").glob("*.nii.gz"):
            predictions.mkdir(exist_ok=True)
            (predictions / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "post"
    assert main(["postprocess", "-i", str(predictions), "-o", str(out), "--decision", str(work / "find_best.json")]) == 0
    for index, case in enumerate(CASES):
        image, source = read_image(out / f"{case}.nii.gz"), read_image(predictions / f"{case}.nii.gz").geometry
        assert image.geometry == source  # exactly: the input's header is reused
        assert np.array_equal(image.array, reference(index))
    summary = tmp_path / "s.json"
    assert main(["evaluate", str(out), str(work.parent / "Toy" / "labelsTr"), "-o", str(summary)]) == 0
    assert json.loads(summary.read_text())["foreground_mean"]["dice"] == 1.0


def test_ensemble_wins_when_members_err_in_different_places(tmp_path: Path) -> None:
    """Two configs each with a weak false positive elsewhere: averaging removes both, so the pair wins (--cv-dir)."""
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    (work_dir / "plans.json").write_text(json.dumps(PLANS))
    refs = tmp_path / "refs"
    for index, case in enumerate(CASES):
        ref = reference(index)
        write_image(ref, GEOMETRY, refs / f"{case}.nii.gz")
        for config, box in (("A", (slice(0, 2), slice(0, 3), slice(0, 3))), ("B", (slice(9, 11), slice(0, 3), slice(20, 23)))):
            probs = soft(ref)
            probs[(slice(None), *box)] = np.array([0.4, 0.6, 0.0], dtype=np.float32)[:, None, None, None]
            labels = ref.copy()
            labels[box] = 1
            write_prediction(tmp_path / config, case, probs, labels)
    assert main(["find-best", str(work_dir), "--configs", "A", "B", "--cv-dir", f"A={tmp_path / 'A'}",
                 "--cv-dir", f"B={tmp_path / 'B'}", "--ref", str(refs), "-o", str(tmp_path / "fb.json")]) == 0
    result = json.loads((tmp_path / "fb.json").read_text())
    assert result["best"]["members"] == ["A", "B"]
    assert result["best"]["foreground_mean_dice"] == pytest.approx(1.0)
    # nothing to remove on a perfect ensemble: an unchanged Dice is not an improvement
    assert result["postprocessing"] == {"foreground_lcc": False, "lcc_classes": {}}


def test_bad_inputs_are_user_errors(work: Path, tmp_path: Path, capsys) -> None:
    """Missing CV file, wrong probability shape, unknown --cv-dir config, bad decision file: exit 2, named."""
    missing = work / "models" / "2d" / "fold_1" / "validation" / "case_3.npz"
    missing.unlink()
    assert main(["find-best", str(work), "--configs", "3d_fullres", "2d"]) == 2
    assert "case_3.npz" in capsys.readouterr().err and not (work / "find_best.json").exists()
    wrong = work / "models" / "3d_fullres" / "fold_0" / "validation" / "case_0.npz"
    save_probabilities(wrong, np.zeros((3, 4, 4, 4), dtype=np.float32), {})
    assert main(["find-best", str(work), "--configs", "3d_fullres"]) == 2
    assert "case_0.npz" in capsys.readouterr().err
    other_grid = Geometry(GEOMETRY.spacing, (0.0, 0.0, 0.0), GEOMETRY.direction, GEOMETRY.size)
    save_probabilities(wrong, soft(reference(0)), probability_metadata("case_0", other_grid, Plans.from_json(PLANS), ".nii.gz"))
    assert main(["find-best", str(work), "--configs", "3d_fullres"]) == 2
    err = capsys.readouterr().err
    assert "case_0.npz" in err and "origin" in err
    assert main(["find-best", str(work), "--configs", "3d_fullres", "--cv-dir", f"2d={tmp_path}"]) == 2
    assert "2d" in capsys.readouterr().err
    bad_decision = tmp_path / "decision.json"
    bad_decision.write_text(json.dumps({"foreground_lcc": "yes"}))
    assert main(["postprocess", "-i", str(tmp_path), "-o", str(tmp_path / "o"), "--decision", str(bad_decision)]) == 2
    assert "decision.json" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_region_based_plans_choose_foreground_lcc(tmp_path: Path) -> None:
    """Sigmoid (BraTS-style) plans: regions scored as unions; a distant blob is best removed as foreground LCC."""
    plans = {"labels": {"background": 0, "WT": [1, 2, 3], "TC": [1, 3], "ET": 3}, "label_mode": "sigmoid",
             "outputs": {"WT": [1, 2, 3], "TC": [1, 3], "ET": [3]}, "regions_class_order": [2, 1, 3],
             "num_channels": 1, "num_outputs": 3}
    work_dir, refs, cv = tmp_path / "work", tmp_path / "refs", tmp_path / "cv"
    work_dir.mkdir()
    (work_dir / "plans.json").write_text(json.dumps(plans))
    for index, case in enumerate(CASES):
        ref = np.zeros(SHAPE, dtype=np.uint8)
        ref[2:10, 4:16, 4:16 + index] = 2
        ref[3:9, 6:14, 6:14] = 1
        ref[4:8, 8:12, 8:12] = 3
        write_image(ref, GEOMETRY, refs / f"{case}.nii.gz")
        pred = ref.copy()
        pred[10:12, 19:22, 19:22] = 3
        probs = np.stack([np.isin(pred, v) for v in plans["outputs"].values()]).astype(np.float32) * 0.8 + 0.1
        save_probabilities(cv / f"{case}.npz", probs, {})
    assert main(["find-best", str(work_dir), "--configs", "3d_fullres", "--cv-dir", f"3d_fullres={cv}",
                 "--ref", str(refs)]) == 0
    result = json.loads((work_dir / "find_best.json").read_text())
    assert result["classes"] == plans["outputs"]
    before = result["candidates"][0]["mean_dice"]
    assert all(before[region] < 1.0 for region in ("WT", "TC", "ET"))
    assert result["postprocessing"] == {"foreground_lcc": True, "lcc_classes": {}}
    assert result["dice_after_postprocessing"] == pytest.approx({"WT": 1.0, "TC": 1.0, "ET": 1.0})


def test_postprocess_in_place_with_a_bare_decision(tmp_path: Path) -> None:
    """A bare decision JSON applied with -o equal to -i rewrites the files, keeping dtype and geometry."""
    labels = with_spurious_blob(reference(0))
    write_image(labels, GEOMETRY, tmp_path / "case.nii.gz")
    decision = tmp_path / "decision.json"
    decision.write_text(json.dumps({"foreground_lcc": False, "lcc_classes": {"a": [1]}}))
    assert main(["postprocess", "-i", str(tmp_path), "-o", str(tmp_path), "--decision", str(decision)]) == 0
    image = read_image(tmp_path / "case.nii.gz")
    assert np.array_equal(image.array, reference(0)) and image.array.dtype == np.uint8
    assert image.geometry.mismatch(GEOMETRY) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.nii.gz", "decision.json"]
