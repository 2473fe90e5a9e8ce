"""`segkit evaluate`: folders of label maps with real geometry, regions, errors, outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from segkit.cli import main
from segkit.evaluation.metrics import mask_metrics
from segkit.io.image import Geometry, read_image, write_image
from segkit.phantom import PhantomSpec, make_case

SPEC = PhantomSpec(shape=(16, 24, 24), spacing=(3.0, 1.5, 1.2))


def perturb(label: np.ndarray, seed: int) -> np.ndarray:
    """A plausible prediction: shifted by a voxel, some labels swapped, class 1 dropped in one case."""
    rng = np.random.default_rng(seed)
    pred = np.roll(label, 1, axis=2).copy()
    flip = (rng.random(label.shape) < 0.05) & (pred > 0)
    pred[flip] = rng.integers(1, 4, flip.sum())
    if seed == 2:
        pred[pred == 1] = 3
    return pred.astype(np.uint8)


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[np.ndarray, np.ndarray, Geometry]]]:
    """Three phantom cases: references and predictions with oblique, anisotropic geometry."""
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    cases = {}
    for seed in range(3):
        _, label, geometry = make_case(seed, SPEC)
        pred = perturb(label, seed)
        case = f"case_{seed}"
        write_image(label, geometry, ref_dir / f"{case}.nii.gz")
        write_image(pred, geometry, pred_dir / f"{case}.nii.gz")
        cases[case] = (pred, label, geometry)
    return pred_dir, ref_dir, cases


def test_evaluate_per_class_matches_metrics_and_writes_json_and_csv(folders, tmp_path: Path) -> None:
    """Auto classes: every value present; numbers equal mask_metrics at the image's (z, y, x) spacing."""
    pred_dir, ref_dir, cases = folders
    out = tmp_path / "out" / "summary.json"
    assert main(["evaluate", str(pred_dir), str(ref_dir), "-o", str(out), "--nsd-tolerance", "2.0"]) == 0
    summary = json.loads(out.read_text())
    assert summary["classes"] == {"1": [1], "2": [2], "3": [3]}
    assert summary["num_cases"] == 3
    for case in summary["cases"]:
        pred, label, geometry = cases[case["case_id"]]
        for value in (1, 2, 3):
            expected = mask_metrics(pred == value, label == value, geometry.array_spacing, nsd_tolerance_mm=2.0)
            assert case["metrics"][str(value)] == pytest.approx(expected)
    # the case whose class 1 was dropped scores Dice 0 and the BraTS penalty there
    dropped = next(c for c in summary["cases"] if c["case_id"] == "case_2")["metrics"]["1"]
    assert (dropped["dice"], dropped["hd95"]) == (0.0, 373.13)
    means = summary["mean"]
    assert means["2"]["dice"] == pytest.approx(np.mean([c["metrics"]["2"]["dice"] for c in summary["cases"]]))
    assert summary["foreground_mean"]["hd95"] == pytest.approx(np.mean([means[k]["hd95"] for k in means]))
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert len(rows) == 3 * 3 + 3 + 1
    first = next(r for r in rows if r["case_id"] == "case_0" and r["class"] == "2")
    assert float(first["hd95"]) == pytest.approx(summary["cases"][0]["metrics"]["2"]["hd95"])


def test_regions_from_labels_and_dataset_json_agree(folders, tmp_path: Path) -> None:
    """Regions are unions of label values; --labels and --regions-from give the same summary (also with -j 2)."""
    pred_dir, ref_dir, cases = folders
    out_a, out_b = tmp_path / "a.json", tmp_path / "b.json"
    dataset = tmp_path / "Dataset"
    dataset.mkdir()
    (dataset / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "FLAIR"}, "file_ending": ".nii.gz", "regions_class_order": [2, 1, 3],
        "labels": {"background": 0, "WT": [1, 2, 3], "TC": [1, 3], "ET": 3}}))
    assert main(["evaluate", str(pred_dir), str(ref_dir), "-o", str(out_a), "--labels", "WT=1,2,3", "TC=1,3", "ET=3"]) == 0
    assert main(["evaluate", str(pred_dir), str(ref_dir), "-o", str(out_b), "--regions-from", str(dataset), "-j", "2"]) == 0
    a, b = json.loads(out_a.read_text()), json.loads(out_b.read_text())
    assert a["classes"] == b["classes"] == {"WT": [1, 2, 3], "TC": [1, 3], "ET": [3]}
    for name in a["classes"]:
        assert a["mean"][name] == pytest.approx(b["mean"][name])
    pred, label, geometry = cases["case_1"]
    expected = mask_metrics(np.isin(pred, [1, 3]), np.isin(label, [1, 3]), geometry.array_spacing)
    assert a["cases"][1]["metrics"]["TC"] == pytest.approx(expected)


