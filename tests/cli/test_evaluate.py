"""`segkit evaluate`: nnU-Net's argument order and image folders are refused with a hint, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segkit.cli import main
from segkit.io.image import Geometry, write_image

GEOMETRY = Geometry(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()),
                    size=(6, 5, 4))


def _label_folder(folder: Path, cases: list[str], value: int = 1) -> Path:
    """Label maps with values 0 and `value`."""
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        labels = np.zeros((4, 5, 6), np.uint8)
        labels[1:3, 1:4, 2:5] = value
        write_image(labels, GEOMETRY, folder / f"{case}.nii.gz")
    return folder


def _dataset(root: Path, cases: list[str]) -> Path:
    """A raw dataset folder with labelsTr and a dataset.json declaring labels 0 and 1."""
    _label_folder(root / "labelsTr", cases)
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T1"}, "labels": {"background": 0, "a": 1},
                                                   "file_ending": ".nii.gz"}))
    return root


def test_evaluate_refuses_references_as_predictions(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """nnU-Net's order (REF PRED) is refused with a hint, and nothing is written into labelsTr."""
    dataset = _dataset(tmp_path / "Dataset001_X", ["a", "b", "c"])
    pred = _label_folder(tmp_path / "pred", ["a", "b", "c"])
    assert main(["evaluate", str(dataset / "labelsTr"), str(pred)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "swapped" in err
    assert not (dataset / "labelsTr" / "summary.json").exists()
    assert main(["evaluate", str(pred), str(dataset), "-o", str(dataset / "labelsTr" / "s.json")]) == 2
    assert "refusing to write" in capsys.readouterr().err
    assert main(["evaluate", str(pred), str(dataset)]) == 0
    assert (pred / "summary.json").is_file()


def test_evaluate_detects_swapped_plain_folders(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    references = _label_folder(tmp_path / "refs", ["a", "b", "c", "d"])
    predictions = _label_folder(tmp_path / "preds", ["a", "b"])
    assert main(["evaluate", str(references), str(predictions)]) == 2   # nnU-Net's order
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fewer" in err and "swapped" in err
    assert not (references / "summary.json").exists()
    assert main(["evaluate", str(references), str(predictions), "--subset"]) == 0


def test_evaluate_detects_label_values_not_in_dataset_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dataset = _dataset(tmp_path / "Dataset001_X", ["a", "b"])
    images = _label_folder(tmp_path / "images", ["a", "b"], value=117)   # e.g. an image folder, not labels
    assert main(["evaluate", str(images), str(dataset)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "117" in err and "dataset.json" in err
