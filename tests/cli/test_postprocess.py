"""`segkit postprocess -i PRED -o OUT --decision find_best.json`: find-best's decision applied to a folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from segkit.cli import main
from segkit.io.image import Geometry, read_image, write_image

SHAPE = (8, 16, 16)
GEOMETRY = Geometry((0.9, 0.9, 2.0), (-20.0, 5.0, 1.0), tuple(np.eye(3).ravel()), SHAPE[::-1])


def _labels(shift: int) -> np.ndarray:
    """Class a: one box and a small distant blob; class b: two boxes far apart (both true)."""
    labels = np.zeros(SHAPE, np.uint8)
    labels[2:6, 2 + shift:8, 2:8] = 1
    labels[6:8, 13:15, 13:15] = 1          # the blob a largest-component step removes
    labels[2:6, 10:14, 2:6] = 2
    labels[2:6, 2:6, 10 + shift:14] = 2
    return labels


def _predictions(folder: Path) -> dict[str, np.ndarray]:
    """Two label maps as predict writes them."""
    written = {f"case_{i}": _labels(i) for i in range(2)}
    for case, labels in written.items():
        write_image(labels, GEOMETRY, folder / f"{case}.nii.gz")
    return written


def _find_best(path: Path, decision: dict) -> Path:
    """A find_best.json whose 'postprocessing' entry is the decision (the rest as find-best writes it)."""
    path.write_text(json.dumps({"best": {"configs": ["3d_fullres"]}, "postprocessing": decision}))
    return path


def test_the_decision_of_find_best_json_is_applied_into_another_folder(tmp_path, capsys):
    predictions = tmp_path / "pred"
    written = _predictions(predictions)
    decision = _find_best(tmp_path / "find_best.json", {"foreground_lcc": False, "lcc_classes": {"a": [1]}})
    out = tmp_path / "post"
    assert main(["postprocess", "-i", str(predictions), "-o", str(out), "--decision", str(decision), "-j", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        f"foreground LCC: False; LCC per class: a; wrote 2 file(s) to {out}"
    for case, labels in written.items():
        result = read_image(out / f"{case}.nii.gz")
        expected = labels.copy()
        expected[6:8, 13:15, 13:15] = 0                    # a's blob gone, both boxes of b kept
        np.testing.assert_array_equal(result.array, expected)
        assert result.geometry.mismatch(GEOMETRY) is None
        np.testing.assert_array_equal(read_image(predictions / f"{case}.nii.gz").array, labels)   # input untouched


def test_a_decision_without_lcc_changes_nothing_and_says_none(tmp_path, capsys):
    predictions = tmp_path / "pred"
    written = _predictions(predictions)
    decision = _find_best(tmp_path / "find_best.json", {"foreground_lcc": False, "lcc_classes": {}})
    out = tmp_path / "post"
    assert main(["postprocess", "-i", str(predictions), "-o", str(out), "--decision", str(decision)]) == 0
    assert "LCC per class: none; wrote 2 file(s)" in capsys.readouterr().out
    for case, labels in written.items():
        np.testing.assert_array_equal(read_image(out / f"{case}.nii.gz").array, labels)


def test_a_missing_decision_file_is_one_line_and_exit_2(tmp_path, capsys):
    _predictions(tmp_path / "pred")
    assert main(["postprocess", "-i", str(tmp_path / "pred"), "-o", str(tmp_path / "post"),
                 "--decision", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert "nope.json" in err and err.count("\n") == 1 and not (tmp_path / "post").exists()