def test_class_absent_from_a_case_counts_as_both_empty(tmp_path: Path) -> None:
    """Auto-detected classes absent from both masks of a case get Dice 1 and HD95 0 there."""
    geometry = Geometry((1.2, 1.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), (10, 9, 8))
    with_two = np.zeros((8, 9, 10), dtype=np.uint8)
    with_two[2:5, 2:6, 3:7] = 2
    only_one = np.zeros_like(with_two)
    only_one[1:4, 1:4, 1:4] = 1
    for folder in ("ref", "pred"):
        write_image(with_two, geometry, tmp_path / folder / "a.nii.gz")
        write_image(only_one, geometry, tmp_path / folder / "b.nii.gz")
    out = tmp_path / "s.json"
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"), "-o", str(out)]) == 0
    cases = {c["case_id"]: c["metrics"] for c in json.loads(out.read_text())["cases"]}
    assert cases["a"]["1"]["dice"] == 1.0 and cases["a"]["1"]["hd95"] == 0.0 and cases["a"]["1"]["n_ref"] == 0
    assert cases["b"]["2"]["nsd"] == 1.0 and cases["b"]["1"]["dice"] == 1.0


def test_geometry_mismatch_names_the_prediction_and_writes_nothing(folders, tmp_path: Path, capsys) -> None:
    """A prediction with another spacing is refused with one line naming it; exit 2; no summary."""
    pred_dir, ref_dir, cases = folders
    pred, _, geometry = cases["case_1"]
    moved = Geometry((geometry.spacing[0] * 1.5, *geometry.spacing[1:]), geometry.origin, geometry.direction,
                     geometry.size)
    write_image(pred, moved, pred_dir / "case_1.nii.gz")
    out = tmp_path / "s.json"
    assert main(["evaluate", str(pred_dir), str(ref_dir), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "case_1.nii.gz" in err and "spacing" in err
    assert not out.exists() and not out.with_suffix(".csv").exists()


def test_missing_prediction_fails_unless_allowed(folders, tmp_path: Path, capsys) -> None:
    """A reference case without prediction is listed; --allow-missing scores the rest and records it."""
    pred_dir, ref_dir, _ = folders
    (pred_dir / "case_0.nii.gz").unlink()
    out = tmp_path / "s.json"
    assert main(["evaluate", str(pred_dir), str(ref_dir), "-o", str(out)]) == 2
    assert "case_0" in capsys.readouterr().err and not out.exists()
    assert main(["evaluate", str(pred_dir), str(ref_dir), "-o", str(out), "--allow-missing"]) == 0
    summary = json.loads(out.read_text())
    assert summary["missing_predictions"] == ["case_0"] and summary["num_cases"] == 2


def test_bad_inputs_are_user_errors(folders, tmp_path: Path, capsys) -> None:
    """Bad --labels, a missing folder and a corrupt prediction each end in exit 2 with the culprit named."""
    pred_dir, ref_dir, _ = folders
    assert main(["evaluate", str(pred_dir), str(ref_dir), "--labels", "WT=a,b"]) == 2
    assert "WT=a,b" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nope"), str(ref_dir)]) == 2
    assert "nope" in capsys.readouterr().err
    (pred_dir / "case_2.nii.gz").write_bytes(b"not an image")
    assert main(["evaluate", str(pred_dir), str(ref_dir), "-o", str(tmp_path / "s.json")]) == 2
    assert "case_2.nii.gz" in capsys.readouterr().err


def test_single_files_and_default_output(folders) -> None:
    """PRED and REF may be single files; the summary then defaults to PRED's folder."""
    pred_dir, ref_dir, _ = folders
    assert main(["evaluate", str(pred_dir / "case_1.nii.gz"), str(ref_dir / "case_1.nii.gz")]) == 0
    summary = json.loads((pred_dir / "summary.json").read_text())
    assert [c["case_id"] for c in summary["cases"]] == ["case_1"]
    assert read_image(pred_dir / "case_1.nii.gz").array.dtype == np.uint8


def test_reference_may_be_a_raw_dataset_folder(folders, tmp_path: Path, capsys) -> None:
    """REF given as a dataset folder (dataset.json + labelsTr) evaluates against its labelsTr, classes by name."""
    pred_dir, ref_dir, _ = folders
    dataset = tmp_path / "Dataset"
    dataset.mkdir()
    ref_dir.rename(dataset / "labelsTr")
    (dataset / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T1"},
                                                      "labels": {"background": 0, "a": 1, "b": 2, "c": 3}}))
    out = tmp_path / "s.json"
    assert main(["evaluate", str(pred_dir), str(dataset), "-o", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["num_cases"] == 3 and summary["classes"] == {"a": [1], "b": [2], "c": [3]}
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in table[1:4]] == ["a", "b", "c"], "#24 item 11: names, not numbers"
    assert main(["evaluate", str(pred_dir), str(dataset / "labelsTr"), "-o", str(out)]) == 0
    assert json.loads(out.read_text())["classes"] == {"a": [1], "b": [2], "c": [3]}


def test_sparse_reference_scores_only_annotated_voxels(folders, tmp_path: Path, capsys) -> None:
    """Reference voxels labelled ignore are left out of every metric; the report says so."""
    pred_dir, ref_dir, cases = folders
    dataset = tmp_path / "Sparse"
    ignore = 4
    annotated_only = {}
    for case, (pred, label, geometry) in cases.items():
        sparse = label.copy()
        sparse[np.arange(len(sparse)) % 3 != 0] = ignore    # two of every three z slices unannotated
        write_image(sparse, geometry, dataset / "labelsTr" / f"{case}.nii.gz")
        keep = sparse != ignore
        annotated_only[case] = {v: mask_metrics((pred == v) & keep, (label == v) & keep, geometry.array_spacing,
                                                1.0, 373.13) for v in (1, 2, 3)}
    labels = {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3, "ignore": ignore}
    (dataset / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T1"}, "labels": labels}))
    out = tmp_path / "s.json"
    assert main(["evaluate", str(pred_dir), str(dataset), "-o", str(out)]) == 0    # ignore from REF's dataset.json
    printed = capsys.readouterr().out
    assert "only the annotated voxels were scored" in printed
    summary = json.loads(out.read_text())
    names = {1: "necrosis", 2: "edema", 3: "enhancing"}
    assert list(summary["classes"]) == list(names.values()) and summary["settings"]["ignore_label"] == ignore
    assert 0.3 < summary["settings"]["annotated_fraction"] < 0.4
    for case in summary["cases"]:
        for value in (1, 2, 3):
            assert case["metrics"][names[value]] == pytest.approx(annotated_only[case["case_id"]][value])
    dense = tmp_path / "dense.json"
    assert main(["evaluate", str(pred_dir), str(ref_dir), "-o", str(dense)]) == 0
    assert json.loads(dense.read_text())["cases"][0]["metrics"]["1"] != summary["cases"][0]["metrics"]["necrosis"]
    # a plain folder of sparse references: --ignore-label, and with --regions-from the dataset's value
    flag = tmp_path / "flag.json"
    assert main(["evaluate", str(pred_dir), str(dataset / "labelsTr"), "--ignore-label", "4", "-o", str(flag)]) == 0
    assert json.loads(flag.read_text())["mean"] == summary["mean"]
    named = tmp_path / "named.json"
    assert main(["evaluate", str(pred_dir), str(dataset / "labelsTr"), "--regions-from", str(dataset),
                 "-o", str(named)]) == 0
    named_summary = json.loads(named.read_text())
    assert list(named_summary["classes"]) == ["necrosis", "edema", "enhancing"]
    assert named_summary["mean"]["necrosis"] == summary["mean"]["necrosis"]
    capsys.readouterr()
    assert main(["evaluate", str(pred_dir), str(dataset), "--labels", "X=3,4", "-o", str(flag)]) == 2
    assert "ignore label 4 cannot be scored" in capsys.readouterr().err
